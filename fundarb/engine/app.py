"""The engine: one root nursery holding venues, ingestion, positions, strategy, journal and health.

::

    run_engine(config)
     └── root nursery
          ├── journal writer (batched, non-critical events)
          ├── per venue: market-data stream -> bounded channel -> market state
          ├── per venue: user-data stream  -> bounded channel -> position manager router
          ├── position manager: one cancel scope per position (shielded clean-up on cancel)
          ├── carry trader: core.strategy.decide() on market state -> entries and exits
          ├── reconciler (delta maintenance), status line, health server
          └── signal watcher: SIGINT/SIGTERM -> cancel the root; positions clean up shielded

Venue tasks that die (VenueUnavailable) take the engine down through the nursery: the
positions' clean-up still runs (shielded) on the way out, so no leg is left unwound silently.
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from fundarb.config import Config
from fundarb.core import strategy as st
from fundarb.core.model import InstrumentId, Market, OrderRequest
from fundarb.core.position import PositionState
from fundarb.core.venue_events import FundingSettled, StreamDisconnected, StreamResynced, VenueEvent
from fundarb.engine.clock import EngineClock
from fundarb.engine.delta import run_delta_maintenance
from fundarb.engine.executor import ExecutorSettings
from fundarb.engine.health import EngineHealth, PrometheusTelemetry
from fundarb.engine.manager import PositionManager, is_user_stream
from fundarb.engine.market import MarketState, UserDataSink, run_ingest
from fundarb.engine.position_runner import CleanupReason
from fundarb.engine.reconcile import StartupReconciliation, reconcile_on_start
from fundarb.engine.records import EngineStarted
from fundarb.engine.recovery import fold_journal
from fundarb.engine.risk_records import ObservedVenue
from fundarb.engine.risk_service import RiskService
from fundarb.engine.status import run_status
from fundarb.engine.trader import Candidate, CarryTrader
from fundarb.engine.venues import instruments_with_retry
from fundarb.journal import open_journal
from fundarb.journal.base import Entry, Journal
from fundarb.metrics import Metrics, create_metrics
from fundarb.venues.errors import VenueError
from fundarb.venues.protocol import Venue

__all__ = ["Engine", "candidates_for", "run_engine", "tune_gc"]

log = logging.getLogger("fundarb.engine")


def tune_gc() -> None:
    """Keep the cyclic collector's pauses short: freeze what start-up allocated (modules, config,
    instruments) so no collection scans it again, and keep Python's default thresholds.

    Measured with bench_tick_to_order (a loopback round trip of ~10 REST and WebSocket calls per
    position): httpx leaves ~50 objects of cyclic garbage per request, so a raised gen-0
    threshold (50,000) made each young collection free ~50k objects at once, 17-20 ms of stall;
    with the defaults each frees a few hundred (worst stall 4-6 ms, mostly gen-2 at ~1.5 ms)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 10)


async def candidates_for(venues: Mapping[str, Venue], symbols: tuple[str, ...]) -> list[Candidate]:
    """Perp/spot pairs of the configured symbols on each venue."""
    out: list[Candidate] = []
    for venue in venues.values():
        instruments = await instruments_with_retry(venue)
        by_key = {(i.id.market, i.id.symbol): i for i in instruments}
        for sym in symbols:
            perp, spot = by_key.get((Market.PERPETUAL, sym)), by_key.get((Market.SPOT, sym))
            if perp is not None and spot is not None:
                out.append(Candidate(perp, spot))
            else:
                log.warning("%s: %s has no perp+spot pair, skipped", venue.name, sym)
    return out


