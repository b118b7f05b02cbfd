"""Trading modes: ACTIVE, REDUCING, HALTED, per instrument, per venue and globally.

A mode is an *opinion* held by a source about a scope:

- a **scope** is the whole book (``ModeScope.GLOBAL``), one venue or one instrument;
- a **source** is a named rule (``ModeSource.rule("stale-data")``) or the operator
  (``ModeSource.OPERATOR``).

Each (scope, source) pair holds at most one restriction (REDUCING or HALTED); ACTIVE is the
absence of a restriction, so setting ACTIVE removes the entry. The mode of a scope is the most
restrictive opinion any source holds about it, and the *effective* mode of an order is the most
restrictive of its global, venue and instrument scopes. Consequences, by construction:

- a rule can only set or lift its own opinion, so a rule can never lift the operator's mode,
  nor another rule's;
- the operator lifts its own opinion with :meth:`TradingModes.set` (mode ACTIVE) and may also
  lift a rule's opinion explicitly with :meth:`TradingModes.operator_clear` (the rule will set
  it again on its next observation if the condition still holds).

:class:`TradingModes` is a frozen value. Every transition returns the new value and a list of
:class:`ModeChanged` records (one per opinion that actually changed) for the journal and metrics;
a transition that changes nothing returns the same value and no records.

>>> modes, records = TradingModes().set(ModeScope.venue("binance"), TradingMode.REDUCING,
...                                     ModeSource.rule("error-rate"), 1000, "31% errors over 60 s")
>>> modes.mode_of(ModeScope.venue("binance")), len(records)
(<TradingMode.REDUCING: 'reducing'>, 1)
>>> kill(modes, "operator pressed the button", 2000)[0].mode_of(ModeScope.GLOBAL)
<TradingMode.HALTED: 'halted'>
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import ClassVar

import attrs

from fundarb.core.errors import InvalidValue
from fundarb.core.model import InstrumentId

__all__ = [
    "ModeChanged",
    "ModeEntry",
    "ModeScope",
    "ModeSource",
    "ScopeKind",
    "SourceKind",
    "TradingMode",
    "TradingModes",
    "kill",
]


class TradingMode(enum.Enum):
    """How much trading a scope allows, from least to most restrictive."""

    ACTIVE = "active"  # every order the risk gate allows
    REDUCING = "reducing"  # only risk-reducing orders
    HALTED = "halted"  # nothing but unwinds

    @property
    def rank(self) -> int:
        """0, 1, 2: larger is more restrictive."""
        return _RANK[self]

    @staticmethod
    def most_restrictive(modes: Iterable[TradingMode]) -> TradingMode:
        """The most restrictive of ``modes``; ACTIVE for none."""
        return max(modes, key=_RANK.__getitem__, default=TradingMode.ACTIVE)


_RANK = {TradingMode.ACTIVE: 0, TradingMode.REDUCING: 1, TradingMode.HALTED: 2}


class ScopeKind(enum.Enum):
    """What a mode applies to."""

    GLOBAL = "global"
    VENUE = "venue"
    INSTRUMENT = "instrument"


@attrs.frozen(order=True)
class ModeScope:
    """What a mode applies to: everything, one venue (``key`` = venue name) or one instrument
    (``key`` = ``str(InstrumentId)``). Build with :attr:`GLOBAL`, :meth:`venue`, :meth:`instrument`."""

    kind: ScopeKind = attrs.field(order=lambda k: k.value)
    key: str = ""

    GLOBAL: ClassVar[ModeScope]  # assigned below the class

    def __attrs_post_init__(self) -> None:
        if (self.kind is ScopeKind.GLOBAL) != (self.key == ""):
            raise InvalidValue(f"mode scope {self.kind.value}: key {self.key!r} is wrong for this kind")

    @classmethod
    def venue(cls, venue: str) -> ModeScope:
        """The scope of one venue."""
        if not isinstance(venue, str) or not venue:
            raise InvalidValue(f"mode scope: venue must be a non-empty string, got {venue!r}")
        return cls(ScopeKind.VENUE, venue)

    @classmethod
    def instrument(cls, instrument: InstrumentId) -> ModeScope:
        """The scope of one instrument."""
        if not isinstance(instrument, InstrumentId):
            raise InvalidValue(f"mode scope: expected an InstrumentId, got {instrument!r}")
        return cls(ScopeKind.INSTRUMENT, str(instrument))

    @classmethod
    def covering(cls, instrument: InstrumentId) -> tuple[ModeScope, ModeScope, ModeScope]:
        """The three scopes that govern an order on ``instrument``: global, venue, instrument."""
        return (cls.GLOBAL, cls.venue(instrument.venue), cls.instrument(instrument))

    def __str__(self) -> str:
        return self.kind.value if self.kind is ScopeKind.GLOBAL else f"{self.kind.value}:{self.key}"


ModeScope.GLOBAL = ModeScope(ScopeKind.GLOBAL)


class SourceKind(enum.Enum):
    """Who holds a mode opinion."""

    RULE = "rule"
    OPERATOR = "operator"


@attrs.frozen(order=True)
class ModeSource:
    """Who set a mode: a named rule, or the operator (:attr:`OPERATOR`)."""

    kind: SourceKind = attrs.field(order=lambda k: k.value)
    name: str

    OPERATOR: ClassVar[ModeSource]  # assigned below the class

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidValue(f"mode source: name must be a non-empty string, got {self.name!r}")
        if self.kind is SourceKind.OPERATOR and self.name != "operator":
            raise InvalidValue("mode source: use ModeSource.OPERATOR for the operator")

    @classmethod
    def rule(cls, name: str) -> ModeSource:
        """The source for the rule called ``name`` (e.g. ``"stale-data"``)."""
        if name == "operator":
            raise InvalidValue("mode source: 'operator' is not a rule name")
        return cls(SourceKind.RULE, name)

    @property
    def is_operator(self) -> bool:
        """True for the operator."""
        return self.kind is SourceKind.OPERATOR

    def __str__(self) -> str:
        return self.name if self.is_operator else f"rule:{self.name}"


ModeSource.OPERATOR = ModeSource(SourceKind.OPERATOR, "operator")


@attrs.frozen
class ModeEntry:
    """One opinion: ``source`` holds ``scope`` at ``mode`` (never ACTIVE) since ``since_ms``."""

    scope: ModeScope
    source: ModeSource
    mode: TradingMode
    since_ms: int
    reason: str = ""

    def __attrs_post_init__(self) -> None:
        if self.mode is TradingMode.ACTIVE:
            raise InvalidValue("mode entry: ACTIVE is the absence of an entry, not an entry")


@attrs.frozen
class ModeChanged:
    """Record of one opinion changing, for the journal and metrics.

    ``previous``/``mode`` are the source's own opinion before and after; ``scope_previous``/
    ``scope_mode`` the scope's mode (over all sources) before and after, which is what trading
    feels. ``by`` is who made the change (differs from ``source`` only for an operator clear).
    """

    scope: ModeScope
    source: ModeSource
    previous: TradingMode
    mode: TradingMode
    scope_previous: TradingMode
    scope_mode: TradingMode
    reason: str
    ts_ms: int
    by: ModeSource


def _check_time(now_ms: int) -> None:
    if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
        raise InvalidValue(f"now_ms: must be a non-negative int of ms since the epoch, got {now_ms!r}")


@attrs.frozen
class TradingModes:
    """Every mode opinion currently held. Immutable; transitions return a new value."""

    entries: tuple[ModeEntry, ...] = ()

    # --- queries ------------------------------------------------------------------------------

    def opinion(self, scope: ModeScope, source: ModeSource) -> TradingMode:
        """What ``source`` holds about ``scope`` (ACTIVE when nothing)."""
        entry = self._find(scope, source)
        return TradingMode.ACTIVE if entry is None else entry.mode

    def mode_of(self, scope: ModeScope) -> TradingMode:
        """The mode of ``scope`` alone: the most restrictive opinion any source holds about it."""
        return TradingMode.most_restrictive(e.mode for e in self.entries if e.scope == scope)

    def effective(self, instrument: InstrumentId) -> TradingMode:
        """The mode an order on ``instrument`` trades under: the most restrictive of the global,
        venue and instrument scopes."""
        entry = self.governing(instrument)
        return TradingMode.ACTIVE if entry is None else entry.mode

    def governing(self, instrument: InstrumentId) -> ModeEntry | None:
        """The most restrictive entry covering ``instrument`` (the widest scope first on a tie,
        operator before rules), to explain a denial; None when ACTIVE."""
        scopes = ModeScope.covering(instrument)
        best: ModeEntry | None = None
        for scope in scopes:
            for e in sorted(
                (e for e in self.entries if e.scope == scope), key=lambda e: not e.source.is_operator
            ):
                if best is None or e.mode.rank > best.mode.rank:
                    best = e
        return best

    def entries_for(self, scope: ModeScope) -> tuple[ModeEntry, ...]:
        """All opinions about ``scope``."""
        return tuple(e for e in self.entries if e.scope == scope)

    def by_scope(self) -> Mapping[ModeScope, TradingMode]:
        """Every restricted scope and its mode (for metrics and ``/positions``)."""
        out: dict[ModeScope, TradingMode] = {}
        for e in self.entries:
            out[e.scope] = TradingMode.most_restrictive((out.get(e.scope, TradingMode.ACTIVE), e.mode))
        return out

    # --- transitions --------------------------------------------------------------------------

    def set(
        self, scope: ModeScope, mode: TradingMode, source: ModeSource, now_ms: int, reason: str = ""
    ) -> tuple[TradingModes, list[ModeChanged]]:
        """``source`` now holds ``scope`` at ``mode`` (ACTIVE lifts its opinion).

        A source changes only its own opinion: a rule cannot lift the operator's mode.
        Setting the mode a source already holds changes nothing and records nothing (the
        original ``since_ms`` and reason are kept).
        """
        return self._change(scope, source, mode, now_ms, reason, by=source)

    def operator_clear(
        self, scope: ModeScope, source: ModeSource, now_ms: int, reason: str = ""
    ) -> tuple[TradingModes, list[ModeChanged]]:
        """The operator lifts ``source``'s opinion about ``scope`` (a rule's or its own)."""
        return self._change(scope, source, TradingMode.ACTIVE, now_ms, reason, by=ModeSource.OPERATOR)

    def apply_rule(
        self,
        rule: str,
        verdicts: Mapping[ModeScope, TradingMode],
        now_ms: int,
        reasons: Mapping[ModeScope, str] | None = None,
    ) -> tuple[TradingModes, list[ModeChanged]]:
        """Set the opinion of rule ``rule`` for every scope in ``verdicts`` (ACTIVE lifts it).

        Scopes not in ``verdicts`` are left alone. Records come in scope order.
        """
        source = ModeSource.rule(rule)
        modes, records = self, []
        for scope in sorted(verdicts):
            why = "" if reasons is None else reasons.get(scope, "")
            modes, more = modes._change(scope, source, verdicts[scope], now_ms, why, by=source)
            records.extend(more)
        return modes, records

    # --- internals ----------------------------------------------------------------------------

    def _find(self, scope: ModeScope, source: ModeSource) -> ModeEntry | None:
        for e in self.entries:
            if e.scope == scope and e.source == source:
                return e
        return None

    def _change(
        self,
        scope: ModeScope,
        source: ModeSource,
        mode: TradingMode,
        now_ms: int,
        reason: str,
        by: ModeSource,
    ) -> tuple[TradingModes, list[ModeChanged]]:
        _check_time(now_ms)
        if not isinstance(mode, TradingMode):
            raise InvalidValue(f"mode: expected a TradingMode, got {mode!r}")
        if not isinstance(scope, ModeScope) or not isinstance(source, ModeSource):
            raise InvalidValue(f"mode change: bad scope or source: {scope!r}, {source!r}")
        previous = self.opinion(scope, source)
        if previous is mode:
            return self, []
        kept = tuple(e for e in self.entries if not (e.scope == scope and e.source == source))
        if mode is not TradingMode.ACTIVE:
            kept += (ModeEntry(scope, source, mode, now_ms, reason),)
        new = TradingModes(kept)
        record = ModeChanged(
            scope=scope,
            source=source,
            previous=previous,
            mode=mode,
            scope_previous=self.mode_of(scope),
            scope_mode=new.mode_of(scope),
            reason=reason,
            ts_ms=now_ms,
            by=by,
        )
        return new, [record]


def kill(modes: TradingModes, reason: str, now_ms: int) -> tuple[TradingModes, list[ModeChanged]]:
    """The kill switch: the operator HALTs everything. The engine then flattens every position.

    Only the operator can lift it (``modes.set(ModeScope.GLOBAL, TradingMode.ACTIVE,
    ModeSource.OPERATOR, now_ms)``). Killing twice records nothing the second time.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidValue("kill: a reason is required")
    return modes.set(ModeScope.GLOBAL, TradingMode.HALTED, ModeSource.OPERATOR, now_ms, reason)
