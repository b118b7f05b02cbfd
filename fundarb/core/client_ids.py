"""Deterministic client order ids, shared by every venue adapter.

A client order id is a pure function of ``(position_id, leg, attempt)``, so an engine that
restarts mid-trade can recompute the ids it may have sent and query the venue for them
instead of guessing. The format is::

    fa.<position_id>.<leg>.<attempt>

``position_id`` and ``leg`` use ``[A-Za-z0-9_-]`` (no dots: the dot is the separator) and
``attempt`` is a non-negative decimal integer. The whole id is at most 36 characters and
matches Binance's ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$`` (Bybit's ``orderLinkId`` allows 36 and OKX's
``clOrdId`` 32 alphanumerics: adapters with tighter rules must check ``len`` themselves).

Ids the venue generates for its own orders (Binance: ``autoclose-...`` for liquidations,
``adl_autoclose...`` for auto-deleveraging, ``settlement_autoclose-...`` for delisting
settlement) are recognised by :func:`venue_generated_kind`.

>>> cid = make_client_order_id("p42", "perp", 3)
>>> cid
'fa.p42.perp.3'
>>> parse_client_order_id(cid)
('p42', 'perp', 3)
>>> parse_client_order_id("x-ccxt123") is None
True
"""

from __future__ import annotations

import re

from fundarb.core.errors import InvalidValue
from fundarb.core.model import VenueFillKind

__all__ = [
    "MAX_LENGTH",
    "PREFIX",
    "is_venue_generated",
    "make_client_order_id",
    "parse_client_order_id",
    "venue_generated_kind",
]

#: Every id we generate starts with this, so foreign ids are never mistaken for ours.
PREFIX = "fa"
#: Binance's limit for ``newClientOrderId``.
MAX_LENGTH = 36

_PART = re.compile(r"[A-Za-z0-9_-]+")
_ID = re.compile(r"fa\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.(0|[1-9][0-9]*)")
_BINANCE_ALLOWED = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")

# Checked in this order: "settlement_autoclose-" must win over "autoclose-" (it does not start
# with it, but keep the most specific prefixes first anyway).
_VENUE_PREFIXES: tuple[tuple[str, VenueFillKind], ...] = (
    ("settlement_autoclose-", VenueFillKind.SETTLEMENT),
    ("adl_autoclose", VenueFillKind.ADL),
    ("autoclose-", VenueFillKind.LIQUIDATION),
)


def make_client_order_id(position_id: str, leg: str, attempt: int) -> str:
    """The client order id for ``attempt`` (0, 1, ...) of ``leg`` of position ``position_id``.

    Raises :class:`~fundarb.core.errors.InvalidValue` when a part has characters outside
    ``[A-Za-z0-9_-]``, ``attempt`` is negative or not an int, or the id would exceed 36
    characters (``position_id`` + ``leg`` together may use up to ~28).
    """
    for name, part in (("position_id", position_id), ("leg", leg)):
        if not isinstance(part, str) or not _PART.fullmatch(part):
            raise InvalidValue(f"client order id: {name} must match [A-Za-z0-9_-]+, got {part!r}")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise InvalidValue(f"client order id: attempt must be an int >= 0, got {attempt!r}")
    cid = f"{PREFIX}.{position_id}.{leg}.{attempt}"
    if len(cid) > MAX_LENGTH:
        raise InvalidValue(
            f"client order id: {cid!r} is {len(cid)} characters, the limit is {MAX_LENGTH}; "
            "use a shorter position id"
        )
    assert _BINANCE_ALLOWED.fullmatch(cid)
    return cid


def parse_client_order_id(cid: str) -> tuple[str, str, int] | None:
    """``(position_id, leg, attempt)`` for an id made by :func:`make_client_order_id`, else None."""
    if not isinstance(cid, str) or len(cid) > MAX_LENGTH:
        return None
    m = _ID.fullmatch(cid)
    if m is None:
        return None
    return m.group(1), m.group(2), int(m.group(3))


def venue_generated_kind(cid: str) -> VenueFillKind | None:
    """Which kind of venue-generated order ``cid`` names (liquidation, ADL, settlement), or None."""
    if not isinstance(cid, str):
        return None
    for prefix, kind in _VENUE_PREFIXES:
        if cid.startswith(prefix):
            return kind
    return None


def is_venue_generated(cid: str) -> bool:
    """True when the venue, not we, created the order with this client id."""
    return venue_generated_kind(cid) is not None
