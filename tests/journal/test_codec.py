"""The journal codec: exact round trips, strict decoding, registry rules. No event loop."""

from __future__ import annotations

import enum
from decimal import Decimal as D

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundarb.core.model import InstrumentId, Market, Side
from fundarb.core.position_model import Position
from fundarb.journal import JournalCorrupt, JournalEncodeError
from fundarb.journal._core_tags import CORE_TAGS, register_core
from fundarb.journal.codec import CODEC, Codec

from .samples import FILL, REQUEST, SAMPLES


def test_every_core_tag_has_a_sample_and_round_trips_exactly() -> None:
    assert set(CORE_TAGS.values()) == set(SAMPLES)
    for tag, cls in CORE_TAGS.items():
        value = SAMPLES[cls]
        kind, data = CODEC.encode(value)
        assert kind == tag
        back = CODEC.decode(kind, data, seq=1)
        assert back == value
        assert type(back) is cls
        assert CODEC.encode(back) == (kind, data)  # same bytes again: digits and exponents kept


def test_decimal_digits_and_exponent_survive() -> None:
    _, data = CODEC.encode(FILL)
    raw = orjson.loads(data)
    assert raw["fee"] == "-0.0012"
    back = CODEC.decode("model.fill", data)
    assert str(back.quantity) == "0.004" and str(back.fee) == "-0.0012"


def test_instrument_id_is_a_string_and_a_nested_object_is_accepted() -> None:
    _, data = CODEC.encode(REQUEST)
    raw = orjson.loads(data)
    assert raw["instrument"] == "binance:perp:BTCUSDT"
    raw["instrument"] = {"venue": "binance", "market": "perp", "symbol": "BTCUSDT"}
    assert CODEC.decode("model.order_request", orjson.dumps(raw)) == REQUEST


@settings(deadline=None)  # CPU time on a shared CI box is not what this test is about
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_finite_decimal_round_trips(d: D) -> None:
    codec = Codec()

    @attrs.frozen
    class Amount:
        value: D

    codec.register(Amount, "test.amount")
    back = codec.decode(*codec.encode(Amount(d)))
    assert str(back.value) == str(d)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Leaf:
    n: int


@attrs.frozen
class Other:
    s: str


@attrs.frozen
class Tree:
    leaves: tuple[Leaf, ...]
    tags: frozenset[str]
    colour: Colour
    maybe: D | None
    either: Leaf | Other
    either_or_none: Leaf | Other | None = None
    side: Side = Side.BUY


def _tree_codec() -> Codec:
    codec = Codec()
    codec.register(Tree, "test.tree")
    codec.register(Leaf, "test.leaf")
    codec.register(Other, "test.other")
    return codec


def test_nested_tuples_frozensets_enums_optionals_and_unions() -> None:
    codec = _tree_codec()
    tree = Tree((Leaf(1), Leaf(2)), frozenset({"b", "a", "c"}), Colour.BLUE, None, Other("x"), Leaf(3))
    kind, data = codec.encode(tree)
    raw = orjson.loads(data)
    assert raw["tags"] == ["a", "b", "c"]  # sorted: bytes do not depend on hash order
    assert raw["either"] == {"kind": "test.other", "value": {"s": "x"}}
    assert raw["colour"] == "blue" and raw["maybe"] is None
    assert codec.decode(kind, data) == tree


def test_union_member_must_be_a_member() -> None:
    codec = _tree_codec()
    tree = Tree((), frozenset(), Colour.RED, D("1"), Leaf(1))
    raw = orjson.loads(codec.encode(tree)[1])
    raw["either"] = {"kind": "test.tree", "value": {}}
    with pytest.raises(JournalCorrupt, match="not a member"):
        codec.decode("test.tree", orjson.dumps(raw), seq=4)


def test_the_position_of_the_state_machine_round_trips() -> None:
    from tests.core.factories import hedged

    codec = Codec()
    register_core(codec)
    codec.register(Position, "test.position")
    p = hedged()
    assert p.trade_keys and p.orders  # frozensets and tuples of nested values are exercised
    kind, data = codec.encode(p)
    assert codec.decode(kind, data, seq=9) == p


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("side"), "side"),
        (lambda r: r.update(extra=1), "extra"),
        (lambda r: r.update(quantity=0.01), "decimal string"),
        (lambda r: r.update(quantity="lots"), "not a decimal"),
        (lambda r: r.update(side="SIDEWAYS"), "SIDEWAYS"),
        (lambda r: r.update(reduce_only="yes"), "boolean"),
        (lambda r: r.update(client_order_id=7), "string"),
        (lambda r: r.update(instrument="binance:BTCUSDT"), "venue:market:symbol"),
        (lambda r: r.update(quantity="-1"), "quantity"),  # the class's own validator refuses it
    ],
)
def test_bad_payloads_are_corrupt_and_name_the_row(mutate, message) -> None:
    raw = orjson.loads(CODEC.encode(REQUEST)[1])
    mutate(raw)
    with pytest.raises(JournalCorrupt, match=message) as info:
        CODEC.decode("model.order_request", orjson.dumps(raw), seq=42)
    assert "seq=42" in str(info.value) and info.value.seq == 42
    assert info.value.kind == "model.order_request"


def test_int_field_refuses_strings_and_floats() -> None:
    raw = orjson.loads(CODEC.encode(SAMPLES[InstrumentId] and FILL)[1])
    raw["ts_ms"] = "1"
    with pytest.raises(JournalCorrupt, match="integer"):
        CODEC.decode("model.fill", orjson.dumps(raw), seq=1)
    raw["ts_ms"] = 1.0
    with pytest.raises(JournalCorrupt, match="integer"):
        CODEC.decode("model.fill", orjson.dumps(raw), seq=1)


def test_truncated_and_non_json_payloads_are_corrupt() -> None:
    _, data = CODEC.encode(REQUEST)
    for bad in (data[: len(data) // 2], b"", b"\xff\xfe", b"[1, 2]"):
        with pytest.raises(JournalCorrupt, match="seq=7") as info:
            CODEC.decode("model.order_request", bad, seq=7)
        assert info.value.seq == 7


def test_unknown_kind_is_corrupt_not_skipped() -> None:
    with pytest.raises(JournalCorrupt, match=r"seq=3 kind='engine\.from_the_future'.*unknown kind"):
        CODEC.decode("engine.from_the_future", b"{}", seq=3)


def test_registry_rules() -> None:
    codec = Codec()

    @codec.journaled("test.thing")
    @attrs.frozen
    class Thing:
        x: int

    codec.register(Thing, "test.thing")  # idempotent
    assert codec.tag_of(Thing(1)) == "test.thing" and codec.class_of("test.thing") is Thing
    with pytest.raises(ValueError, match="already bound"):
        codec.register(Leaf, "test.thing")
    with pytest.raises(ValueError, match="already registered"):
        codec.register(Thing, "test.other_name")
    with pytest.raises(ValueError, match=r"area\.name"):
        codec.register(Other, "NoDots")
    with pytest.raises(TypeError, match="not an attrs class"):
        codec.register(int, "test.int")
    with pytest.raises(JournalEncodeError, match="not registered"):
        codec.encode(Leaf(1))


def test_market_enum_by_value() -> None:
    kind, data = CODEC.encode(InstrumentId("okx", Market.SPOT, "BTC-USDT"))
    assert data == b'"okx:spot:BTC-USDT"'
    assert CODEC.decode(kind, data) == InstrumentId("okx", Market.SPOT, "BTC-USDT")
