"""fundarb: a funding-rate arbitrage engine on Trio.

The pure core is :mod:`fundarb.core` (position state machine, pricing, strategy, risk); the Trio
shell is :mod:`fundarb.engine`; venues implement :class:`fundarb.venues.protocol.Venue`. Run it with
``python -m fundarb`` (paper mode by default); every setting is a ``FUNDARB_*`` variable
(:mod:`fundarb.config`).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
