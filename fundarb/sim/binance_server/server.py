"""BinanceServer: the simulated exchange behind Binance's REST and websocket interfaces, on loopback.

One venue (a :class:`~fundarb.sim.venue.SimVenue` over one SimExchange and a market driver, or a
:class:`~fundarb.sim.faults.FaultyVenue` around one) answers both faces; it keeps its state for as
long as the server runs, so an engine can be killed and restarted against it. REST is served by
hypercorn's Trio worker, websockets by trio-websocket on a second port::

    server = BinanceServer.for_tests(credentials={"key": "secret"})
    urls = await nursery.start(server.run)          # ServerUrls(http=..., ws=...)
    venue = BinanceVenue(Credentials("key", "secret"), base_urls=urls.base_urls())

Server time is the venue's sim time (``SimVenue.sim_time_ms``); signed requests are checked
against it, so a client syncs its clock with ``GET /fapi/v1/time`` as it would with Binance.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any

import attrs
import hypercorn.trio
import trio
from hypercorn.config import Config

from fundarb.core.model import Wallet
from fundarb.sim.binance_server._control import ServerControl
from fundarb.sim.binance_server._rest import RestApp
from fundarb.sim.binance_server._state import VENUE, ServerState
from fundarb.sim.binance_server._streams import run_ws_server
from fundarb.sim.drivers import MarketDriver, MarketTick
from fundarb.sim.venue import SimVenue
from fundarb.venues.binance._endpoints import BaseUrls
from fundarb.venues.protocol import Venue

__all__ = ["BinanceServer", "ServerStatistics", "ServerUrls", "ShiftedDriver", "venue_from_scenario"]


@attrs.frozen
class ServerUrls:
    """Where a running server listens."""

    http: str
    ws: str

    def base_urls(self) -> BaseUrls:
        """Every Binance host of the adapter pointed at this server."""
        return BaseUrls(
            spot=self.http, futures=self.http, spot_stream=self.ws,
            spot_ws_api=f"{self.ws}/ws-api/v3", futures_stream=self.ws,
        )  # fmt: skip

    def banner(self) -> str:
        """The first line ``sim serve`` prints: ``listening http://... ws://...``."""
        return f"listening {self.http} {self.ws}"

    @classmethod
    def from_banner(cls, line: str) -> ServerUrls:
        """Parse the line :meth:`banner` printed (what a parent process reads); ValueError if it is not one."""
        words = line.split()
        if len(words) != 3 or words[0] != "listening":
            raise ValueError(f"not a loopback server banner: {line[:200]!r}")
        http, ws = words[1], words[2]
        if not http.startswith("http://") or not ws.startswith("ws://"):
            raise ValueError(f"not a loopback server banner: {line[:200]!r}")
        return cls(http=http, ws=ws)


