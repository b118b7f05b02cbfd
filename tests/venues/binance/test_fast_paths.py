"""The decoder's fast paths (markPrice, bookTicker, premiumIndex) against the checked paths.

``_translate.mark_price``/``book_ticker`` and ``_translate_rest.funding_from_premium_index`` build
their values with :mod:`fundarb.core.prechecked` when the frame is the common one, and defer to
``_mark_price``/``_book_ticker``/``_funding_from_premium_index`` (the constructors) otherwise.
Here: the fast path is really taken; it gives the very values the checked path gives; on any
other input both give the same error; and bad values are refused with the symbol cached (the
fast path's case), through the decoder as DecodeError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fundarb.core.model import Market
from fundarb.venues.binance import BinanceDecoder
from fundarb.venues.binance import _translate as tr
from fundarb.venues.binance import _translate_rest as rt
from fundarb.venues.errors import DecodeError

from .conftest import payload

MARK = payload("usdm_ws_mark_price.json")
BOOK_PERP = payload("usdm_ws_book_ticker.json")
BOOK_SPOT = payload("spot_ws_book_ticker.json")
PREMIUM = payload("usdm_rest_premium_index.json")
INTERVALS = {"BTCUSDT": 4, "ETHUSDT": 8}


def _warm() -> None:
    """Cache the payloads' symbols, so the fast paths apply (a new symbol takes the checked path)."""
    for market, symbol in [
        (Market.PERPETUAL, "BTCUSDT"),
        (Market.PERPETUAL, "BNBUSDT"),
        (Market.SPOT, "BNBUSDT"),
    ]:
        tr.instrument_id(market, symbol)


def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        value = fn(*args)
    except Exception as exc:
        return "error", (type(exc), str(exc))
    return "value", value


def _assert_same_outcome(fast: Callable[..., Any], checked: Callable[..., Any], *args: Any) -> str:
    kind, got = _outcome(fast, *args)
    expected_kind, expected = _outcome(checked, *args)
    assert kind == expected_kind, f"fast path gave {got!r}, checked path {expected!r}"
    if kind == "value":
        assert type(got) is type(expected) and got == expected and repr(got) == repr(expected)
        for field in attrs.fields(type(expected)):
            assert type(getattr(got, field.name)) is type(getattr(expected, field.name))
    else:
        assert got == expected
    return kind


@pytest.mark.parametrize(
    ("fast", "checked", "doc", "extra"),
    [
        (tr.mark_price, tr._mark_price, MARK, INTERVALS),
        (tr.book_ticker, tr._book_ticker, BOOK_PERP, 0),
        (tr.book_ticker, tr._book_ticker, BOOK_SPOT, 1_700_000_000_000),
        (rt.funding_from_premium_index, rt._funding_from_premium_index, PREMIUM, 8),
    ],
)
def test_the_fast_path_is_taken_and_gives_the_checked_value(
    monkeypatch: pytest.MonkeyPatch, fast: Any, checked: Any, doc: Any, extra: Any
) -> None:
    _warm()
    expected = checked(doc, extra)

    def must_not_run(*_args: Any) -> Any:
        raise AssertionError("the checked path ran for a frame the fast path handles")

    monkeypatch.setattr(tr if fast.__module__ == tr.__name__ else rt, checked.__name__, must_not_run)
    assert fast(doc, extra) == expected


# Values that sit on an edge of some check: signs, zeros, NaN/sNaN, infinities, whitespace and
# underscores (Decimal accepts both), non-strings, and symbols cached or not.
SPECIAL = [
    "0", "-0", "0.000", "-1", "1e3", "1E-30", "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "-inf",
    " 2 ", "1_0", "abc", "", "30", "25.36", 1.5, 0.0, 7, -7, 0, True, None, [1], {"a": 1},
]  # fmt: skip
_values = st.one_of(
    st.sampled_from(SPECIAL),
    st.decimals(min_value=0, max_value=10**6, places=4).map(str),  # valid: keeps "value" outcomes common
    st.integers(-(2**63), 2**64),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.sampled_from(["BTCUSDT", "BNBUSDT", "ETHUSDT"]),
)

# The keys each path reads (mutating the others changes nothing).
READ = {
    "mark": ["s", "i", "p", "r", "T", "E"],
    "book": ["e", "s", "b", "B", "a", "A", "E"],
    "premium": ["symbol", "indexPrice", "markPrice", "lastFundingRate", "nextFundingTime", "time"],
}


