"""Trading modes: scopes, the most-restrictive rule, rule vs operator precedence, records, kill."""

from __future__ import annotations

import pytest

from fundarb.core.errors import InvalidValue
from fundarb.core.model import InstrumentId, Market
from fundarb.core.risk_modes import (
    ModeChanged,
    ModeEntry,
    ModeScope,
    ModeSource,
    ScopeKind,
    TradingMode,
    TradingModes,
    kill,
)

A, R, H = TradingMode.ACTIVE, TradingMode.REDUCING, TradingMode.HALTED
PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
OTHER = InstrumentId("bybit", Market.PERPETUAL, "BTCUSDT")
VENUE = ModeScope.venue("binance")
INST = ModeScope.instrument(PERP)
OP = ModeSource.OPERATOR
STALE = ModeSource.rule("stale-data")
ERRORS = ModeSource.rule("error-rate")


def test_everything_starts_active() -> None:
    m = TradingModes()
    assert m.effective(PERP) is A
    assert m.governing(PERP) is None
    assert m.mode_of(ModeScope.GLOBAL) is A
    assert m.by_scope() == {}


@pytest.mark.parametrize(
    ("global_", "venue", "inst", "expected"),
    [
        (A, A, A, A),
        (R, A, A, R),
        (A, R, A, R),
        (A, A, R, R),
        (H, R, A, H),
        (R, H, R, H),
        (A, R, H, H),
        (R, R, R, R),
    ],
)
def test_effective_mode_is_the_most_restrictive_scope(
    global_: TradingMode, venue: TradingMode, inst: TradingMode, expected: TradingMode
) -> None:
    m = TradingModes()
    m, _ = m.set(ModeScope.GLOBAL, global_, ModeSource.rule("g"), 1)
    m, _ = m.set(VENUE, venue, ModeSource.rule("v"), 1)
    m, _ = m.set(INST, inst, ModeSource.rule("i"), 1)
    assert m.effective(PERP) is expected
    # bybit only sees the global scope
    assert m.effective(OTHER) is global_


def test_set_records_the_change_and_repeating_it_records_nothing() -> None:
    m, records = TradingModes().set(VENUE, R, ERRORS, 1000, "31% errors")
    assert records == [ModeChanged(VENUE, ERRORS, A, R, A, R, "31% errors", 1000, ERRORS)]
    again, none = m.set(VENUE, R, ERRORS, 2000, "still bad")
    assert none == [] and again is m
    assert m.entries == (ModeEntry(VENUE, ERRORS, R, 1000, "31% errors"),)
    lifted, records = m.set(VENUE, A, ERRORS, 3000, "recovered")
    assert lifted.entries == ()
    assert records == [ModeChanged(VENUE, ERRORS, R, A, R, A, "recovered", 3000, ERRORS)]
    # lifting what is not held records nothing
    assert lifted.set(VENUE, A, ERRORS, 4000) == (lifted, [])


def test_a_rule_cannot_lift_the_operator() -> None:
    m, _ = TradingModes().set(VENUE, H, OP, 1, "maintenance")
    m, records = m.set(VENUE, R, STALE, 2)
    assert m.mode_of(VENUE) is H
    assert records[0].scope_previous is H and records[0].scope_mode is H  # trading felt no change
    m, _ = m.set(VENUE, A, STALE, 3)
    assert m.mode_of(VENUE) is H
    assert m.opinion(VENUE, OP) is H


def test_two_rules_on_one_scope_are_independent() -> None:
    m, _ = TradingModes().set(VENUE, R, STALE, 1)
    m, _ = m.set(VENUE, R, ERRORS, 2)
    m, records = m.set(VENUE, A, STALE, 3)
    assert m.mode_of(VENUE) is R  # the error-rate rule still holds it
    assert (records[0].scope_previous, records[0].scope_mode) == (R, R)
    m, records = m.set(VENUE, A, ERRORS, 4)
    assert m.mode_of(VENUE) is A
    assert (records[0].scope_previous, records[0].scope_mode) == (R, A)