@attrs.frozen
class ServerStatistics:
    """What :meth:`BinanceServer.statistics` reports."""

    requests: int
    connections: int
    injected: Mapping[str, int]
    errors: Mapping[int, int]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class BinanceServer:
    """A Binance-compatible loopback server over ``venue`` (see the module docstring).

    ``credentials`` maps accepted API keys to their secrets. ``clock`` is the server time in ms
    (default: the venue's ``sim_time_ms`` when it has one, else the wall clock).
    """

    def __init__(
        self,
        venue: Venue,
        *,
        credentials: Mapping[str, str],
        clock: Callable[[], int] | None = None,
    ) -> None:
        if venue.name != VENUE:
            raise ValueError(f"the venue behind a Binance server must be named {VENUE!r}, got {venue.name!r}")
        if not credentials:
            raise ValueError("credentials: at least one API key is needed")
        if clock is None:
            sim_clock = getattr(venue, "sim_time_ms", None)
            clock = sim_clock if callable(sim_clock) else _wall_ms
        self.state = ServerState(venue, dict(credentials), clock)

    def __repr__(self) -> str:
        return f"BinanceServer(venue={self.venue.name!r}, keys={len(self.state.secrets)})"

    @classmethod
    def for_tests(
        cls,
        *,
        credentials: Mapping[str, str],
        seed: int = 0,
        speed: float = 1.0,
        step_ms: int = 1000,
        prices: Mapping[str, Decimal | tuple[Decimal, Decimal]] | None = None,
        funding_rate: Decimal = Decimal("0.0001"),
        driver: MarketDriver | None = None,
        balances: Mapping[tuple[Wallet, str], Decimal] | None = None,
        start_ms: int | None = None,
        wrap: Callable[[SimVenue], Venue] | None = None,
    ) -> BinanceServer:
        """A server over a funded ``SimVenue.for_tests(venue="binance", ...)``; ``wrap`` may put a
        fault layer around it (``lambda v: FaultyVenue(v, plan, rng)``).

        ``start_ms`` is where sim (= server) time starts; default: the wall clock now, so that at
        speed 1 a client's unsynced clock is already within the receive window, as with Binance.
        """
        sim = SimVenue.for_tests(
            seed=seed, speed=speed, step_ms=step_ms, prices=prices, funding_rate=funding_rate,
            driver=driver, balances=balances, venue=VENUE,
            start_ms=_wall_ms() if start_ms is None else start_ms,
        )  # fmt: skip
        return cls(wrap(sim) if wrap is not None else sim, credentials=credentials, clock=sim.sim_time_ms)

    @property
    def venue(self) -> Venue:
        """The venue behind the server."""
        return self.state.venue

    @property
    def control(self) -> ServerControl:
        """Faults on demand (429, 5xx, lost acknowledgements, websocket drops and silence)."""
        return self.state.control

    async def run(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int = 0,
        *,
        task_status: trio.TaskStatus[ServerUrls] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve REST on ``host:port`` and websockets on ``host:ws_port`` (0 picks free ports) until
        cancelled; ``task_status`` gets the :class:`ServerUrls`."""
        self.state.instruments = {i.id: i for i in await self.venue.instruments()}
        config = Config()
        config.bind = [f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = None
        config.keep_alive_timeout = 24 * 3600  # virtual time jumps in tests must not close idle connections
        config.graceful_timeout = 0.1
        app: Any = RestApp(self.state)
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(hypercorn.trio.serve, app, config, mode="asgi"))
            ws = await nursery.start(run_ws_server, self.state, host, ws_port)
            http = binds[0] if binds else f"http://{host}:{port}"
            task_status.started(ServerUrls(http=http, ws=f"ws://{host}:{ws}"))

    def expire_listen_keys(self) -> None:
        """Expire the USDⓈ-M listen keys (see :meth:`ServerState.expire_listen_keys`)."""
        self.state.expire_listen_keys()

    def statistics(self) -> ServerStatistics:
        """Requests served, open websocket connections, faults injected, error answers by Binance code."""
        return ServerStatistics(
            self.state.requests_served,
            self.state.control.connections(),
            dict(self.state.control.injected),
            dict(self.state.errors),
        )


@attrs.frozen
class ShiftedDriver:
    """``inner`` moved ``offset_ms`` later in time (a historical scenario replayed from now, so the
    server's clock stays near the wall clock that clients sign with)."""

    inner: MarketDriver
    offset_ms: int

    @property
    def symbols(self) -> tuple[str, ...]:
        """The inner driver's symbols."""
        return self.inner.symbols

    @property
    def start_ms(self) -> int:
        """The inner start, shifted."""
        return self.inner.start_ms + self.offset_ms

    @property
    def end_ms(self) -> int | None:
        """The inner end, shifted (None: unbounded)."""
        end = self.inner.end_ms
        return None if end is None else end + self.offset_ms

    def tick_at(self, ts_ms: int) -> MarketTick:
        """The inner market ``offset_ms`` earlier, stamped ``ts_ms``."""
        return attrs.evolve(self.inner.tick_at(ts_ms - self.offset_ms), ts_ms=ts_ms)


def venue_from_scenario(
    path: str, *, seed: int | None, speed: float | None, now_ms: int
) -> tuple[Venue, SimVenue]:
    """The venue a scenario file describes, for a server: its market (shifted to start at
    ``now_ms``), step, speed (``speed`` overrides) and faults (a FaultyVenue when it has any).
    Returns (venue to serve, the SimVenue inside). Raises ValueError for an unusable file."""
    from fundarb.sim.faults import FaultPlan, FaultyVenue
    from fundarb.sim.scenario import load_scenario

    scenario = load_scenario(path)  # ScenarioError is a ValueError
    run_seed = scenario.seed if seed is None else seed
    driver = ShiftedDriver(scenario.driver(run_seed), now_ms - scenario.start_ms)
    sim = SimVenue.for_tests(
        seed=run_seed, speed=check_speed(scenario.speed if speed is None else speed),
        step_ms=scenario.step_ms, driver=driver, venue=VENUE, start_ms=now_ms,
    )  # fmt: skip
    if scenario.faults == FaultPlan():
        return sim, sim
    return FaultyVenue(sim, scenario.faults, random.Random(run_seed)), sim


def check_speed(speed: float) -> float:
    """``speed`` if it is a finite positive number, else ValueError."""
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be a finite number > 0, got {speed}")
    return speed
