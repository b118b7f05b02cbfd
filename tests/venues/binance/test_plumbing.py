"""Pure pieces of the shell: rate limiter, clock offset, backoff, error table."""

from __future__ import annotations

import pytest

from fundarb.venues.binance._clock import ClockOffset
from fundarb.venues.binance._errors import error_from_code, error_from_response, retry_after
from fundarb.venues.binance._ratelimit import FAPI_LIMITS, RateLimiter, window_ms
from fundarb.venues.binance._ws import ReconnectPolicy
from fundarb.venues.errors import OrderNotFound, OrderRejected, OutcomeUnknown, RateLimited, VenueUnavailable

MINUTE = 60_000
T = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE  # a minute boundary


def test_window_parsing() -> None:
    assert (window_ms("10s"), window_ms("1m"), window_ms("1h"), window_ms("1d")) == (
        10_000, 60_000, 3_600_000, 86_400_000)  # fmt: skip


def test_limiter_waits_for_the_window_and_forgets_old_windows() -> None:
    lim = RateLimiter.with_limits(FAPI_LIMITS)
    lim.observe({"X-MBX-USED-WEIGHT-1M": "2150", "x-mbx-order-count-10s": "12", "Other": "1"}, T + 15_000)
    assert lim.used("weight", "1m", T + 15_000) == 2150
    assert lim.used("orders", "10s", T + 15_000) == 12
    assert lim.delay(5, 0, T + 20_000, 0.0) == 0.0  # 2155 <= 0.9 * 2400
    assert lim.delay(20, 0, T + 20_000, 0.0) == pytest.approx(40.0)  # until the next minute
    assert lim.used("weight", "1m", T + MINUTE + 1) == 0  # a new window
    assert lim.delay(20, 0, T + MINUTE + 1, 0.0) == 0.0


def test_limiter_order_count_and_ban() -> None:
    lim = RateLimiter.with_limits(FAPI_LIMITS)
    lim.observe({"X-MBX-ORDER-COUNT-10S": "270"}, T + 3_000)
    assert lim.delay(0, 1, T + 3_000, 0.0) == pytest.approx(7.0)
    assert lim.delay(1, 0, T + 3_000, 0.0) == 0.0  # weight-only calls are not held by the order count
    lim.ban(30.0, now=100.0)
    assert lim.delay(1, 0, T + 3_000, 110.0) == pytest.approx(20.0)
    lim.observe({"X-MBX-USED-WEIGHT-1M": "garbage"}, T)  # ignored, not a crash


def test_clock_offset() -> None:
    c = ClockOffset()
    assert c.is_stale(0, 1000)
    c.update(sent_ms=1_000, server_ms=6_100, received_ms=1_200)
    assert (c.offset_ms, c.round_trip_ms) == (5_000, 200)
    assert c.timestamp(2_000) == 7_000
    assert not c.is_stale(1_500, 1000) and c.is_stale(2_300, 1000)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    p = ReconnectPolicy(initial=1.0, maximum=8.0, factor=2.0, jitter=0.25)
    assert [p.backoff(n, 0.5) for n in (1, 2, 3, 4, 5, 9)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert p.backoff(3, 0.0) == 3.0 and p.backoff(3, 0.999999) == pytest.approx(5.0, abs=1e-4)


def test_error_table_edges() -> None:
    assert isinstance(error_from_code(-1003, "Too many requests", mutating=False), RateLimited)
    assert isinstance(error_from_code(-1001, "Internal error", mutating=True), OutcomeUnknown)
    assert isinstance(error_from_code(-1001, "Internal error", mutating=False), VenueUnavailable)
    assert isinstance(error_from_code(-2011, "Unknown order sent.", mutating=True), OrderNotFound)
    other = error_from_code(-2011, "Order was canceled or expired.", mutating=True)
    assert type(other) is OrderRejected and other.code == -2011
    assert retry_after({"retry-after": "7"}) == 7.0 and retry_after({}, 3.0) == 3.0
    assert retry_after({"retry-after": "soon"}, 2.0) == 2.0
    err = error_from_response(418, b"", {"retry-after": "120"}, mutating=False)
    assert isinstance(err, RateLimited) and err.retry_after == 120