def test_operator_lifts_its_own_mode_but_rules_keep_theirs() -> None:
    m, _ = TradingModes().set(INST, R, STALE, 1)
    m, _ = m.set(INST, H, OP, 2)
    m, records = m.set(INST, A, OP, 3, "done")
    assert m.effective(PERP) is R
    assert records == [ModeChanged(INST, OP, H, A, H, R, "done", 3, OP)]


def test_operator_may_clear_a_rule_explicitly() -> None:
    m, _ = TradingModes().set(INST, R, STALE, 1)
    m, records = m.operator_clear(INST, STALE, 5, "feed checked by hand")
    assert m.effective(PERP) is A
    assert records == [ModeChanged(INST, STALE, R, A, R, A, "feed checked by hand", 5, OP)]


def test_governing_entry_explains_a_denial() -> None:
    m, _ = TradingModes().set(INST, R, STALE, 1, "stale")
    assert m.governing(PERP) == ModeEntry(INST, STALE, R, 1, "stale")
    m, _ = m.set(ModeScope.GLOBAL, R, OP, 2, "op")
    gov = m.governing(PERP)
    assert gov is not None and gov.source == OP  # same mode: the widest scope, the operator first
    m, _ = m.set(VENUE, H, ERRORS, 3, "errors")
    assert m.governing(PERP) == ModeEntry(VENUE, ERRORS, H, 3, "errors")
    assert m.by_scope() == {INST: R, ModeScope.GLOBAL: R, VENUE: H}


def test_apply_rule_sets_and_lifts_many_scopes_in_order() -> None:
    other = ModeScope.instrument(OTHER)
    m, records = TradingModes().apply_rule("stale-data", {other: R, INST: R}, 10, {INST: "old"})
    assert [r.scope for r in records] == sorted([INST, other])
    assert m.entries_for(INST) == (ModeEntry(INST, STALE, R, 10, "old"),)
    m, records = m.apply_rule("stale-data", {other: A, INST: R}, 20)
    assert [(r.scope, r.mode) for r in records] == [(other, A)]


def test_kill_halts_globally_and_only_the_operator_lifts_it() -> None:
    m, _ = TradingModes().set(VENUE, R, ERRORS, 1)
    m, records = kill(m, "flatten now", 100)
    assert records == [ModeChanged(ModeScope.GLOBAL, OP, A, H, A, H, "flatten now", 100, OP)]
    assert m.effective(PERP) is H and m.effective(OTHER) is H
    assert kill(m, "again", 200) == (m, [])
    m2, _ = m.set(ModeScope.GLOBAL, A, ModeSource.rule("anything"), 300)
    assert m2.effective(OTHER) is H
    m3, _ = m.set(ModeScope.GLOBAL, A, OP, 400, "resume")
    assert m3.effective(OTHER) is A and m3.effective(PERP) is R
    with pytest.raises(InvalidValue, match="reason"):
        kill(m, "  ", 1)


def test_bad_values_raise() -> None:
    with pytest.raises(InvalidValue):
        ModeEntry(VENUE, OP, A, 1)
    with pytest.raises(InvalidValue):
        ModeSource.rule("operator")
    with pytest.raises(InvalidValue):
        ModeSource.rule("")
    with pytest.raises(InvalidValue):
        ModeScope(ScopeKind.GLOBAL, "x")
    with pytest.raises(InvalidValue):
        ModeScope(ScopeKind.VENUE, "")
    with pytest.raises(InvalidValue):
        ModeScope.venue("")
    with pytest.raises(InvalidValue):
        ModeScope.instrument("binance:perp:BTCUSDT")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        TradingModes().set(VENUE, R, OP, -1)
    with pytest.raises(InvalidValue):
        TradingModes().set(VENUE, "reducing", OP, 1)  # type: ignore[arg-type]


def test_names_read_well_in_logs_and_metrics() -> None:
    assert (str(ModeScope.GLOBAL), str(VENUE), str(INST)) == (
        "global",
        "venue:binance",
        "instrument:binance:perp:BTCUSDT",
    )
    assert (str(OP), str(STALE)) == ("operator", "rule:stale-data")
    assert TradingMode.most_restrictive([]) is A
    assert [m.rank for m in TradingMode] == [0, 1, 2]
