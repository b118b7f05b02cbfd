"""Instrument rules from ``exchangeInfo`` filters, checked before an order is sent (pure).

PRICE_FILTER (tick, min/max price), LOT_SIZE (step, min/max qty), MARKET_LOT_SIZE (the same
for market orders), MIN_NOTIONAL / NOTIONAL (minimum notional). A 0 in a filter disables that
rule, as Binance documents. The core :class:`~fundarb.core.model.Instrument` carries the
tick/lot/min rules; :class:`InstrumentRules` adds the bounds it does not model.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from fundarb.core.errors import InvalidOrder, InvalidValue
from fundarb.core.model import ZERO, Instrument, Market, OrderRequest, OrderType
from fundarb.venues.binance._schemas import dec, text
from fundarb.venues.binance._translate import DEFAULT_FUNDING_HOURS, instrument_id

__all__ = ["InstrumentRules", "rules_from_exchange_info"]


@attrs.frozen
class InstrumentRules:
    """An instrument plus the filter bounds the core model does not carry (0 = no bound)."""

    instrument: Instrument
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO
    max_qty: Decimal = ZERO
    market_step: Decimal = ZERO
    market_min_qty: Decimal = ZERO
    market_max_qty: Decimal = ZERO
    notional_applies_to_market: bool = True

    def check(self, request: OrderRequest, reference_price: Decimal | None = None) -> None:
        """Raise :class:`~fundarb.core.errors.InvalidOrder` if Binance would reject ``request``'s
        price or size. Market orders are checked against MARKET_LOT_SIZE and, when
        ``reference_price`` is given, the minimum notional."""
        inst, qty, price = self.instrument, request.quantity, request.price
        if request.order_type is OrderType.MARKET:
            if self.market_step > 0 and qty % self.market_step != 0:
                raise InvalidOrder(
                    f"{inst.id}: market quantity {qty} is not a multiple of {self.market_step}"
                )
            if qty < self.market_min_qty:
                raise InvalidOrder(f"{inst.id}: market quantity {qty} is below {self.market_min_qty}")
            if self.market_max_qty > 0 and qty > self.market_max_qty:
                raise InvalidOrder(f"{inst.id}: market quantity {qty} is above {self.market_max_qty}")
            ref = reference_price if self.notional_applies_to_market else None
            inst.check_order(qty, None, ref)
            return
        assert price is not None
        inst.check_order(qty, price)
        if self.max_qty > 0 and qty > self.max_qty:
            raise InvalidOrder(f"{inst.id}: quantity {qty} is above the maximum {self.max_qty}")
        if self.min_price > 0 and price < self.min_price:
            raise InvalidOrder(f"{inst.id}: price {price} is below the minimum {self.min_price}")
        if self.max_price > 0 and price > self.max_price:
            raise InvalidOrder(f"{inst.id}: price {price} is above the maximum {self.max_price}")


def _symbol_rules(s: Mapping[str, Any], market: Market, interval: int) -> InstrumentRules:
    filters = {f["filterType"]: f for f in s["filters"]}
    pf, lot = filters["PRICE_FILTER"], filters["LOT_SIZE"]
    mlot = filters.get("MARKET_LOT_SIZE", {})
    notional = ZERO
    applies = True
    if "NOTIONAL" in filters:
        notional = dec(filters["NOTIONAL"]["minNotional"])
        applies = filters["NOTIONAL"].get("applyMinToMarket", True) is not False
    elif "MIN_NOTIONAL" in filters:
        f = filters["MIN_NOTIONAL"]
        notional = dec(f["notional"] if "notional" in f else f["minNotional"])
        applies = f.get("applyToMarket", True) is not False
    inst = Instrument(
        instrument_id(market, s["symbol"]),
        text(s["baseAsset"]),
        text(s["quoteAsset"]),
        dec(pf["tickSize"]),
        dec(lot["stepSize"]),
        dec(lot["minQty"]),
        notional,
        interval if market is Market.PERPETUAL else 0,
    )
    return InstrumentRules(
        inst,
        min_price=dec(pf["minPrice"]),
        max_price=dec(pf["maxPrice"]),
        max_qty=dec(lot["maxQty"]),
        market_step=dec(mlot["stepSize"]) if "stepSize" in mlot else ZERO,
        market_min_qty=dec(mlot["minQty"]) if "minQty" in mlot else ZERO,
        market_max_qty=dec(mlot["maxQty"]) if "maxQty" in mlot else ZERO,
        notional_applies_to_market=applies,
    )


def rules_from_exchange_info(
    doc: Any, market: Market, intervals: Mapping[str, int]
) -> tuple[list[InstrumentRules], list[str]]:
    """``GET /api/v3/exchangeInfo`` or ``/fapi/v1/exchangeInfo`` -> (rules, skipped symbols).

    Only ``TRADING`` symbols are kept, and on USDⓈ-M only ``PERPETUAL`` contracts. A symbol whose
    filters cannot make a valid instrument (a 0 tick or step, an unsupported funding interval) is
    skipped and named in the second list rather than failing the whole answer.
    """
    rules: list[InstrumentRules] = []
    skipped: list[str] = []
    for s in doc["symbols"]:
        if s.get("status") != "TRADING":
            continue
        if market is Market.PERPETUAL and s.get("contractType") != "PERPETUAL":
            continue
        try:
            rules.append(_symbol_rules(s, market, intervals.get(s["symbol"], DEFAULT_FUNDING_HOURS)))
        except (InvalidValue, KeyError) as exc:
            skipped.append(f"{s.get('symbol')}: {exc}")
    return rules, skipped