@attrs.define(eq=False)
class Engine:
    """Everything one running engine owns; :meth:`run` is the root nursery."""

    config: Config
    venues: dict[str, Venue]
    journal: Journal
    clock: EngineClock
    metrics: Metrics
    market: MarketState = attrs.field(init=False)
    manager: PositionManager = attrs.field(init=False)
    risk: RiskService = attrs.field(init=False)
    trader: CarryTrader | None = None
    health: EngineHealth | None = None
    halted: str = ""
    http_urls: list[str] = attrs.Factory(list)
    costs: st.CostModel = attrs.field(factory=st.CostModel.binance_vip0)
    reconciliation: StartupReconciliation | None = None

    def __attrs_post_init__(self) -> None:
        cfg = self.config
        self.market = MarketState(self.clock, int(cfg.risk.stale_after * 1000))
        settings = ExecutorSettings(order_timeout=cfg.execution.order_timeout)
        # every venue call feeds the risk service's API error-rate breaker
        self.venues = {
            n: ObservedVenue(v, self._on_venue_call, self._gate_order) for n, v in self.venues.items()
        }
        self.manager = PositionManager(
            self.venues, self.journal, self.clock, PrometheusTelemetry(self.metrics), settings
        )
        self.risk = RiskService.from_config(
            cfg, self.manager, self.market, self.journal, self.clock, self.metrics
        )
        self.risk.venues = self.venues

    def _on_venue_call(self, venue: str, ok: bool) -> None:
        self.risk.on_venue_call(venue, ok)

    def _gate_order(self, request: OrderRequest) -> str | None:
        return self.risk.check_order(request)  # the pre-trade gate on every order sent

    def _params(self) -> st.StrategyParams:
        cfg = self.config
        return st.StrategyParams(
            entry_apr=float(cfg.strategy.entry_apr),
            exit_apr=float(cfg.strategy.exit_apr),
            leverage=float(cfg.risk.leverage),
        )

    def _entries_allowed(self, c: Candidate) -> str | None:
        if self.halted:
            return f"halted: {self.halted}"
        blocked = self.risk.entries_allowed(c.perp, c.spot)  # journaled and counted
        if blocked:
            return blocked
        stale = self.market.stale([c.perp.id, c.spot.id])
        if stale:
            return f"stale market data: {', '.join(map(str, stale))}"
        return None

    async def kill(self, reason: str) -> dict[str, Any]:
        """Kill switch: no new entries, flatten every position (journaled by each position)."""
        self.halted = reason or "kill switch"
        self.metrics.record_kill("http")
        self.risk.kill(self.halted)  # HALTED globally, journaled
        self.manager.flatten_all(self.halted)
        return {"halted": True, "reason": self.halted, "positions": len(self.manager.active())}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled. Positions clean up (shielded) when this is cancelled."""
        cfg = self.config
        await self.journal.append([Entry(EngineStarted(cfg.mode.value, "0.1.0"), self.clock.now_ms())])
        candidates = await candidates_for(self.venues, cfg.symbols)
        instruments = [i for c in candidates for i in (c.perp.id, c.spot.id)]
        async with trio.open_nursery() as root:
            await root.start(self.journal.run_writer)
            await root.start(self.manager.run)
            self.risk.watch(instruments)
            await root.start(self.risk.run)
            records = await self.journal.read()
            recovered = fold_journal(records)
            for pid, why in recovered.mismatches.items():
                log.critical("position %s does not replay from the journal: %s", pid, why)
            # reconcile with the venues (issue 6): quarantine, orphans, corrections, ack flag
            startup = await reconcile_on_start(self.journal, self.venues, records, self.clock)
            self.reconciliation = startup
            recovered = startup.recovered
            await self.manager.adopt_recovered(recovered)
            startup.deliver(self.manager.runners)
            if startup.halt_reason:
                self.halted = startup.halt_reason
                log.critical("no new positions: %s", startup.halt_reason)
            health = EngineHealth(self.manager, self.market, instruments, self.kill)
            self.health = health
            for name, venue in self.venues.items():
                health.venues_connected[name] = False
                await root.start(self._run_venue, venue, [i for i in instruments if i.venue == name])
            health.reconciled = True
            self.trader = CarryTrader(
                self.market,
                self.manager,
                candidates,
                self.costs,
                self._params(),
                float(cfg.risk.capital),
                float(cfg.risk.max_position_notional),
                cfg.risk.max_open_positions,
                hedge_timeout_ms=int(cfg.execution.hedge_timeout * 1000),
                leg_a_is_perp=cfg.strategy.leg_a is Market.PERPETUAL,
                entry_time_in_force=cfg.strategy.entry_tif,
                entry_timeout=cfg.execution.entry_timeout,
                entries_allowed=self._entries_allowed,
            )
            for runner in self.manager.active():  # recovered positions are held: no second entry
                plan = runner.position.plan
                perp = plan.leg_a if plan.leg_a.instrument.is_perpetual else plan.leg_b
                self.trader.held.setdefault(perp.instrument.id, runner)
            await root.start(self.trader.run)
            await root.start(run_delta_maintenance, self.manager, self.venues, 30.0)
            await root.start(self._run_http, health)
            await root.start(run_status, self, cfg.execution.status_interval)
            tune_gc()  # start-up done: freeze its objects out of the collector's way
            task_status.started()

    async def _run_venue(
        self, venue: Venue, instruments: list[InstrumentId], *, task_status: trio.TaskStatus[None]
    ) -> None:
        market_send, market_receive = trio.open_memory_channel[VenueEvent](1024)
        assert self.health is not None
        health = self.health

        down_since: dict[str, int] = {}

        def on_user(event: VenueEvent) -> None:
            if isinstance(event, StreamDisconnected):
                health.venues_connected[event.venue] = False
                self.metrics.record_reconnect(event.venue, event.stream)
                if is_user_stream(event.stream):
                    down_since.setdefault(event.stream, self.clock.now_ms())
            elif isinstance(event, StreamResynced):
                health.venues_connected[event.venue] = True
                since = down_since.pop(event.stream, None)
                if since is not None:  # funding settled while the stream was down: read it over REST
                    n.start_soon(self._catch_up_funding, venue, since)
            self.risk.on_venue_event(event)
            self.manager.route(event)

        async with trio.open_nursery() as n:
            await n.start(run_ingest, market_receive, self.market, on_user)
            await n.start(venue.run_market_data, instruments, market_send)
            # user data is applied in its stream's task: a fill reaches its position without a hop
            await n.start(venue.run_user_data, UserDataSink(self.market, on_user))
            health.venues_connected[venue.name] = True
            task_status.started()

    async def _catch_up_funding(self, venue: Venue, since_ms: int) -> None:
        """Route the funding income the venue booked since ``since_ms`` (counted once per position)."""
        try:
            with trio.fail_after(30):
                payments = await venue.funding_income_since(since_ms - 60_000)
        except (VenueError, trio.TooSlowError) as e:
            log.warning(
                "%s: funding catch-up failed (%s); the reconciler will retry", venue.name, type(e).__name__
            )
            return
        for payment in payments:
            self.manager.route(FundingSettled(payment))

    async def _run_http(self, health: EngineHealth, *, task_status: trio.TaskStatus[None]) -> None:
        from fundarb.http import create_app, run_http_server

        cfg = self.config
        bind = f"{cfg.http.bind.host}:{cfg.http.bind.port}"
        app = create_app(health, self.metrics, bind=bind, admin_token=cfg.http.admin_token)
        async with trio.open_nursery() as n:
            self.http_urls = await n.start(run_http_server, app, bind)
            log.info("health endpoint on %s", ", ".join(self.http_urls))
            task_status.started()

    def flatten_on_exit(self) -> None:
        """Mark every open position to be flattened (not just de-risked) by its clean-up."""
        for runner in self.manager.active():
            if runner.state is not PositionState.FAILED:
                runner.cleanup_reason = CleanupReason.FLATTEN


async def run_engine(
    config: Config,
    venues: dict[str, Venue],
    *,
    metrics: Metrics | None = None,
    clock: EngineClock | None = None,
    journal_options: dict[str, Any] | None = None,
    task_status: trio.TaskStatus[Engine] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the journal and run an :class:`Engine` on ``venues`` until cancelled or a signal.

    ``journal_options`` go to :func:`fundarb.journal.open_journal` (tests pass
    ``inline_for_tests=True`` so SQLite calls do not race Trio's autojump clock).
    """
    clock = clock or EngineClock.start()
    async with open_journal(
        config.database_url.reveal() if config.database_url else None,
        config.data_dir,
        **(journal_options or {}),
    ) as journal:
        engine = Engine(config, venues, journal, clock, metrics or create_metrics())
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as n:
                await n.start(engine.run)
                n.start_soon(_watch_signals, scope, engine, config.strategy.flatten_on_exit)
                task_status.started(engine)


async def _watch_signals(scope: trio.CancelScope, engine: Engine, flatten: bool) -> None:
    try:
        signals = trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
    except RuntimeError:  # not in the main thread (tests): nothing to watch
        return
    with signals as received:
        async for sig in received:
            log.warning("signal %s: shutting down (flatten=%s)", signal.Signals(sig).name, flatten)
            if flatten:
                engine.flatten_on_exit()
            scope.cancel()
            return
