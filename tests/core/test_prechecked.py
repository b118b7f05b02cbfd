"""prechecked: the same value as the constructor where it succeeds, None exactly where it raises."""

from __future__ import annotations

import doctest
import pickle
from decimal import Decimal as D
from typing import Any

import attrs
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fundarb.core import prechecked
from fundarb.core.errors import InvalidValue
from fundarb.core.model import FundingSnapshot, InstrumentId, Market, Quote
from fundarb.core.venue_events import FundingReceived, QuoteReceived

BTC = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")

# Decimals the validators care about (signs, zero, NaN, sNaN, infinities, exponents) plus values
# of the wrong type: a float, a bool, an int where a Decimal belongs, None, a string.
_decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.sampled_from([D(0), D("-0"), D("0.00"), D("1E+5"), D("1E-30"), D("sNaN"), D("-NaN"), D("-Infinity")]),
)
_numbers = _decimals | st.integers(-3, 3) | st.floats() | st.booleans() | st.none() | st.just("1")
_times = st.integers(-(2**63), 2**63) | st.booleans() | st.floats(0, 1e13) | st.none() | st.just("5")
_hours = st.sampled_from([1, 2, 4, 8]) | st.integers(-1, 9) | st.just(8.0) | st.just(True) | st.none()


def _same(built: Any, expected: Any) -> None:
    """Equal, same type, same repr and hash, and every field the very object passed in."""
    assert type(built) is type(expected)
    assert built == expected and repr(built) == repr(expected) and hash(built) == hash(expected)
    for field in attrs.fields(type(expected)):
        assert getattr(built, field.name) is getattr(expected, field.name)


def _constructed(cls: Any, *args: Any) -> Any:
    try:
        return cls(*args)
    except InvalidValue:
        return None


_valid_decimals = st.decimals(min_value=D("1E-12"), max_value=D("1E+12"), allow_nan=False, places=None)
_valid_times = st.integers(0, 2**53)


@st.composite
def _mutated(
    draw: st.DrawFn, valid: list[st.SearchStrategy[Any]], bad: list[st.SearchStrategy[Any]]
) -> list[Any]:
    """Valid arguments with none, one or a few replaced by anything (so both outcomes are common)."""
    args = [draw(s) for s in valid]
    for i in draw(st.sets(st.integers(0, len(args) - 1), max_size=3)):
        args[i] = draw(bad[i])
    return args


_funding_args = _mutated(
    [_valid_decimals | _decimals, _valid_times, st.sampled_from([1, 2, 4, 8]), _valid_decimals,
     _valid_decimals | st.none(), _valid_times],
    [_numbers, _times, _hours, _numbers, _numbers, _times],
)  # fmt: skip
_quote_args = _mutated(
    [_valid_decimals, _valid_decimals, _valid_decimals, _valid_decimals, _valid_times],
    [_numbers, _numbers, _numbers, _numbers, _times],
)


@settings(max_examples=1000)
@given(_funding_args)
def test_funding_snapshot_matches_the_constructor(fields: list[Any]) -> None:
    args = (BTC, *fields)
    expected = _constructed(FundingSnapshot, *args)
    built = prechecked.funding_snapshot(*args)
    event("refused" if expected is None else "accepted")
    if expected is None:
        assert built is None, f"prechecked accepted what FundingSnapshot refuses: {args}"
    else:
        assert built is not None, f"prechecked refused what FundingSnapshot accepts: {args}"
        _same(built, expected)


@settings(max_examples=1000)
@given(_quote_args)
def test_quote_matches_the_constructor(fields: list[Any]) -> None:
    args = (BTC, *fields)
    expected = _constructed(Quote, *args)
    built = prechecked.quote(*args)
    event("refused" if expected is None else "accepted")
    if expected is None:
        assert built is None, f"prechecked accepted what Quote refuses: {args}"
    else:
        assert built is not None, f"prechecked refused what Quote accepts: {args}"
        _same(built, expected)


def test_the_checks_that_matter_most_refuse() -> None:
    ok = (BTC, D("0.0001"), 1, 8, D("100"), D("99"), 2)
    assert prechecked.funding_snapshot(*ok) == FundingSnapshot(*ok)
    for i, bad in [(1, D("NaN")), (4, D("-1")), (4, D("Infinity")), (5, D(0)), (3, 3), (6, -1), (2, True)]:
        args = list(ok)
        args[i] = bad
        assert prechecked.funding_snapshot(*args) is None, (i, bad)
    q = (BTC, D("10"), D("1"), D("11"), D("0"), 5)
    assert prechecked.quote(*q) == Quote(*q)
    assert prechecked.quote(BTC, D("12"), D("1"), D("11"), D("1"), 5) is None  # crossed
    assert prechecked.quote(BTC, D("10"), D("-1"), D("11"), D("1"), 5) is None  # negative size
    assert prechecked.quote(BTC, D("10"), D("1"), D("11"), D("sNaN"), 5) is None


def test_built_values_behave_like_constructed_ones() -> None:
    snap = prechecked.funding_snapshot(BTC, D("0.0001"), 1, 8, D("100"), None, 2)
    assert snap is not None
    assert pickle.loads(pickle.dumps(snap)) == snap
    assert attrs.evolve(snap, rate=D("0.0002")).rate == D("0.0002")
    assert snap.annualized == D("0.0001") * 8760 / 8
    try:
        snap.rate = D(1)  # type: ignore[misc]
    except attrs.exceptions.FrozenInstanceError:
        pass
    else:
        raise AssertionError("a prechecked FundingSnapshot must stay frozen")
    assert prechecked.funding_received(snap) == FundingReceived(snap)
    quote = Quote(BTC, D("1"), D("1"), D("2"), D("1"), 3)
    assert prechecked.quote_received(quote) == QuoteReceived(quote)
    assert repr(prechecked.quote_received(quote)) == repr(QuoteReceived(quote))


def test_docstring_examples() -> None:
    result = doctest.testmod(prechecked)
    assert result.attempted > 0 and result.failed == 0
