"""Errors raised by the pure core.

Hierarchy::

    FundarbError
     ├── InvalidValue          a value object was built from a bad number (NaN, negative, off-tick)
     │    └── InvalidOrder     an order breaks an instrument rule (lot, tick, min quantity/notional)
     └── TransitionError       the position state machine got an event it has no rule for

``InvalidValue`` is a ``ValueError`` so callers parsing untrusted input can catch either.
"""

from __future__ import annotations

__all__ = ["FundarbError", "InvalidOrder", "InvalidValue", "TransitionError"]


class FundarbError(Exception):
    """Base class of every error fundarb raises on purpose."""


class InvalidValue(FundarbError, ValueError):
    """A value failed validation at construction (non-finite, negative, off-tick, ...)."""


class InvalidOrder(InvalidValue):
    """An order request violates the instrument's trading rules."""


class TransitionError(FundarbError):
    """No rule in the transition table for this (state, event) pair.

    This is our bug, not the venue's: the engine must route only events the table knows.
    """
