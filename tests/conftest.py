"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# The suite runs on 2 cores under pytest-xdist next to PostgreSQL: per-example wall-clock deadlines
# would make property tests flaky without making them stricter. Example counts stay as each test sets.
settings.register_profile("fundarb", deadline=None)
settings.load_profile("fundarb")


@pytest.fixture
def database_url() -> str:
    """URL of a real PostgreSQL database for tests that need one (``FUNDARB_TEST_DATABASE_URL``).

    ``./scripts/test`` always sets it (it starts or creates a server); run alone, such tests are
    skipped with the reason below rather than failing on a missing server.
    """
    url = os.environ.get("FUNDARB_TEST_DATABASE_URL", "").strip()
    if not url:
        pytest.skip("FUNDARB_TEST_DATABASE_URL is unset: run ./scripts/test, which provides PostgreSQL")
    return url
