"""The 99.9th-percentile move estimate behind the liquidation-distance gate."""

from __future__ import annotations

import math
import random
from decimal import Decimal as D

import pytest

from fundarb.core.errors import InvalidValue
from fundarb.core.risk import tail_move, tail_move_from_returns

HOUR = 3_600_000


def test_quantile_interpolates_between_order_statistics() -> None:
    returns = [D(i) / 1000 for i in range(1000)]  # |r| = 0.000 .. 0.999
    # position 0.999 * 999 = 998.001 -> 0.998 + 0.001 * 0.001
    assert tail_move_from_returns(returns) == D("0.998001")
    assert tail_move_from_returns(returns, quantile=0.5) == D("0.499500")


def test_both_directions_count_and_the_result_rounds_up() -> None:
    returns = [0.0] * 999 + [-0.1234567]
    # position 998.001 -> 0 + 0.1234567 * 0.001 = 0.0001234567, rounded *up* to 1e-6
    assert tail_move_from_returns(returns) == D("0.000124")


def test_needs_enough_samples_for_the_tail() -> None:
    with pytest.raises(InvalidValue, match="need at least 1000"):
        tail_move_from_returns([0.01] * 999)
    assert tail_move_from_returns([0.01] * 999, min_samples=10) == D("0.010000")
    assert tail_move_from_returns([0.01] * 100, quantile=0.99) == D("0.010000")
    with pytest.raises(InvalidValue, match="quantile"):
        tail_move_from_returns([0.01] * 2000, quantile=1.0)
    with pytest.raises(InvalidValue):
        tail_move_from_returns([float("nan")] * 2000)


def test_eight_hour_moves_from_hourly_prices() -> None:
    # flat at 100 except a single 8-hour window that rises 10%: only one window of 2000 sees it
    prices = [D(100)] * 2009
    for i in range(1000, 1009):
        prices[i] = D(100) + D(10) * (i - 1000) / 8 if i < 1008 else D(110)
    for i in range(1009, 2009):
        prices[i] = D(110)
    got = tail_move(prices, step_ms=HOUR)
    brute = sorted(abs(float(prices[i + 8] / prices[i]) - 1) for i in range(len(prices) - 8))
    pos = 0.999 * (len(brute) - 1)
    lo = math.floor(pos)
    expected = brute[lo] + (brute[lo + 1] - brute[lo]) * (pos - lo)
    assert got >= D(expected)
    assert got - D(expected) < D("0.000001")


def test_random_walk_matches_a_brute_force_quantile() -> None:
    rng = random.Random(7)
    prices = [100.0]
    for _ in range(5000):
        prices.append(prices[-1] * math.exp(rng.gauss(0, 0.01)))
    got = float(tail_move(prices, step_ms=HOUR))
    moves = sorted(abs(prices[i + 8] / prices[i] - 1) for i in range(len(prices) - 8))
    pos = 0.999 * (len(moves) - 1)
    lo = math.floor(pos)
    expected = moves[lo] + (moves[lo + 1] - moves[lo]) * (pos - lo)
    assert expected <= got < expected + 1e-6
    assert 0.05 < got < 0.15  # ~3.3 sigma of an 8-step walk with 1% steps


def test_bad_sampling_parameters_raise() -> None:
    prices = [D(100)] * 2000
    with pytest.raises(InvalidValue, match="multiple"):
        tail_move(prices, step_ms=7 * 60_000)
    with pytest.raises(InvalidValue):
        tail_move(prices, step_ms=0)
    with pytest.raises(InvalidValue, match="> 0"):
        tail_move([D(0), *prices], step_ms=HOUR)
    with pytest.raises(InvalidValue, match="need at least"):
        tail_move(prices[:1007], step_ms=HOUR)  # 999 windows
    assert tail_move(prices[:1008], step_ms=HOUR) == 0  # 1000 windows
