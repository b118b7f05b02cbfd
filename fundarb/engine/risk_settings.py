"""How the engine's risk service runs (:class:`RiskServiceSettings`) and its limits from the
configuration (:func:`limits_from`). Kept apart from :mod:`fundarb.engine.risk_service`."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import attrs

from fundarb.config_model import Config
from fundarb.core.model import Wallet
from fundarb.core.risk import RiskLimits

__all__ = ["RiskServiceSettings", "limits_from"]


@attrs.frozen
class RiskServiceSettings:
    """How the service runs. Intervals in seconds; ``margin_interval=None`` turns the margin
    monitor off (an *unmanaged* book, for comparisons; read on every pass, so
    ``service.settings = attrs.evolve(...)`` retunes a running service), ``clock_interval=None``
    the clock check (fixed at start).
    ``entry_leverage`` is the perp leg's leverage the gate judges entries at; ``equity`` the
    account equity for gross leverage; ``delta_tolerance`` in quote units per asset. A margin
    top-up runs in its own task under ``transfer_timeout``; after one fails the venue's ladder
    offers no TOP_UP for ``top_up_cooldown`` seconds (it reduces pairwise instead)."""

    entry_leverage: Decimal
    equity: Decimal
    max_position_notional: Decimal
    tick_interval: float = 1.0
    margin_interval: float | None = 5.0
    clock_interval: float | None = 60.0
    call_timeout: float = 5.0
    transfer_timeout: float = 60.0
    top_up_cooldown: float = 300.0
    delta_tolerance: Decimal = Decimal(1000)
    collateral_asset: str = "USDT"
    top_up_from: Wallet = Wallet.SPOT
    top_up_to: Wallet = Wallet.FUTURES
    tail_moves: Mapping[str, Decimal] = attrs.field(factory=dict)


def limits_from(config: Config) -> RiskLimits:
    """The gate's limits from the FUNDARB_* risk settings."""
    r = config.risk
    limits = RiskLimits.from_capital(
        r.capital,
        r.leverage,
        r.max_position_notional,
        r.max_open_positions,
        r.daily_loss_limit,
        r.min_liq_distance,
    )
    # no tail-move history is loaded yet: judge liquidation distance by the configured floor
    return attrs.evolve(limits, require_tail_move=False)
