"""Fixtures for the simulator tests."""

from __future__ import annotations

import pytest

from fundarb.sim.exchange import SimExchange

from .helpers import make_exchange


@pytest.fixture
def ex() -> SimExchange:
    """Default test exchange (see :func:`tests.sim.helpers.make_exchange`)."""
    return make_exchange()
