"""Deterministic client order ids."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundarb.core.errors import InvalidValue
from fundarb.core.model import VenueFillKind
from fundarb.venues.client_ids import (
    is_venue_generated,
    make_client_order_id,
    parse_client_order_id,
    venue_generated_kind,
)

BINANCE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def test_known_id() -> None:
    assert make_client_order_id("p42", "perp", 3) == "fa.p42.perp.3"
    assert parse_client_order_id("fa.p42.perp.3") == ("p42", "perp", 3)


def test_deterministic() -> None:
    assert make_client_order_id("abc_DEF-1", "spot", 0) == make_client_order_id("abc_DEF-1", "spot", 0)
    assert make_client_order_id("a", "spot", 0) != make_client_order_id("a", "spot", 1)
    assert make_client_order_id("a", "spot", 0) != make_client_order_id("a", "perp", 0)


@given(
    st.text(alphabet="abcXYZ019_-", min_size=1, max_size=20),
    st.sampled_from(["perp", "spot", "A", "B"]),
    st.integers(min_value=0, max_value=999),
)
def test_roundtrip_and_charset(pid: str, leg: str, attempt: int) -> None:
    cid = make_client_order_id(pid, leg, attempt)
    assert BINANCE.match(cid)
    assert parse_client_order_id(cid) == (pid, leg, attempt)
    assert not is_venue_generated(cid)


@pytest.mark.parametrize(
    ("pid", "leg", "attempt"),
    [
        ("p.1", "perp", 0),
        ("p 1", "perp", 0),
        ("", "perp", 0),
        ("p1", "", 0),
        ("p1", "perp", -1),
        ("p1", "perp", True),
        ("x" * 30, "perp", 1),
        ("p1", "pe/rp", 0),
    ],
)
def test_rejects_bad_parts(pid: str, leg: str, attempt: int) -> None:
    with pytest.raises(InvalidValue):
        make_client_order_id(pid, leg, attempt)


@pytest.mark.parametrize(
    "cid",
    [
        "",
        "x-ccxt",
        "fa.p1.perp",
        "fa.p1.perp.01",
        "fa.p1.perp.-1",
        "fa..perp.1",
        "FA.p1.perp.1",
        "fa.p1.perp.1.2",
        "fa." + "x" * 40 + ".a.1",
    ],
)
def test_parse_foreign_ids(cid: str) -> None:
    assert parse_client_order_id(cid) is None


@pytest.mark.parametrize(
    ("cid", "kind"),
    [
        ("autoclose-1700000100497123", VenueFillKind.LIQUIDATION),
        ("adl_autoclose", VenueFillKind.ADL),
        ("adl_autoclose-123", VenueFillKind.ADL),
        ("settlement_autoclose-1700000300", VenueFillKind.SETTLEMENT),
        ("fa.p1.perp.0", None),
        ("my-autoclose-1", None),
    ],
)
def test_venue_generated(cid: str, kind: VenueFillKind | None) -> None:
    assert venue_generated_kind(cid) is kind
    assert is_venue_generated(cid) is (kind is not None)
