"""The API error-rate breaker: a sliding-window counter of venue call outcomes.

The engine calls :meth:`ErrorRateBreaker.record` after every venue call (``ok=False`` for
transport errors, timeouts, 5xx and rate-limit answers; a clean business rejection is ``ok``:
the venue answered). The breaker trips when, over the last ``window_ms``, at least
``min_samples`` calls were seen and *more than* ``trip_ratio`` of them failed. It recovers once
``cooldown_ms`` has passed since it tripped and the window again holds at least ``min_samples``
calls with at most ``recover_ratio`` failures. An empty window never recovers it: no news is not
good news, and a REDUCING venue still answers reconciliation polls.

The window is ``(now - window_ms, now]``: a sample exactly ``window_ms`` old has left it.
A timestamp older than the newest one seen is treated as the newest (clocks step back).

:func:`apply_breaker` turns the breaker's state into the venue's mode opinion (rule
``"error-rate"``): REDUCING while tripped, lifted on recovery.

This is one of the few mutable classes in the core (``attrs.define``): it is fed at the venue
call rate, and copying a window per call would cost more than it proves. It is still pure:
no clock, no I/O, every answer a function of the calls made.
"""

from __future__ import annotations

import enum
from collections import deque
from decimal import Decimal
from typing import Any

import attrs

from fundarb.core.errors import InvalidValue
from fundarb.core.risk_modes import ModeChanged, ModeScope, ModeSource, TradingMode, TradingModes

__all__ = [
    "ERROR_RATE_RULE",
    "BreakerChanged",
    "BreakerConfig",
    "BreakerState",
    "BreakerStatistics",
    "ErrorRateBreaker",
    "apply_breaker",
]

ERROR_RATE_RULE = "error-rate"


def _ratio(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value < 1:
        raise InvalidValue(f"{attribute.name}: must be a Decimal in [0, 1), got {value!r}")


def _positive_int(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidValue(f"{attribute.name}: must be an int >= 1, got {value!r}")


def _non_negative_int(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidValue(f"{attribute.name}: must be an int >= 0, got {value!r}")


@attrs.frozen
class BreakerConfig:
    """Thresholds: trip above ``trip_ratio`` errors, recover at or below ``recover_ratio``."""

    window_ms: int = attrs.field(default=60_000, validator=_positive_int)
    trip_ratio: Decimal = attrs.field(default=Decimal("0.20"), validator=_ratio)
    recover_ratio: Decimal = attrs.field(default=Decimal("0.05"), validator=_ratio)
    min_samples: int = attrs.field(default=20, validator=_positive_int)
    cooldown_ms: int = attrs.field(default=30_000, validator=_non_negative_int)

    def __attrs_post_init__(self) -> None:
        if self.recover_ratio > self.trip_ratio:
            raise InvalidValue(
                f"recover_ratio {self.recover_ratio} must not exceed trip_ratio {self.trip_ratio}"
            )


class BreakerState(enum.Enum):
    """OK: calls flow normally. TRIPPED: the venue is unreliable; trade it only to reduce."""

    OK = "ok"
    TRIPPED = "tripped"


@attrs.frozen
class BreakerStatistics:
    """The window now: calls, failures among them, and the state."""

    samples: int
    errors: int
    state: BreakerState

    @property
    def error_ratio(self) -> Decimal:
        """``errors / samples`` (0 for an empty window)."""
        return Decimal(self.errors) / self.samples if self.samples else Decimal(0)


@attrs.frozen
class BreakerChanged:
    """The breaker tripped or recovered at ``ts_ms``; ``detail`` says on what evidence."""

    previous: BreakerState
    state: BreakerState
    samples: int
    errors: int
    ts_ms: int
    detail: str


@attrs.define
class ErrorRateBreaker:
    """Sliding-window error-rate breaker for one venue. See the module docstring."""

    config: BreakerConfig = attrs.field(factory=BreakerConfig)
    _window: deque[tuple[int, bool]] = attrs.field(init=False, factory=deque)
    _errors: int = attrs.field(init=False, default=0)
    _state: BreakerState = attrs.field(init=False, default=BreakerState.OK)
    _tripped_at_ms: int = attrs.field(init=False, default=0)
    _last_ms: int = attrs.field(init=False, default=0)

    @property
    def state(self) -> BreakerState:
        """OK or TRIPPED, as of the last call to :meth:`record` or :meth:`poll`."""
        return self._state

    @property
    def mode(self) -> TradingMode:
        """The venue mode this breaker asks for: REDUCING while tripped, else ACTIVE."""
        return TradingMode.REDUCING if self._state is BreakerState.TRIPPED else TradingMode.ACTIVE

    def statistics(self) -> BreakerStatistics:
        """The window as of the last call (no expiry happens here: call :meth:`poll` first)."""
        return BreakerStatistics(len(self._window), self._errors, self._state)

    def record(self, ok: bool, now_ms: int) -> BreakerChanged | None:
        """Count one venue call's outcome at ``now_ms``; return the state change it caused, if any."""
        if not isinstance(ok, bool):
            raise InvalidValue(f"ok: expected a bool, got {ok!r}")
        now = self._advance(now_ms)
        self._window.append((now, ok))
        if not ok:
            self._errors += 1
        return self._evaluate(now)

    def poll(self, now_ms: int) -> BreakerChanged | None:
        """Let time pass without a sample (expire old calls) and re-evaluate."""
        return self._evaluate(self._advance(now_ms))

    def _advance(self, now_ms: int) -> int:
        if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
            raise InvalidValue(f"now_ms: must be a non-negative int of ms, got {now_ms!r}")
        now = max(now_ms, self._last_ms)
        self._last_ms = now
        horizon = now - self.config.window_ms
        while self._window and self._window[0][0] <= horizon:
            _, ok = self._window.popleft()
            if not ok:
                self._errors -= 1
        return now

    def _evaluate(self, now: int) -> BreakerChanged | None:
        cfg = self.config
        samples, errors = len(self._window), self._errors
        if samples < cfg.min_samples:
            return None
        if self._state is BreakerState.OK and errors > cfg.trip_ratio * samples:
            self._state, self._tripped_at_ms = BreakerState.TRIPPED, now
            return BreakerChanged(
                BreakerState.OK,
                BreakerState.TRIPPED,
                samples,
                errors,
                now,
                f"{errors}/{samples} calls failed in {cfg.window_ms} ms (> {cfg.trip_ratio})",
            )
        if (
            self._state is BreakerState.TRIPPED
            and now - self._tripped_at_ms >= cfg.cooldown_ms
            and errors <= cfg.recover_ratio * samples
        ):
            self._state = BreakerState.OK
            return BreakerChanged(
                BreakerState.TRIPPED,
                BreakerState.OK,
                samples,
                errors,
                now,
                f"{errors}/{samples} calls failed in {cfg.window_ms} ms (<= {cfg.recover_ratio})",
            )
        return None


def apply_breaker(
    modes: TradingModes, venue: str, breaker: ErrorRateBreaker, now_ms: int, detail: str = ""
) -> tuple[TradingModes, list[ModeChanged]]:
    """Set the ``"error-rate"`` rule's opinion of ``venue`` from the breaker's state."""
    stats = breaker.statistics()
    reason = detail or f"{stats.errors}/{stats.samples} venue calls failed ({stats.state.value})"
    return modes.set(ModeScope.venue(venue), breaker.mode, ModeSource.rule(ERROR_RATE_RULE), now_ms, reason)
