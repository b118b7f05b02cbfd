"""The error-rate breaker: thresholds, minimum samples, window edges, cooldown and recovery,
checked against a brute-force model of the same rules."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundarb.core.breakers import (
    BreakerChanged,
    BreakerConfig,
    BreakerState,
    BreakerStatistics,
    ErrorRateBreaker,
    apply_breaker,
)
from fundarb.core.errors import InvalidValue
from fundarb.core.model import InstrumentId, Market
from fundarb.core.risk_modes import ModeScope, ModeSource, TradingMode, TradingModes

OK, TRIPPED = BreakerState.OK, BreakerState.TRIPPED
PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
CFG = BreakerConfig(
    window_ms=60_000, trip_ratio=D("0.2"), recover_ratio=D("0.05"), min_samples=10, cooldown_ms=30_000
)


def feed(b: ErrorRateBreaker, pattern: str, start: int, step: int = 1) -> list[BreakerChanged]:
    """Record ``pattern`` ('.' ok, 'x' error) one call every ``step`` ms from ``start``."""
    out = []
    for i, c in enumerate(pattern):
        change = b.record(c == ".", start + i * step)
        if change is not None:
            out.append(change)
    return out


def test_exactly_the_trip_ratio_does_not_trip_one_more_error_does() -> None:
    b = ErrorRateBreaker(CFG)
    assert feed(b, "xx........", 0) == []  # 2/10 = 20%: not more than 20%
    assert b.state is OK and b.mode is TradingMode.ACTIVE
    changes = feed(b, "x", 10)  # 3/11 > 20%
    assert [(c.previous, c.state, c.errors, c.samples) for c in changes] == [(OK, TRIPPED, 3, 11)]
    assert b.mode is TradingMode.REDUCING
    assert b.statistics() == BreakerStatistics(11, 3, TRIPPED)


def test_no_decision_below_the_minimum_sample_count() -> None:
    b = ErrorRateBreaker(CFG)
    assert feed(b, "xxxxxxxxx", 0) == []  # 9 failures, but only 9 samples
    assert b.state is OK
    assert len(feed(b, "x", 9)) == 1


def test_a_sample_exactly_window_ms_old_has_left_the_window() -> None:
    b = ErrorRateBreaker(CFG)
    feed(b, "xx", 0)  # at 0 and 1
    feed(b, "........", 50_000)
    assert b.record(True, 59_999) is None  # window (-1, 59999]: 2/11 -> no trip anyway
    assert b.statistics().samples == 11
    b.poll(60_000)  # the sample at 0 leaves: window is (0, 60000]
    assert b.statistics() == BreakerStatistics(10, 1, OK)
    b.poll(60_001)
    assert b.statistics() == BreakerStatistics(9, 0, OK)


def test_recovery_needs_the_cooldown_and_a_healthy_full_window() -> None:
    b = ErrorRateBreaker(CFG)
    feed(b, "xxxxxxxxxx", 0)
    assert b.state is TRIPPED  # tripped at 9
    # long after: the bad calls have left the window; recovery comes with the 10th healthy call
    changes = feed(b, "." * 20, 61_000, step=100)
    assert [(c.state, c.ts_ms, c.samples, c.errors) for c in changes] == [(OK, 61_900, 10, 0)]

    b = ErrorRateBreaker(CFG)
    feed(b, "xxxxxxxxxx", 0)
    assert feed(b, ".........", 20_000) == []  # 10 errors + 9 ok: 53% errors
    changes = feed(b, "." * 500, 20_009, step=100)
    # recovery needs the cooldown (over at 30_009) and <= 5% errors: the 10 errors are diluted to
    # 5% by the 200th call in the window, at 38_009 (9 calls at 20_000.., 181 from 20_009 every 100 ms)
    assert [(c.state, c.ts_ms, c.samples, c.errors) for c in changes] == [(OK, 38_009, 200, 10)]


def test_cooldown_holds_the_breaker_tripped_even_when_healthy() -> None:
    cfg = BreakerConfig(
        window_ms=1000, trip_ratio=D("0.2"), recover_ratio=D("0.05"), min_samples=10, cooldown_ms=5000
    )
    b = ErrorRateBreaker(cfg)
    feed(b, "xxxxxxxxxx", 0)
    assert b.state is TRIPPED
    assert feed(b, "." * 10, 2000) == []  # healthy window, but within the cooldown
    assert b.state is TRIPPED
    changes = feed(b, "." * 10, 5000)
    assert [c.ts_ms for c in changes] == [5009]  # window full of ok calls again after the cooldown


def test_an_empty_window_never_recovers() -> None:
    b = ErrorRateBreaker(CFG)
    feed(b, "x" * 10, 0)
    assert b.poll(10_000_000) is None
    assert b.state is TRIPPED
    assert b.statistics().samples == 0


def test_time_stepping_back_is_treated_as_the_newest_time() -> None:
    b = ErrorRateBreaker(CFG)
    feed(b, "." * 5, 100_000)
    b.record(False, 1)  # clock stepped back: counted at 100_004
    b.poll(160_003)
    assert b.statistics().errors == 1
    b.poll(160_004)
    assert b.statistics() == BreakerStatistics(0, 0, OK)


def test_apply_breaker_sets_and_lifts_the_venue_mode() -> None:
    b = ErrorRateBreaker(CFG)
    feed(b, "x" * 10, 0)
    modes, records = apply_breaker(TradingModes(), "binance", b, 9)
    assert modes.effective(PERP) is TradingMode.REDUCING
    assert records[0].scope == ModeScope.venue("binance")
    assert records[0].source == ModeSource.rule("error-rate")
    assert "10/10" in records[0].reason
    feed(b, "." * 20, 70_000)
    assert b.state is OK
    modes, records = apply_breaker(modes, "binance", b, 70_020)
    assert modes.effective(PERP) is TradingMode.ACTIVE and len(records) == 1


def test_bad_config_and_inputs_raise() -> None:
    with pytest.raises(InvalidValue):
        BreakerConfig(trip_ratio=D("0.1"), recover_ratio=D("0.2"))
    with pytest.raises(InvalidValue):
        BreakerConfig(trip_ratio=D(1))
    with pytest.raises(InvalidValue):
        BreakerConfig(min_samples=0)
    with pytest.raises(InvalidValue):
        BreakerConfig(window_ms=0)
    with pytest.raises(InvalidValue):
        ErrorRateBreaker().record(1, 0)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        ErrorRateBreaker().record(True, -1)
    assert BreakerStatistics(0, 0, OK).error_ratio == 0
    assert BreakerStatistics(4, 1, OK).error_ratio == D("0.25")


# --- against a brute-force model ---------------------------------------------------------------------


def model_states(cfg: BreakerConfig, calls: list[tuple[int, bool]]) -> list[BreakerState]:
    """The state after each call, recomputed from the whole history each time."""
    state, tripped_at, last, out = OK, 0, 0, []
    history: list[tuple[int, bool]] = []
    for t, ok in calls:
        last = max(last, t)
        history.append((last, ok))
        window = [o for (ts, o) in history if ts > last - cfg.window_ms]
        n, errors = len(window), sum(1 for o in window if not o)
        if n >= cfg.min_samples:
            if state is OK and D(errors) > cfg.trip_ratio * n:
                state, tripped_at = TRIPPED, last
            elif (
                state is TRIPPED
                and last - tripped_at >= cfg.cooldown_ms
                and D(errors) <= cfg.recover_ratio * n
            ):
                state = OK
        out.append(state)
    return out


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(-50, 400), st.booleans()), min_size=1, max_size=150),
    window=st.integers(100, 2000),
    min_samples=st.integers(1, 12),
    cooldown=st.integers(0, 1500),
)
def test_breaker_matches_the_brute_force_model(
    steps: list[tuple[int, bool]], window: int, min_samples: int, cooldown: int
) -> None:
    cfg = BreakerConfig(window, D("0.2"), D("0.05"), min_samples, cooldown)
    t, calls = 1000, []
    for dt, ok in steps:
        t = max(0, t + dt)
        calls.append((t, ok))
    b = ErrorRateBreaker(cfg)
    got = []
    for ts, ok in calls:
        b.record(ok, ts)
        got.append(b.state)
    assert got == model_states(cfg, calls)
