"""Every Prometheus metric of fundarb, defined in one place on a dedicated registry.

:func:`create_metrics` builds a :class:`Metrics` holding all metric objects, registered on a
``CollectorRegistry`` of its own (never prometheus_client's global one), so tests and several
engines in one process do not clash. The HTTP server exposes that registry at ``/metrics``.

Metric names (all prefixed ``fundarb_``; counters get ``_total`` appended in the exposition):

================================================  =========  ==================================
name                                              type       labels
================================================  =========  ==================================
``fundarb_orders_sent_total``                     counter    venue
``fundarb_orders_rejected_total``                 counter    venue
``fundarb_orders_outcome_unknown_total``          counter    venue
``fundarb_fills_total``                           counter    venue, kind (trade/liquidation/adl/...)
``fundarb_hedge_gap_seconds``                     histogram  (none) leg-A fill received -> hedge written
``fundarb_naked_exposure_notional_seconds``       histogram  (none) one observation per position
``fundarb_positions``                             gauge      state (every PositionState, 0 if none)
``fundarb_funding_received_quote_total``          counter    venue
``fundarb_funding_paid_quote_total``              counter    venue
``fundarb_pnl_quote``                             gauge      component (realized/unrealized/funding/fees/total)
``fundarb_market_data_staleness_seconds``         gauge      instrument (``venue:market:symbol``)
``fundarb_stream_reconnects_total``               counter    venue, stream
``fundarb_venue_api_errors_total``                counter    venue, kind (error class name)
``fundarb_risk_gate_decisions_total``             counter    decision (allow/deny), reason
``fundarb_trading_mode_changes_total``            counter    scope_kind, mode
``fundarb_trading_mode``                          enum       scope (states active/reducing/halted)
``fundarb_kill_switch_activations_total``         counter    source (http/cli/rule:...)
``fundarb_journal_append_seconds``                histogram  (none)
``fundarb_journal_errors_total``                  counter    kind (exception class name)
``fundarb_event_loop_lag_seconds``                gauge      (none) latest watchdog measurement
``fundarb_event_loop_stall_max_seconds``          gauge      (none) worst stall since start
================================================  =========  ==================================

Label values come from closed vocabularies only: venue names, instrument ids, enum values,
exception class names and rule names. Never put free text (reasons typed by an operator, error
messages) or anything derived from a credential in a label: :func:`label_value` rejects values
outside ``[A-Za-z0-9_.:/-]{1,80}``, and the ``record_*`` helpers apply it, so an error message
or a URL with a password cannot end up as a label by accident.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import Enum as EnumMetric

from fundarb.core.errors import InvalidValue
from fundarb.core.position_model import PositionState

__all__ = [
    "HEDGE_GAP_BUCKETS",
    "JOURNAL_APPEND_BUCKETS",
    "NAKED_EXPOSURE_BUCKETS",
    "PNL_COMPONENTS",
    "TRADING_MODES",
    "Metrics",
    "create_metrics",
    "label_value",
]

#: hedge gap buckets, seconds: 50 µs to 10 s (1-2-5 steps)
HEDGE_GAP_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.0002, 0.0005,
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip

#: naked exposure buckets, quote-currency notional x seconds (1 USDT for 1 ms .. 1M USDT for 10 s)
NAKED_EXPOSURE_BUCKETS: tuple[float, ...] = (
    0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0,
)  # fmt: skip

#: journal append latency buckets, seconds: 10 µs to 5 s
JOURNAL_APPEND_BUCKETS: tuple[float, ...] = (
    0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
)  # fmt: skip

#: states of ``fundarb_trading_mode`` (the values of ``core.risk_modes.TradingMode``)
TRADING_MODES: tuple[str, ...] = ("active", "reducing", "halted")

#: allowed ``component`` labels of ``fundarb_pnl_quote``
PNL_COMPONENTS: tuple[str, ...] = ("realized", "unrealized", "funding", "fees", "total")

_LABEL_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,80}")


def label_value(value: object) -> str:
    """``value`` as a safe label value: an enum's ``.value`` or ``str(value)``.

    Raises :class:`~fundarb.core.errors.InvalidValue` unless the text matches
    ``[A-Za-z0-9_.:/-]{1,80}``: no spaces, ``@``, ``=``, ``?`` or quotes, so free text, URLs with
    credentials and error messages are refused. The offending value is not echoed.
    """
    text = value.value if isinstance(value, enum.Enum) else value
    text = str(text)
    if not _LABEL_RE.fullmatch(text):
        raise InvalidValue(
            f"metric label value refused ({len(text)} chars): only [A-Za-z0-9_.:/-], 1 to 80 chars"
        )
    return text


@attrs.frozen(repr=False)
class Metrics:
    """All fundarb metrics, registered on :attr:`registry`. Build with :func:`create_metrics`.

    The attributes are prometheus_client objects and may be used directly
    (``metrics.orders_sent.labels(venue="binance").inc()``); the ``record_*`` methods do the same
    with label checking, and are the preferred way for anything carrying a dynamic value.
    """

    registry: CollectorRegistry
    orders_sent: Counter
    orders_rejected: Counter
    orders_outcome_unknown: Counter
    fills: Counter
    hedge_gap_seconds: Histogram
    naked_exposure_notional_seconds: Histogram
    positions: Gauge
    funding_received: Counter
    funding_paid: Counter
    pnl: Gauge
    market_data_staleness_seconds: Gauge
    stream_reconnects: Counter
    venue_api_errors: Counter
    risk_gate_decisions: Counter
    trading_mode_changes: Counter
    trading_mode: EnumMetric
    kill_switch_activations: Counter
    journal_append_seconds: Histogram
    journal_errors: Counter
    event_loop_lag_seconds: Gauge
    event_loop_stall_max_seconds: Gauge

    def __repr__(self) -> str:
        return f"<Metrics on registry {id(self.registry):#x}>"

    # --- orders and fills ---------------------------------------------------------------------

    def record_order_sent(self, venue: str) -> None:
        """One order request written to ``venue``."""
        self.orders_sent.labels(venue=label_value(venue)).inc()

    def record_order_rejected(self, venue: str) -> None:
        """``venue`` refused an order (nothing happened)."""
        self.orders_rejected.labels(venue=label_value(venue)).inc()

    def record_order_outcome_unknown(self, venue: str) -> None:
        """An order request to ``venue`` ended without a known outcome (timeout, 5xx after send)."""
        self.orders_outcome_unknown.labels(venue=label_value(venue)).inc()

    def record_fill(self, venue: str, kind: object = "trade") -> None:
        """One fill at ``venue``; ``kind`` is ``"trade"`` or a ``VenueFillKind`` (liquidation, ADL...)."""
        kind_text = label_value(kind).lower()
        self.fills.labels(venue=label_value(venue), kind=kind_text).inc()

    def record_hedge_gap(self, seconds: float) -> None:
        """Time from a leg-A fill arriving to the hedge order being written, in seconds."""
        self.hedge_gap_seconds.observe(_non_negative("hedge gap", seconds))

    def record_naked_exposure(self, notional_seconds: float) -> None:
        """A position's total naked exposure (quote notional x seconds), once per position."""
        self.naked_exposure_notional_seconds.observe(_non_negative("naked exposure", notional_seconds))

    # --- book -------------------------------------------------------------------------------------

    def set_positions_by_state(self, counts: Mapping[Any, int]) -> None:
        """Set ``fundarb_positions`` from ``{state: count}`` (PositionState or its value); states
        absent from ``counts`` go to 0."""
        values = {label_value(state): int(n) for state, n in counts.items()}
        for known in PositionState:
            self.positions.labels(state=known.value).set(values.pop(known.value, 0))
        for label, n in values.items():  # a state this module does not know yet: still exported
            self.positions.labels(state=label).set(n)

    def record_funding(self, venue: str, amount: float) -> None:
        """A funding payment at ``venue``, quote currency: positive received, negative paid."""
        venue_label = label_value(venue)
        amount = float(amount)
        if amount >= 0:
            self.funding_received.labels(venue=venue_label).inc(amount)
        else:
            self.funding_paid.labels(venue=venue_label).inc(-amount)

    def set_pnl(self, component: str, value: float) -> None:
        """Set the PnL gauge of ``component`` (one of :data:`PNL_COMPONENTS`), quote currency."""
        if component not in PNL_COMPONENTS:
            raise InvalidValue(f"pnl component {component!r}: expected one of {', '.join(PNL_COMPONENTS)}")
        self.pnl.labels(component=component).set(float(value))

    # --- market data and venues ------------------------------------------------------------------

    def set_staleness(self, instrument: object, seconds: float) -> None:
        """Seconds since the last market-data update of ``instrument`` (an InstrumentId or its str)."""
        self.market_data_staleness_seconds.labels(instrument=label_value(str(instrument))).set(
            _non_negative("staleness", seconds)
        )

    def record_reconnect(self, venue: str, stream: str) -> None:
        """A market-data or user-data ``stream`` of ``venue`` reconnected."""
        self.stream_reconnects.labels(venue=label_value(venue), stream=label_value(stream)).inc()

    def record_venue_error(self, venue: str, error: BaseException | str) -> None:
        """A venue API call failed; the label is the exception's class name (never its message)."""
        kind = error if isinstance(error, str) else type(error).__name__
        self.venue_api_errors.labels(venue=label_value(venue), kind=label_value(kind)).inc()

    # --- risk -------------------------------------------------------------------------------------

    def record_gate_decision(self, allowed: bool, reason: str) -> None:
        """One risk-gate decision; ``reason`` is the gate's reason code (e.g. ``"ok"``, ``"venue-cap"``)."""
        decision = "allow" if allowed else "deny"
        self.risk_gate_decisions.labels(decision=decision, reason=label_value(reason)).inc()

    def record_mode_change(self, scope: object, scope_kind: object, mode: object) -> None:
        """The mode of ``scope`` (``str(ModeScope)``) became ``mode``; sets the enum and counts the change."""
        mode_text = label_value(mode).lower()
        if mode_text not in TRADING_MODES:
            raise InvalidValue(f"trading mode {mode_text!r}: expected one of {', '.join(TRADING_MODES)}")
        self.trading_mode_changes.labels(scope_kind=label_value(scope_kind), mode=mode_text).inc()
        self.trading_mode.labels(scope=label_value(str(scope))).state(mode_text)

    def record_kill(self, source: str) -> None:
        """The kill switch was activated by ``source`` (``"http"``, ``"cli"``, ``"rule:<name>"``)."""
        self.kill_switch_activations.labels(source=label_value(source)).inc()

    # --- journal and loop -------------------------------------------------------------------------

    def record_journal_append(self, seconds: float) -> None:
        """One journal append (including its commit) took ``seconds``."""
        self.journal_append_seconds.observe(_non_negative("journal append", seconds))

    def record_journal_error(self, error: BaseException | str) -> None:
        """A journal operation failed; the label is the exception's class name."""
        kind = error if isinstance(error, str) else type(error).__name__
        self.journal_errors.labels(kind=label_value(kind)).inc()

    def record_loop_lag(self, seconds: float) -> None:
        """A watchdog measured the event loop ``seconds`` late; keeps the worst value too."""
        seconds = _non_negative("loop lag", seconds)
        self.event_loop_lag_seconds.set(seconds)
        worst = self.registry.get_sample_value("fundarb_event_loop_stall_max_seconds") or 0.0
        if seconds > worst:
            self.event_loop_stall_max_seconds.set(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of :attr:`registry` (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    def names(self) -> list[str]:
        """Names of every metric family in the registry, sorted."""
        return sorted(m.name for m in self.registry.collect())


def _non_negative(what: str, value: float) -> float:
    number = float(value)
    if not number >= 0:  # also refuses NaN
        raise InvalidValue(f"{what}: expected a non-negative number, got {value!r}")
    return number


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Register every fundarb metric on ``registry`` (a fresh one by default) and return them.

    Calling it twice on the same registry raises ``ValueError`` (duplicated timeseries), as
    prometheus_client does: one :class:`Metrics` per registry.
    """
    reg = CollectorRegistry(auto_describe=True) if registry is None else registry

    def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
        return Counter(f"fundarb_{name}", doc, labelnames=tuple(labels), registry=reg)

    def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
        return Gauge(f"fundarb_{name}", doc, labelnames=tuple(labels), registry=reg)

    def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(f"fundarb_{name}", doc, buckets=buckets, registry=reg)

    metrics = Metrics(
        registry=reg,
        orders_sent=counter("orders_sent", "Order requests written to a venue.", ["venue"]),
        orders_rejected=counter("orders_rejected", "Orders the venue refused.", ["venue"]),
        orders_outcome_unknown=counter(
            "orders_outcome_unknown", "Order requests whose outcome is unknown (reconciled later).", ["venue"]
        ),
        fills=counter(
            "fills", "Fills received, by kind (trade, liquidation, adl, settlement).", ["venue", "kind"]
        ),
        hedge_gap_seconds=histogram(
            "hedge_gap_seconds", "Leg-A fill received to hedge order written, seconds.", HEDGE_GAP_BUCKETS
        ),
        naked_exposure_notional_seconds=histogram(
            "naked_exposure_notional_seconds",
            "Naked (unhedged) exposure of each position over its life, quote notional x seconds.",
            NAKED_EXPOSURE_BUCKETS,
        ),
        positions=gauge("positions", "Hedged positions by state.", ["state"]),
        funding_received=counter("funding_received_quote", "Funding received, quote currency.", ["venue"]),
        funding_paid=counter("funding_paid_quote", "Funding paid, quote currency.", ["venue"]),
        pnl=gauge("pnl_quote", "Profit and loss, quote currency, by component.", ["component"]),
        market_data_staleness_seconds=gauge(
            "market_data_staleness_seconds", "Seconds since the last market-data update.", ["instrument"]
        ),
        stream_reconnects=counter("stream_reconnects", "Venue stream reconnections.", ["venue", "stream"]),
        venue_api_errors=counter(
            "venue_api_errors", "Failed venue API calls, by error class.", ["venue", "kind"]
        ),
        risk_gate_decisions=counter(
            "risk_gate_decisions", "Pre-trade risk gate decisions, by reason.", ["decision", "reason"]
        ),
        trading_mode_changes=counter(
            "trading_mode_changes",
            "Trading mode changes, by scope kind and new mode.",
            ["scope_kind", "mode"],
        ),
        trading_mode=EnumMetric(
            "fundarb_trading_mode",
            "Current trading mode of each scope (global, venue:<v>, instrument:<id>).",
            labelnames=("scope",),
            states=list(TRADING_MODES),
            registry=reg,
        ),
        kill_switch_activations=counter("kill_switch_activations", "Kill switch activations.", ["source"]),
        journal_append_seconds=histogram(
            "journal_append_seconds", "Journal append latency, seconds.", JOURNAL_APPEND_BUCKETS
        ),
        journal_errors=counter("journal_errors", "Journal operations that failed, by error class.", ["kind"]),
        event_loop_lag_seconds=gauge("event_loop_lag_seconds", "Latest event-loop lag measured, seconds."),
        event_loop_stall_max_seconds=gauge(
            "event_loop_stall_max_seconds", "Worst event-loop stall measured since start, seconds."
        ),
    )
    metrics.set_positions_by_state({})
    metrics.trading_mode.labels(scope="global").state("active")
    return metrics
