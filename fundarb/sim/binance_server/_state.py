"""What the REST app and the websocket server share: the venue, the clock, keys and order memory."""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable, Mapping

import attrs
import trio

from fundarb.core.model import Instrument, InstrumentId, Market, OrderRequest
from fundarb.sim.binance_server._auth import ApiError
from fundarb.sim.binance_server._control import ServerControl
from fundarb.sim.binance_server._usage import Usage, fapi_usage, spot_usage
from fundarb.venues.protocol import Venue

__all__ = ["ServerState"]

VENUE = "binance"


@attrs.define(eq=False)
class ServerState:
    """One server's state. ``venue`` is any :class:`~fundarb.venues.protocol.Venue` named ``binance``
    (a SimVenue, or a FaultyVenue around one); ``clock`` gives the server time in ms."""

    venue: Venue
    secrets: Mapping[str, str] = attrs.field(repr=False)
    clock: Callable[[], int]
    control: ServerControl = attrs.field(factory=ServerControl)
    instruments: dict[InstrumentId, Instrument] = attrs.field(factory=dict)
    #: client order id -> the request as placed (echoed in answers and frames)
    requests: dict[str, OrderRequest] = attrs.field(factory=dict)
    #: client order id -> "api" or "sapi" (which spot user stream reports it)
    families: dict[str, str] = attrs.field(factory=dict)
    #: order id (integer on the wire) -> client order id
    order_ids: dict[int, str] = attrs.field(factory=dict)
    listen_keys: set[str] = attrs.field(factory=set)
    listen_tokens: set[str] = attrs.field(factory=set)
    #: set (and replaced) when the listen keys expire; /private sessions watch it
    keys_expired: trio.Event = attrs.field(factory=trio.Event)
    requests_served: int = 0
    #: request-weight and order-count counters per API family ("api", "fapi"; /sapi is not metered)
    usage: dict[str, Usage] = attrs.field(factory=lambda: {"api": spot_usage(), "fapi": fapi_usage()})
    #: Binance error code -> how many answers carried it
    errors: dict[int, int] = attrs.field(factory=dict)
    _seq: int = 0

    def expire_listen_keys(self) -> None:
        """Expire every listen key: keep-alives get -1125 and /private sockets get
        ``listenKeyExpired`` and close, as on Binance after 60 minutes without a keep-alive."""
        self.listen_keys.clear()
        expired, self.keys_expired = self.keys_expired, trio.Event()
        expired.set()

    def now_ms(self) -> int:
        """The server's clock (ms since the epoch)."""
        return self.clock()

    def next_id(self) -> int:
        """A fresh positive integer (transfer and borrow ids)."""
        self._seq += 1
        return self._seq

    def new_token(self) -> str:
        """A fresh random listen key or token."""
        return _secrets.token_hex(32)

    def instrument(self, market: Market, symbol: str | None) -> InstrumentId:
        """The id of ``symbol`` on ``market`` or -1121 / -1102."""
        if not symbol:
            raise ApiError(
                400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        iid = InstrumentId(VENUE, market, symbol.upper())
        if iid not in self.instruments:
            raise ApiError(400, -1121, "Invalid symbol.")
        return iid
