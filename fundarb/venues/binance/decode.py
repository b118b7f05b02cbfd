"""Decode Binance websocket frames into normalized :mod:`fundarb.core.venue_events`.

Accepted frames: any single market-data or user-data event, a combined-stream envelope
``{"stream": ..., "data": ...}``, a WebSocket-API user-data wrapper ``{"subscriptionId": n,
"event": {...}}``, and arrays of events (``!markPrice@arr``). Which market a frame belongs to is
read from its shape (see :mod:`._translate`): the stream name is not needed.

Outcomes, and nothing else:

* a list of events (possibly empty);
* ``[]`` plus a count in :func:`decode_statistics` for event types we do not handle and for
  control messages (subscription acknowledgements, WS-API responses);
* :class:`~fundarb.venues.errors.DecodeError` for malformed input (bad JSON, wrong types,
  missing keys, NaN, negative sizes, crossed quotes, ...).

>>> [e.funding.rate for e in decode(b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"2","i":"1",'
...                                  b'"r":"0.0001","T":2}')]
[Decimal('0.0001')]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from fundarb.core.model import Wallet
from fundarb.core.prechecked import funding_received, quote_received
from fundarb.core.venue_events import VenueEvent
from fundarb.venues.binance import _translate as tr
from fundarb.venues.binance._translate import book_ticker as _book_ticker
from fundarb.venues.binance._translate import mark_price as _mark_price
from fundarb.venues.errors import DecodeError

__all__ = ["BinanceDecoder", "DecodeStatistics", "decode", "decode_statistics"]

_BAD_INPUT = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError)
_IGNORED_EVENTS = frozenset({"balanceUpdate", "listenKeyExpired", "eventStreamTerminated", "TRADE_LITE"})


@attrs.frozen
class DecodeStatistics:
    """Counters of one decoder since it was created."""

    frames: int
    events: int
    unknown: int
    control: int
    errors: int
    unknown_types: tuple[str, ...]


@attrs.define
class BinanceDecoder:
    """A frame decoder with its context: funding intervals per symbol (8 h when absent) and
    which wallet spot-shaped account frames belong to (``Wallet.MARGIN`` for a margin stream).

    Not thread-safe (counters); one per stream task is the intended use.
    """

    intervals: Mapping[str, int] = attrs.field(factory=dict)
    spot_wallet: Wallet = Wallet.SPOT
    _frames: int = 0  # frames other than _singles
    _events: int = 0  # events from those frames
    _singles: int = 0  # market-data frames that gave exactly one event (one counter, not two)
    _unknown: int = 0
    _control: int = 0
    _errors: int = 0
    _unknown_types: dict[str, int] = attrs.field(factory=dict)

    def decode(self, raw: bytes | str, *, received_ms: int = 0) -> list[VenueEvent]:
        """Decode one frame. ``received_ms`` stamps frames that carry no time (spot bookTicker)."""
        try:
            doc = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError) as exc:
            self._frames += 1
            self._errors += 1
            raise DecodeError(f"binance: not JSON: {exc}", raw=_preview(raw), venue=tr.VENUE) from None
        try:
            # The two market-data frames, most of the traffic, dispatched here in one test each;
            # everything else (envelopes, arrays, user data, control) goes through _document.
            e = doc.get("e") if type(doc) is dict else None
            if e == "markPriceUpdate":
                events: list[VenueEvent] = [funding_received(_mark_price(doc, self.intervals))]
                self._singles += 1
                return events
            if e == "bookTicker":
                events = [quote_received(_book_ticker(doc, received_ms))]
                self._singles += 1
                return events
            events = self._document(doc, received_ms)
        except DecodeError:
            self._frames += 1
            self._errors += 1
            raise
        except _BAD_INPUT as exc:
            self._frames += 1
            self._errors += 1
            raise DecodeError(
                f"binance: malformed frame ({type(exc).__name__}: {exc})", raw=_preview(raw), venue=tr.VENUE
            ) from exc
        self._frames += 1
        self._events += len(events)
        return events

    def statistics(self) -> DecodeStatistics:
        """A snapshot of the counters."""
        return DecodeStatistics(
            self._frames + self._singles,
            self._events + self._singles,
            self._unknown,
            self._control,
            self._errors,
            tuple(sorted(self._unknown_types)),
        )

    # --- dispatch ---

    def _document(self, doc: Any, received_ms: int) -> list[VenueEvent]:
        if type(doc) is dict:
            if "e" in doc:  # the common case: a raw stream frame
                return self._event(doc, received_ms)
            if "data" in doc and "stream" in doc:  # combined-stream envelope
                if type(doc["stream"]) is not str:
                    raise TypeError("stream: expected a string")
                doc = doc["data"]
            elif "event" in doc and "subscriptionId" in doc:  # WS-API user-data wrapper
                doc = doc["event"]
            if type(doc) is list:
                return self._array(doc, received_ms)
            if type(doc) is not dict:
                raise TypeError(f"expected an object, got {type(doc).__name__}")
            return self._event(doc, received_ms)
        if type(doc) is list:
            return self._array(doc, received_ms)
        raise TypeError(f"expected an object or an array, got {type(doc).__name__}")

    def _array(self, items: list[Any], received_ms: int) -> list[VenueEvent]:
        out: list[VenueEvent] = []
        for item in items:
            if type(item) is not dict:
                raise TypeError(f"array item: expected an object, got {type(item).__name__}")
            out.extend(self._event(item, received_ms))
        return out

    def _event(self, d: dict[str, Any], received_ms: int) -> list[VenueEvent]:
        e = d.get("e")
        if e is None:
            if "b" in d and "a" in d and "s" in d and "u" in d:
                return [quote_received(_book_ticker(d, received_ms))]
            if "id" in d and ("result" in d or "status" in d or "error" in d):
                self._control += 1
                return []
            return self._unknown_type("<no e>")
        if type(e) is not str:
            raise TypeError(f"e: expected a string, got {type(e).__name__}")
        if e == "markPriceUpdate":
            return [funding_received(_mark_price(d, self.intervals))]
        if e == "bookTicker":
            return [quote_received(_book_ticker(d, received_ms))]
        if e == "ORDER_TRADE_UPDATE":
            return tr.order_trade_update(d)
        if e == "ACCOUNT_UPDATE":
            return tr.account_update(d)
        if e == "executionReport":
            return tr.execution_report(d)
        if e == "outboundAccountPosition":
            return tr.outbound_account_position(d, self.spot_wallet)
        if e in _IGNORED_EVENTS:
            self._control += 1
            return []
        return self._unknown_type(e)

    def _unknown_type(self, name: str) -> list[VenueEvent]:
        self._unknown += 1
        if name in self._unknown_types or len(self._unknown_types) < 100:
            self._unknown_types[name[:64]] = self._unknown_types.get(name[:64], 0) + 1
        return []


def _preview(raw: Any) -> str:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw[:500]).decode("utf-8", "replace")
    return str(raw)[:500]


_DEFAULT = BinanceDecoder()


def decode(raw: bytes | str) -> list[VenueEvent]:
    """Decode one Binance frame with the module's default decoder (8 h funding, spot wallet).

    Raises :class:`~fundarb.venues.errors.DecodeError` on malformed input, never anything else.
    """
    return _DEFAULT.decode(raw)


def decode_statistics() -> DecodeStatistics:
    """Counters of the module-level :func:`decode` (frames, events, unknown types, errors)."""
    return _DEFAULT.statistics()
