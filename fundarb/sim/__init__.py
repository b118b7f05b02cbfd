"""The simulator: a deterministic exchange core, the Venue it backs, market drivers and faults.

* :class:`SimExchange` - pure exchange core (books, margin, funding, borrow, liquidation, ADL).
* :class:`SimVenue` - the Venue protocol over a SimExchange and a market driver, on Trio time.
* Drivers - :class:`FlatDriver`, :class:`ScriptedDriver`, :class:`SyntheticDriver`, and
  ``fundarb.sim.replay.ReplayDriver`` (import it from its module: it needs the data loader).
* :class:`FaultyVenue` / :class:`FaultPlan` - fault injection around any Venue.
"""

from fundarb.sim.book import BookConfig
from fundarb.sim.drivers import FlatDriver, MarketDriver, MarketTick, ScriptedDriver, ScriptPoint
from fundarb.sim.exchange import ExchangeConfig, SimExchange
from fundarb.sim.fault_plan import FaultPlan
from fundarb.sim.faults import FaultyVenue
from fundarb.sim.instruments import default_instruments
from fundarb.sim.margin import MarginConfig
from fundarb.sim.synthetic import Regime, SyntheticDriver
from fundarb.sim.venue import SimVenue

__all__ = [
    "BookConfig",
    "ExchangeConfig",
    "FaultPlan",
    "FaultyVenue",
    "FlatDriver",
    "MarginConfig",
    "MarketDriver",
    "MarketTick",
    "Regime",
    "ScriptPoint",
    "ScriptedDriver",
    "SimExchange",
    "SimVenue",
    "SyntheticDriver",
    "default_instruments",
]
