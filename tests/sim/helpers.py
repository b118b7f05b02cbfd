"""Shared helpers for the simulator tests."""

from __future__ import annotations

from decimal import Decimal as D

from fundarb.core.model import InstrumentId, Market, Wallet
from fundarb.sim.book import BookConfig
from fundarb.sim.exchange import ExchangeConfig, SimExchange
from fundarb.sim.instruments import default_instruments
from fundarb.sim.margin import MarginConfig

PERP = InstrumentId("sim", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("sim", Market.SPOT, "BTCUSDT")
HOUR = 3_600_000


def make_exchange(
    *,
    seed: int = 1,
    futures: str = "100000",
    spot_usdt: str = "100000",
    level_notional: str = "30000",
    jitter: float = 0.0,
    **config: object,
) -> SimExchange:
    """An exchange with account "a", BTC at 30000/30000 and a thin, regular book (1 BTC per level)."""
    cfg = ExchangeConfig(
        book=BookConfig(
            half_spread_bps=D("1"),
            level_step_bps=D("2"),
            level_notional=D(level_notional),
            levels=5,
            depth_jitter=jitter,
        ),
        **config,  # type: ignore[arg-type]
    )
    ex = SimExchange(default_instruments(), config=cfg, seed=seed)
    ex.open_account("a", {(Wallet.FUTURES, "USDT"): D(futures), (Wallet.SPOT, "USDT"): D(spot_usdt)})
    ex.update_market(0, {PERP: D(30000), SPOT: D(30000)})
    return ex


__all__ = ["HOUR", "PERP", "SPOT", "MarginConfig", "make_exchange"]
