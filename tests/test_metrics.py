"""fundarb.metrics: names, a dedicated registry, the record_* helpers and label safety."""

from __future__ import annotations

import math

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from fundarb.core.errors import InvalidValue
from fundarb.core.model import InstrumentId, Market, VenueFillKind
from fundarb.core.position_model import PositionState
from fundarb.metrics import (
    HEDGE_GAP_BUCKETS,
    TRADING_MODES,
    Metrics,
    create_metrics,
    label_value,
)
from fundarb.venues.errors import OutcomeUnknown

#: the families the issues ask for (names as prometheus_client reports them, without _total)
REQUIRED = {
    "fundarb_orders_sent",
    "fundarb_orders_rejected",
    "fundarb_orders_outcome_unknown",
    "fundarb_fills",
    "fundarb_hedge_gap_seconds",
    "fundarb_naked_exposure_notional_seconds",
    "fundarb_positions",
    "fundarb_funding_received_quote",
    "fundarb_funding_paid_quote",
    "fundarb_pnl_quote",
    "fundarb_market_data_staleness_seconds",
    "fundarb_stream_reconnects",
    "fundarb_venue_api_errors",
    "fundarb_risk_gate_decisions",
    "fundarb_trading_mode_changes",
    "fundarb_trading_mode",
    "fundarb_kill_switch_activations",
    "fundarb_journal_append_seconds",
    "fundarb_journal_errors",
    "fundarb_event_loop_lag_seconds",
    "fundarb_event_loop_stall_max_seconds",
}


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_every_required_metric_exists_prefixed_and_documented() -> None:
    m = create_metrics()
    assert set(m.names()) == REQUIRED
    families = list(text_string_to_metric_families(m.exposition().decode()))
    assert families
    for family in families:
        assert family.name.startswith("fundarb_")
        assert family.documentation
    # the module docstring's table names every metric
    import fundarb.metrics as module

    for name in REQUIRED:
        assert f"``{name}" in (module.__doc__ or ""), name


def test_dedicated_registries_do_not_clash_and_the_global_one_stays_clean() -> None:
    a, b = create_metrics(), create_metrics()
    a.record_order_sent("binance")
    assert sample(a, "fundarb_orders_sent_total", venue="binance") == 1.0
    assert sample(b, "fundarb_orders_sent_total", venue="binance") is None
    assert (
        prometheus_client.REGISTRY.get_sample_value("fundarb_orders_sent_total", {"venue": "binance"}) is None
    )
    reg = CollectorRegistry()
    create_metrics(reg)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        create_metrics(reg)


def test_order_and_fill_counters() -> None:
    m = create_metrics()
    m.record_order_sent("binance")
    m.record_order_sent("binance")
    m.record_order_rejected("bybit")
    m.record_order_outcome_unknown("okx")
    m.record_fill("binance")
    m.record_fill("binance", VenueFillKind.LIQUIDATION)
    m.record_fill("binance", VenueFillKind.ADL)
    assert sample(m, "fundarb_orders_sent_total", venue="binance") == 2.0
    assert sample(m, "fundarb_orders_rejected_total", venue="bybit") == 1.0
    assert sample(m, "fundarb_orders_outcome_unknown_total", venue="okx") == 1.0
    assert sample(m, "fundarb_fills_total", venue="binance", kind="trade") == 1.0
    assert sample(m, "fundarb_fills_total", venue="binance", kind="liquidation") == 1.0
    assert sample(m, "fundarb_fills_total", venue="binance", kind="adl") == 1.0


def test_hedge_gap_buckets_span_50us_to_10s() -> None:
    assert HEDGE_GAP_BUCKETS[0] == 50e-6 and HEDGE_GAP_BUCKETS[-1] == 10.0
    assert list(HEDGE_GAP_BUCKETS) == sorted(HEDGE_GAP_BUCKETS)
    m = create_metrics()
    m.record_hedge_gap(30e-6)
    m.record_hedge_gap(0.0004)
    m.record_hedge_gap(12.0)
    assert sample(m, "fundarb_hedge_gap_seconds_bucket", le="5e-05") == 1.0
    assert sample(m, "fundarb_hedge_gap_seconds_bucket", le="0.0005") == 2.0
    assert sample(m, "fundarb_hedge_gap_seconds_bucket", le="10.0") == 2.0
    assert sample(m, "fundarb_hedge_gap_seconds_bucket", le="+Inf") == 3.0
    assert sample(m, "fundarb_hedge_gap_seconds_count") == 3.0


@pytest.mark.parametrize("bad", [-0.001, math.nan, "abc"])
def test_observations_refuse_negative_and_nan(bad: object) -> None:
    m = create_metrics()
    with pytest.raises((InvalidValue, ValueError)):
        m.record_hedge_gap(bad)  # type: ignore[arg-type]
    with pytest.raises((InvalidValue, ValueError)):
        m.record_naked_exposure(bad)  # type: ignore[arg-type]
    assert sample(m, "fundarb_hedge_gap_seconds_count") == 0.0


def test_naked_exposure_and_journal_histograms() -> None:
    m = create_metrics()
    m.record_naked_exposure(0.5)
    m.record_naked_exposure(2500.0)
    m.record_journal_append(0.0002)
    assert sample(m, "fundarb_naked_exposure_notional_seconds_count") == 2.0
    assert sample(m, "fundarb_naked_exposure_notional_seconds_sum") == 2500.5
    assert sample(m, "fundarb_naked_exposure_notional_seconds_bucket", le="1.0") == 1.0
    assert sample(m, "fundarb_journal_append_seconds_bucket", le="0.0005") == 1.0


