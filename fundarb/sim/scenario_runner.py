"""Run the real engine against a faulty simulated venue for a scenario's horizon; check invariants.

::

    run_scenario(scenario, seed)            (sync: its own trio.run on a MockClock)
     └── fundarb.engine.app.Engine.run       (the production engine, unchanged)
          ├── journal: the SQLite journal in a temporary directory (calls inline, see below)
          ├── PositionManager / PositionRunner per position, CarryTrader, MarketState, ...
          ├── whatever else Engine.run starts (risk service, health endpoint on 127.0.0.1:0)
          └── venues {"sim": FaultyVenue(SimVenue(exchange, driver), scenario faults, Random(seed))}

After ``horizon`` the runner pulls the engine's kill switch (:meth:`Engine.kill`: no new
entries, every position flattened), measures how long the book takes to be flat, stops the
engine (positions clean up shielded, as in production), and then
checks against the *inner* SimVenue, which is the truth:

* ``naked``: the largest unhedged notional and its notional-seconds (from every PositionRunner)
  within the scenario's limits;
* ``flat``: every position CLOSED within ``flatten_within_s`` of the flatten;
* ``orphan_orders``: no order left open at the venue;
* ``reconciled``: per instrument, what the journal's positions hold equals the venue's perp
  positions and spot base balances, exactly;
* ``funding``: funding the positions accounted equals what the venue settled (within tolerance);
* ``journal``: no event lost: every step a runner applied is in the journal, and folding the
  journal gives exactly each runner's final position;
* ``started``: the engine started (a start-up call that failed under the faults kills it);
* ``exercised``: every fault counter the scenario names was injected at least once;
* ``traded``: at least ``min_positions`` positions were opened.

Time: the engine, its timers and the fault latencies run on the Trio clock ("engine seconds",
real seconds in production); the venue and the fault windows on sim time (``speed`` sim seconds
per engine second). The journal is the real SQLite journal with its calls run inline (no worker
thread), and Trio's scheduler is seeded from the seed (:func:`seed_scheduler`): together they make
a run a pure function of (scenario, seed), so the MockClock can jump as soon as all is idle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio
import trio.testing

from fundarb.core.model import ZERO, InstrumentId, Market, Side, Wallet
from fundarb.core.position import Position, PositionState
from fundarb.core.position_model import Leg
from fundarb.engine.app import Engine
from fundarb.engine.clock import EngineClock
from fundarb.engine.manager import PositionManager, owner_of
from fundarb.engine.records import PositionStepped
from fundarb.engine.recovery import fold_journal
from fundarb.journal import JOURNAL_FILENAME
from fundarb.journal.base import Entry, Journal
from fundarb.journal.errors import JournalError
from fundarb.journal.sqlite import SqliteJournal
from fundarb.metrics import create_metrics
from fundarb.sim.exchange import SimExchange
from fundarb.sim.faults import FaultyVenue
from fundarb.sim.instruments import default_instruments
from fundarb.sim.scenario import Scenario
from fundarb.sim.venue import DEFAULT_BALANCES, SimVenue

__all__ = [
    "Check",
    "Outcome",
    "PositionOutcome",
    "restore_scheduler",
    "run_scenario",
    "run_scenario_async",
    "seed_scheduler",
]

log = logging.getLogger("fundarb.sim.scenario")
S = PositionState
T = TypeVar("T")


@attrs.frozen
class Check:
    """One invariant: its name, whether it held, and what was measured."""

    name: str
    ok: bool
    detail: str


@attrs.frozen
class PositionOutcome:
    """The final state of one position."""

    id: str
    state: str
    reason: str
    worst_naked_notional: float
    naked_notional_seconds: float
    funding: str
    held_a: str
    held_b: str
    alerts: int


@attrs.frozen
class Outcome:
    """Everything a run measured; :attr:`hash` covers the deterministic part."""

    scenario: str
    seed: int
    positions: tuple[PositionOutcome, ...]
    worst_naked_notional: float
    naked_notional_seconds: float
    time_to_flat_s: float | None
    injected: Mapping[str, int]
    funding_engine: str
    funding_venue: str
    journal_records: int
    applied_steps: int
    checks: tuple[Check, ...]
    hash: str

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        """The violated invariants."""
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = attrs.asdict(self)
        d["ok"] = self.ok
        return d


class _ObservedFaultyVenue(FaultyVenue):
    """Counts skewed clock readings the engine took (the fault layer has no counter for them)."""

    async def server_time_ms(self) -> int:
        t = await super().server_time_ms()
        if self.plan.clock_skew_ms:
            self._count("clock_skew")
        return t


class _InlineSqliteJournal(SqliteJournal):
    """The real SQLite journal (same schema, codec, WAL, synchronous commits) with its calls run
    inline instead of in a worker thread: a thread finishing at a real-time moment would make the
    interleaving of tasks, and so the outcome, differ between runs of the same seed."""

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._conn
        if conn is None:
            raise JournalError("SQLite journal is not open")
        await trio.lowlevel.checkpoint()
        return fn(conn, *args)


@asynccontextmanager
async def _open_journal(data_dir: Path) -> AsyncIterator[SqliteJournal]:
    journal = _InlineSqliteJournal(data_dir / JOURNAL_FILENAME)
    await journal._open()
    try:
        yield journal
    finally:
        await journal.aclose()


class _CountingJournal:
    """A journal proxy counting, per position, the steps applied: those whose durable append
    returned, and those queued (a hedge under its reservation), which must be written by the end."""

    def __init__(self, inner: Journal) -> None:
        self._inner = inner
        self.applied: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, entries: Sequence[Entry]) -> list[int]:
        seqs = await self._inner.append(entries)
        for e in entries:
            if isinstance(e.payload, PositionStepped) and e.position_id is not None:
                self.applied[e.position_id] += 1
        return seqs

    def append_nowait(self, entry: Entry) -> None:
        self._inner.append_nowait(entry)
        if isinstance(entry.payload, PositionStepped) and entry.position_id is not None:
            self.applied[entry.position_id] += 1


def seed_scheduler(seed: int) -> bool:
    """Make Trio's scheduling order a function of ``seed``; returns the previous mode.

    Trio deliberately randomises the order in which runnable tasks run, from the module-private
    ``trio._core._run._r``, and tasks woken together (a cancelled scope's tasks, say) come out of
    sets in memory-address order. Trio's own deterministic mode (the one Hypothesis switches on)
    sorts each batch by task creation order, then shuffles it with ``_r``: seeding ``_r`` keeps
    the exploration (different seeds, different interleavings) and makes a seed reproduce its
    run. Private Trio API: if it moves, runs still work, but the determinism test fails loudly.
    Restore the previous mode with :func:`restore_scheduler`.
    """
    run = getattr(getattr(trio, "_core", None), "_run", None)
    rng = getattr(run, "_r", None)
    previous = bool(getattr(run, "_ALLOW_DETERMINISTIC_SCHEDULING", False))
    if isinstance(rng, random.Random):
        rng.seed(f"fundarb-scenario:{seed}")
        run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[union-attr]
    return previous


def restore_scheduler(previous: bool) -> None:
    """Put Trio's scheduling mode back as :func:`seed_scheduler` found it."""
    run = getattr(getattr(trio, "_core", None), "_run", None)
    if run is not None and hasattr(run, "_ALLOW_DETERMINISTIC_SCHEDULING"):
        run._ALLOW_DETERMINISTIC_SCHEDULING = previous


def run_scenario(
    scenario: Scenario,
    seed: int | None = None,
    *,
    data_dir: Path | None = None,
    autojump_threshold: float = 0.0,
) -> Outcome:
    """Run ``scenario`` (with ``seed``, default the scenario's) under its own MockClock."""
    s = scenario.seed if seed is None else seed
    clock = trio.testing.MockClock(autojump_threshold=autojump_threshold)
    previous = seed_scheduler(s)
    try:
        if data_dir is not None:
            return trio.run(run_scenario_async, scenario, s, data_dir, clock=clock)
        shm = Path("/dev/shm")
        with tempfile.TemporaryDirectory(prefix="fundarb-scn-", dir=shm if shm.is_dir() else None) as tmp:
            return trio.run(run_scenario_async, scenario, s, Path(tmp), clock=clock)
    finally:
        restore_scheduler(previous)


async def run_scenario_async(scenario: Scenario, seed: int, data_dir: Path) -> Outcome:
    """Run ``scenario`` inside the current Trio run (which must be on a MockClock for speed)."""
    base = {
        "FUNDARB_DATA_DIR": str(data_dir),
        "FUNDARB_SIM_SEED": str(seed),
        "FUNDARB_HTTP_BIND": "127.0.0.1:0",  # the engine's health endpoint, on a free local port
        "FUNDARB_STATUS_INTERVAL": "3600",  # no status lines in the scenario's output
    }
    cfg = scenario.config(base)
    driver = scenario.driver(seed)
    exchange = SimExchange(default_instruments("sim", tuple(sorted(driver.symbols))), venue="sim", seed=seed)
    balances = dict(DEFAULT_BALANCES)
    for key, wallet in (("futures_usdt", Wallet.FUTURES), ("spot_usdt", Wallet.SPOT)):
        if key in scenario.balances:
            balances[(wallet, "USDT")] = scenario.balances[key]
    exchange.open_account("main", balances)
    inner = SimVenue(
        exchange, driver, start_ms=scenario.start_ms, speed=scenario.speed, step_ms=scenario.step_ms
    )
    venue = _ObservedFaultyVenue(inner, scenario.faults, random.Random(seed))
    clock = EngineClock.start(base_ms=scenario.start_ms)
    time_to_flat: float | None = None
    startup_error = ""
    async with _open_journal(data_dir) as raw_journal:
        journal = _CountingJournal(raw_journal)
        engine = Engine(cfg, {"sim": venue}, journal, clock, create_metrics())
        risk = getattr(engine, "risk", None)
        if scenario.clock_check_s is not None and risk is not None:
            risk.settings = attrs.evolve(risk.settings, clock_interval=scenario.clock_check_s)
        async with trio.open_nursery() as root:
            try:
                await root.start(engine.run)
            except Exception as e:  # the engine died starting (a start-up call failed): a finding
                startup_error = _describe(e)
                log.error("engine start-up failed: %s", startup_error)
            else:
                await trio.sleep(scenario.horizon_ms / 1000 / scenario.speed)
                await engine.kill("scenario horizon reached")  # the operator's kill switch
                started = trio.current_time()
                with trio.move_on_after(scenario.limits.flatten_within_s):
                    while not _flat(engine.manager):  # noqa: ASYNC110 - runners have no "all flat" event
                        await trio.sleep(0.01)
                    time_to_flat = trio.current_time() - started
            root.cancel_scope.cancel()
        records = await raw_journal.read()
    # the truth, straight from the simulated venue (no faults in the way)
    return await _judge(
        scenario, seed, engine.manager, journal.applied, records, inner, venue, time_to_flat, startup_error
    )


def _flat(manager: PositionManager) -> bool:
    return all(r.state is S.CLOSED and not r.position.working() for r in manager.runners.values())


def _signed(side: Side, qty: Decimal) -> Decimal:
    return qty if side is Side.BUY else -qty


def _book(positions: Mapping[str, Position]) -> dict[InstrumentId, Decimal]:
    """Signed quantity held per instrument, summed over the journal's positions."""
    out: dict[InstrumentId, Decimal] = {}
    for p in positions.values():
        for leg in Leg:
            spec = p.plan.leg(leg)
            out[spec.instrument.id] = out.get(spec.instrument.id, ZERO) + _signed(spec.side, p.held(leg))
    return out


async def _venue_book(inner: SimVenue, instruments: set[InstrumentId]) -> dict[InstrumentId, Decimal]:
    out = {i: ZERO for i in instruments}
    for vp in await inner.positions():
        out[vp.instrument] = out.get(vp.instrument, ZERO) + vp.quantity
    bases = {i.symbol: inner.exchange.instruments[i].base for i in instruments if i.market is Market.SPOT}
    balances = await inner.balances()
    for sym, base in bases.items():
        total = sum(
            (
                b.free + b.locked - b.borrowed
                for b in balances
                if b.asset == base and b.wallet is not Wallet.FUTURES
            ),
            ZERO,
        )
        out[InstrumentId(inner.name, Market.SPOT, sym)] = total
    return out


async def _judge(
    scenario: Scenario,
    seed: int,
    manager: PositionManager,
    applied: Counter[str],
    records: list[Any],
    inner: SimVenue,
    venue: FaultyVenue,
    time_to_flat: float | None,
    startup_error: str = "",
) -> Outcome:
    lim = scenario.limits
    runners = manager.runners
    checks: list[Check] = [Check("started", not startup_error, startup_error or "engine started")]
    worst = max((r.worst_naked_notional for r in runners.values()), default=0.0)
    nns = sum(r.naked_notional_seconds for r in runners.values())
    checks.append(
        Check(
            "naked",
            worst <= lim.max_naked_notional and nns <= lim.max_naked_notional_seconds,
            f"worst {worst:.2f} (limit {lim.max_naked_notional:g}), "
            f"{nns:.1f} notional*s (limit {lim.max_naked_notional_seconds:g})",
        )
    )
    not_closed = sorted(f"{r.id}:{r.state.value}" for r in runners.values() if r.state is not S.CLOSED)
    checks.append(
        Check(
            "flat",
            time_to_flat is not None and not not_closed,
            "engine did not start"
            if startup_error
            else f"time to flat {time_to_flat:.3f} s"
            if time_to_flat is not None and not not_closed
            else f"not flat within {lim.flatten_within_s:g} s: {', '.join(not_closed) or 'orders working'}",
        )
    )
    open_orders = await inner.open_orders()
    orphans = sorted(
        o.client_order_id
        for o in open_orders
        if (pid := owner_of(o.client_order_id)) is None
        or pid not in runners
        or runners[pid].position.order(o.client_order_id) is None
        or not runners[pid].position.require_order(o.client_order_id).working
    )
    checks.append(
        Check("orphan_orders", not orphans and not open_orders, f"{len(open_orders)} open, orphans {orphans}")
    )
    recovered = fold_journal(records)
    journal_book = _book(recovered.positions)
    venue_book = await _venue_book(inner, set(journal_book) | {i for i in inner.exchange.instruments})
    diffs = {
        str(i): f"journal {journal_book.get(i, ZERO)} venue {venue_book.get(i, ZERO)}"
        for i in sorted(set(journal_book) | set(venue_book), key=str)
        if journal_book.get(i, ZERO) != venue_book.get(i, ZERO)
    }
    checks.append(Check("reconciled", not diffs, "exact" if not diffs else json.dumps(diffs)))
    funding_engine = sum((p.funding for p in recovered.positions.values()), ZERO)
    funding_venue = sum((f.amount for f in await inner.funding_income_since(scenario.start_ms)), ZERO)
    checks.append(
        Check(
            "funding",
            abs(funding_engine - funding_venue) <= lim.funding_tolerance,
            f"engine {_q(funding_engine)} venue {_q(funding_venue)}",
        )
    )
    stepped = Counter(r.position_id for r in records if isinstance(r.payload, PositionStepped))
    lost = {pid: applied[pid] - stepped.get(pid, 0) for pid in applied if applied[pid] != stepped.get(pid, 0)}
    differ = sorted(pid for pid, r in runners.items() if recovered.positions.get(pid) != r.position)
    checks.append(
        Check(
            "journal",
            not lost and not differ and not recovered.mismatches,
            f"{sum(applied.values())} steps applied, {sum(stepped.values())} journaled; "
            f"lost {lost or 0}; replay differs {differ or 'nowhere'}; mismatches {dict(recovered.mismatches) or 0}",
        )
    )
    exercised = {**venue.injected, **await _observed(inner, runners)}
    missing = [k for k in lim.exercised if exercised.get(k, 0) <= 0]
    checks.append(
        Check("exercised", not missing, f"counters {dict(sorted(exercised.items()))}, missing {missing}")
    )
    checks.append(
        Check(
            "traded", len(runners) >= lim.min_positions, f"{len(runners)} positions (min {lim.min_positions})"
        )
    )
    positions = tuple(
        PositionOutcome(
            r.id,
            r.state.value,
            r.position.reason,
            round(r.worst_naked_notional, 6),
            round(r.naked_notional_seconds, 6),
            str(r.position.funding),
            str(r.position.held(Leg.A)),
            str(r.position.held(Leg.B)),
            len(r.alerts),
        )
        for r in sorted(runners.values(), key=lambda r: r.id)
    )
    deterministic = {
        "scenario": scenario.name,
        "seed": seed,
        "positions": [attrs.asdict(p) for p in positions],
        "venue_book": {str(k): str(v) for k, v in sorted(venue_book.items(), key=lambda kv: str(kv[0]))},
        "funding": [str(funding_engine), str(funding_venue)],
        "injected": dict(sorted(exercised.items())),
        "time_to_flat": None if time_to_flat is None else round(time_to_flat, 3),
        "checks": [(c.name, c.ok) for c in checks],
    }
    digest = hashlib.sha256(json.dumps(deterministic, sort_keys=True).encode()).hexdigest()[:16]
    return Outcome(
        scenario.name,
        seed,
        positions,
        round(worst, 6),
        round(nns, 6),
        None if time_to_flat is None else round(time_to_flat, 3),
        dict(sorted(exercised.items())),
        str(funding_engine),
        str(funding_venue),
        len(records),
        sum(applied.values()),
        tuple(checks),
        digest,
    )


async def _observed(inner: SimVenue, runners: Mapping[str, Any]) -> dict[str, int]:
    """What the venue and the positions saw happen, beside the injected faults: venue-generated
    fills by kind (``liquidation``, ``adl``), ``partial_fill`` (an order done with part of its
    quantity), ``negative_funding`` settlements, and ``exit_funding_flipped`` exits."""
    out: Counter[str] = Counter()
    for iid in sorted(inner.exchange.instruments, key=str):
        for f in await inner.fills_since(iid, 0):
            if f.venue_generated is not None:
                out[str(f.venue_generated.value).lower()] += 1
    for r in runners.values():
        for o in r.position.orders:
            if not o.working and ZERO < o.filled < o.quantity:
                out["partial_fill"] += 1
        if "funding flipped" in r.position.reason:
            out["exit_funding_flipped"] += 1
    out["negative_funding"] = sum(1 for f in await inner.funding_income_since(0) if f.amount < 0)
    return {k: v for k, v in out.items() if v}


def _describe(e: BaseException) -> str:
    """The leaf exceptions of ``e`` (exception groups flattened), as ``Type: message``."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(_describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


def _q(d: Decimal) -> str:
    return f"{d:.6f}" if d.is_finite() and not math.isnan(d) else str(d)
