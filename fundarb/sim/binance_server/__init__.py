"""A Binance-compatible loopback server over the simulated exchange (``fundarb sim serve``).

:class:`BinanceServer` answers the REST routes and websocket streams that
:class:`fundarb.venues.binance.BinanceVenue` uses, in Binance's own formats, from one venue (a
SimVenue, optionally inside the fault layer). :class:`ServerControl` injects wire faults on
demand (429, 5xx, lost acknowledgements, websocket drops and silence).
"""

from fundarb.sim.binance_server._control import FaultKind, RestFault, ServerControl
from fundarb.sim.binance_server.server import BinanceServer, ServerStatistics, ServerUrls

__all__ = ["BinanceServer", "FaultKind", "RestFault", "ServerControl", "ServerStatistics", "ServerUrls"]