def test_positions_by_state_covers_every_state_and_resets_missing_ones() -> None:
    m = create_metrics()
    for state in PositionState:
        assert sample(m, "fundarb_positions", state=state.value) == 0.0
    m.set_positions_by_state({PositionState.HEDGED: 3, PositionState.HEDGE_PENDING: 1})
    assert sample(m, "fundarb_positions", state="hedged") == 3.0
    assert sample(m, "fundarb_positions", state="hedge-pending") == 1.0
    m.set_positions_by_state({"hedged": 2})
    assert sample(m, "fundarb_positions", state="hedged") == 2.0
    assert sample(m, "fundarb_positions", state="hedge-pending") == 0.0


def test_funding_routes_by_sign_and_pnl_components() -> None:
    m = create_metrics()
    m.record_funding("binance", 1.5)
    m.record_funding("binance", -0.25)
    m.record_funding("binance", 0.5)
    assert sample(m, "fundarb_funding_received_quote_total", venue="binance") == 2.0
    assert sample(m, "fundarb_funding_paid_quote_total", venue="binance") == 0.25
    m.set_pnl("total", -3.5)
    assert sample(m, "fundarb_pnl_quote", component="total") == -3.5
    with pytest.raises(InvalidValue, match="pnl component"):
        m.set_pnl("bonus", 1.0)


def test_staleness_reconnects_and_venue_errors_by_class_name_only() -> None:
    m = create_metrics()
    btc = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
    m.set_staleness(btc, 4.5)
    m.record_reconnect("binance", "market")
    m.record_venue_error(
        "binance", OutcomeUnknown("timeout; signature=deadbeef secret=hunter2", venue="binance")
    )
    m.record_venue_error("binance", "RateLimited")
    assert sample(m, "fundarb_market_data_staleness_seconds", instrument="binance:perp:BTCUSDT") == 4.5
    assert sample(m, "fundarb_stream_reconnects_total", venue="binance", stream="market") == 1.0
    assert sample(m, "fundarb_venue_api_errors_total", venue="binance", kind="OutcomeUnknown") == 1.0
    assert sample(m, "fundarb_venue_api_errors_total", venue="binance", kind="RateLimited") == 1.0
    text = m.exposition().decode()
    assert "hunter2" not in text and "deadbeef" not in text


def test_gate_decisions_mode_changes_and_kills() -> None:
    m = create_metrics()
    assert sample(m, "fundarb_trading_mode", scope="global", fundarb_trading_mode="active") == 1.0
    m.record_gate_decision(True, "ok")
    m.record_gate_decision(False, "venue-cap")
    m.record_gate_decision(False, "venue-cap")
    m.record_mode_change("venue:binance", "venue", "reducing")
    m.record_mode_change("global", "global", "HALTED")
    m.record_kill("http")
    assert sample(m, "fundarb_risk_gate_decisions_total", decision="allow", reason="ok") == 1.0
    assert sample(m, "fundarb_risk_gate_decisions_total", decision="deny", reason="venue-cap") == 2.0
    assert sample(m, "fundarb_trading_mode_changes_total", scope_kind="venue", mode="reducing") == 1.0
    for mode in TRADING_MODES:
        expected = 1.0 if mode == "reducing" else 0.0
        assert sample(m, "fundarb_trading_mode", scope="venue:binance", fundarb_trading_mode=mode) == expected
    assert sample(m, "fundarb_trading_mode", scope="global", fundarb_trading_mode="halted") == 1.0
    assert sample(m, "fundarb_trading_mode", scope="global", fundarb_trading_mode="active") == 0.0
    assert sample(m, "fundarb_kill_switch_activations_total", source="http") == 1.0
    with pytest.raises(InvalidValue, match="trading mode"):
        m.record_mode_change("global", "global", "yolo")


def test_journal_errors_and_loop_stall_keeps_the_worst() -> None:
    m = create_metrics()
    m.record_journal_error(OSError("disk full at /secret/path"))
    assert sample(m, "fundarb_journal_errors_total", kind="OSError") == 1.0
    m.record_loop_lag(0.004)
    m.record_loop_lag(0.001)
    assert sample(m, "fundarb_event_loop_lag_seconds") == 0.001
    assert sample(m, "fundarb_event_loop_stall_max_seconds") == 0.004
    m.record_loop_lag(0.009)
    assert sample(m, "fundarb_event_loop_stall_max_seconds") == 0.009


@pytest.mark.parametrize(
    "bad",
    [
        "Bearer abcdef",
        "postgresql://bot:hunter2@db/x",
        "key=value",
        "",
        "x" * 81,
        'quote"d',
        "new\nline",
    ],
    ids=["space", "url-with-password", "equals", "empty", "too-long", "quote", "newline"],
)
def test_label_values_outside_the_safe_alphabet_are_refused_without_echo(bad: str) -> None:
    with pytest.raises(InvalidValue) as info:
        label_value(bad)
    assert bad == "" or bad not in str(info.value)
    m = create_metrics()
    with pytest.raises(InvalidValue):
        m.record_order_sent(bad)
    with pytest.raises(InvalidValue):
        m.record_gate_decision(False, bad)


def test_label_value_accepts_identifiers_and_enums() -> None:
    assert label_value("binance:perp:BTCUSDT") == "binance:perp:BTCUSDT"
    assert label_value(PositionState.OPENING_LEG_A) == "open-leg-A"
    assert label_value("rule:stale-data") == "rule:stale-data"


def test_repr_is_short() -> None:
    assert repr(create_metrics()).startswith("<Metrics on registry 0x")
