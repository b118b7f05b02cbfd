"""Engine tests run on a mock clock that jumps only after 5 ms of real idleness.

The journal's SQLite calls run in a worker thread; with pytest-trio's ``autojump_clock``
(threshold 0) virtual time would race ahead while a thread is busy, and the spinning loop starves
that thread of the GIL. A small real threshold keeps time honest and tests still instant-ish.
"""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture
def engine_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.005)