@st.composite
def _mutated(draw: st.DrawFn, base: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    doc = dict(base)
    for key in draw(st.sets(st.sampled_from(keys), max_size=2)):
        if draw(st.integers(0, 4)) == 0:
            doc.pop(key, None)
        else:
            doc[key] = draw(_values)
    return doc


@pytest.mark.parametrize("value", SPECIAL, ids=repr)
@pytest.mark.parametrize(
    ("fast", "checked", "doc", "extra", "keys"),
    [
        (tr.mark_price, tr._mark_price, MARK, {}, READ["mark"]),
        (tr.book_ticker, tr._book_ticker, BOOK_PERP, 0, READ["book"]),
        (tr.book_ticker, tr._book_ticker, BOOK_SPOT, 1, READ["book"]),
        (rt.funding_from_premium_index, rt._funding_from_premium_index, PREMIUM, 8, READ["premium"]),
    ],
    ids=["mark", "book-perp", "book-spot", "premium"],
)
def test_every_edge_value_in_every_field_gives_the_checked_outcome(
    fast: Any, checked: Any, doc: Any, extra: Any, keys: list[str], value: Any
) -> None:
    _warm()
    for key in keys:
        _assert_same_outcome(fast, checked, {**doc, key: value}, extra)


@settings(max_examples=600, deadline=None)
@given(_mutated(MARK, READ["mark"]), st.sampled_from([{}, INTERVALS, {"BTCUSDT": 3}]))
def test_mark_price_fast_and_checked_paths_agree(doc: dict[str, Any], intervals: dict[str, int]) -> None:
    _warm()
    event(_assert_same_outcome(tr.mark_price, tr._mark_price, doc, intervals))


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from([BOOK_PERP, BOOK_SPOT]).flatmap(lambda base: _mutated(base, READ["book"])),
    st.sampled_from([0, 1_700_000_000_000, -1, True, 1.5]),
)
def test_book_ticker_fast_and_checked_paths_agree(doc: dict[str, Any], received_ms: Any) -> None:
    _warm()
    event(_assert_same_outcome(tr.book_ticker, tr._book_ticker, doc, received_ms))


@settings(max_examples=600, deadline=None)
@given(_mutated(PREMIUM, READ["premium"]), st.sampled_from([8, 4, 3, 0]))
def test_premium_index_fast_and_checked_paths_agree(doc: dict[str, Any], hours: int) -> None:
    _warm()
    event(_assert_same_outcome(rt.funding_from_premium_index, rt._funding_from_premium_index, doc, hours))


@pytest.mark.parametrize(
    "changes",
    [
        {"r": "NaN"},
        {"r": "sNaN"},
        {"p": "Infinity"},
        {"p": "-1"},
        {"p": "0"},
        {"i": "NaN"},
        {"i": "Infinity"},
        {"i": "-Infinity"},  # a non-positive index means "none", but -Infinity is refused
        {"p": 11794.15},
        {"r": 0.0001},
        {"T": "1562306400000"},
        {"E": -5},
        {"E": True},
        {"r": "abc"},
    ],
)
def test_bad_mark_price_values_are_refused_with_the_symbol_cached(changes: dict[str, Any]) -> None:
    _warm()
    with pytest.raises(DecodeError):
        BinanceDecoder().decode(orjson.dumps(dict(MARK, **changes)))
    with pytest.raises(DecodeError):
        BinanceDecoder(intervals={"BTCUSDT": 3}).decode(orjson.dumps(MARK))  # not 1, 2, 4 or 8 hours


@pytest.mark.parametrize("base", [BOOK_PERP, BOOK_SPOT], ids=["perp", "spot"])
@pytest.mark.parametrize(
    "changes",
    [
        {"b": "30", "a": "25"},  # crossed
        {"B": "-3"},
        {"A": "NaN"},
        {"b": "0"},
        {"a": "Infinity"},
        {"b": 25.3519},
        {"A": None},
    ],
)
def test_bad_book_ticker_values_are_refused_with_the_symbol_cached(
    base: dict[str, Any], changes: dict[str, Any]
) -> None:
    _warm()
    with pytest.raises(DecodeError):
        BinanceDecoder().decode(orjson.dumps(dict(base, **changes)), received_ms=1)
    if "e" not in base:  # a spot frame is stamped with the receive time: a bad one is refused too
        with pytest.raises(DecodeError):
            BinanceDecoder().decode(orjson.dumps(base), received_ms=-1)
