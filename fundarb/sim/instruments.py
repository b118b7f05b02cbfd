"""Default instruments of the simulated venue, with Binance-like trading rules.

``sim:perp:BTCUSDT`` (tick 0.1, lot 0.001, min notional 100), ``sim:perp:ETHUSDT`` (tick 0.01,
lot 0.001, min notional 20), and spot ``sim:spot:BTCUSDT`` / ``sim:spot:ETHUSDT`` (tick 0.01,
lot 0.00001 / 0.0001, min notional 5). Funding every 8 hours.
"""

from __future__ import annotations

from decimal import Decimal as D

from fundarb.core.model import Instrument, InstrumentId, Market

__all__ = ["DEFAULT_SYMBOLS", "default_instruments"]

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")

_RULES = {
    ("BTCUSDT", Market.PERPETUAL): (D("0.1"), D("0.001"), D("0.001"), D("100")),
    ("ETHUSDT", Market.PERPETUAL): (D("0.01"), D("0.001"), D("0.001"), D("20")),
    ("BTCUSDT", Market.SPOT): (D("0.01"), D("0.00001"), D("0.00001"), D("5")),
    ("ETHUSDT", Market.SPOT): (D("0.01"), D("0.0001"), D("0.0001"), D("5")),
}


def default_instruments(venue: str = "sim", symbols: tuple[str, ...] = DEFAULT_SYMBOLS) -> list[Instrument]:
    """Spot and perpetual instruments of ``symbols`` (each must end in USDT) on ``venue``."""
    out: list[Instrument] = []
    for sym in symbols:
        if not sym.endswith("USDT") or len(sym) <= 4:
            raise ValueError(f"sim symbols must look like <COIN>USDT, got {sym!r}")
        base = sym[:-4]
        for market in (Market.SPOT, Market.PERPETUAL):
            tick, lot, min_qty, min_notional = _RULES.get(
                (sym, market), (D("0.0001"), D("0.01"), D("0.01"), D("5"))
            )
            out.append(
                Instrument(
                    InstrumentId(venue, market, sym),
                    base=base,
                    quote="USDT",
                    tick_size=tick,
                    lot_step=lot,
                    min_qty=min_qty,
                    min_notional=min_notional,
                    funding_interval_hours=8 if market is Market.PERPETUAL else 0,
                )
            )
    return out
