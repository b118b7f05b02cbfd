"""Build the venues a configuration asks for: the simulated venue in paper mode, real adapters
when live (or testnet) trading is configured and explicitly enabled."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from fundarb.config import Config, Mode
from fundarb.core.model import Instrument
from fundarb.venues.errors import VenueError
from fundarb.venues.protocol import Venue

__all__ = ["instruments_with_retry", "loopback_urls", "open_venues", "paper_venue"]

if TYPE_CHECKING:
    from fundarb.venues.binance import BaseUrls

log = logging.getLogger("fundarb.venues")


def loopback_urls(banner: str) -> BaseUrls:
    """Binance routes of a local ``fundarb sim serve --venue binance`` (its ``http:// ws://`` line)."""
    from fundarb.venues.binance import BaseUrls

    http, ws = banner.split()
    return BaseUrls(spot=http, futures=http, spot_stream=ws, spot_ws_api=f"{ws}/ws-api/v3", futures_stream=ws)


def paper_venue(config: Config) -> Venue:
    """The simulated venue replaying real history from ``FUNDARB_SIM_START``, time-accelerated."""
    from fundarb.sim.venue import SimVenue

    return SimVenue.from_replay(
        symbols=config.symbols,
        start_ms=config.sim.start_ms,
        speed=config.sim.speed,
        seed=config.sim.seed,
        data_dir=config.sim.data,
    )


@asynccontextmanager
async def open_venues(config: Config) -> AsyncIterator[dict[str, Venue]]:
    """The configured venues by name; closed on exit."""
    venues: dict[str, Venue] = {}
    try:
        for name in config.venues:
            if name == "sim" or config.mode is Mode.PAPER:
                venues["sim"] = paper_venue(config)
            elif name == "binance":
                from fundarb.venues.binance import BinanceVenue, Credentials

                creds = config.credentials.for_venue("binance")
                if creds is None:  # load_config refuses live mode without keys; be explicit anyway
                    raise ValueError("binance is configured without FUNDARB_BINANCE_API_KEY/SECRET")
                venues["binance"] = BinanceVenue(
                    Credentials(creds.key.reveal(), creds.secret.reveal()),
                    testnet=config.uses_testnet("binance"),
                    base_urls=loopback_urls(config.binance_loopback) if config.binance_loopback else None,
                    call_timeout=config.execution.order_timeout,
                    watchdog=config.execution.ws_watchdog,
                    ws_orders=config.binance_ws_orders,
                )
            else:
                raise ValueError(f"venue {name!r} has no adapter yet")
        yield venues
    finally:
        for venue in venues.values():
            await venue.aclose()


async def instruments_with_retry(venue: Venue, attempts: int = 6) -> list[Instrument]:
    """A venue's instruments; a transient failure at start-up is retried with backoff."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            with trio.fail_after(30):
                return await venue.instruments()
        except (VenueError, trio.TooSlowError) as e:
            if attempt == attempts:
                raise
            log.warning(
                "%s: instruments failed (%s), retry %d in %.1fs", venue.name, type(e).__name__, attempt, delay
            )
            await trio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
