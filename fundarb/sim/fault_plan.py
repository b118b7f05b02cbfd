"""FaultPlan: what a :class:`~fundarb.sim.faults.FaultyVenue` does wrong, as a frozen value.

Built from a plain dict (a TOML scenario table) with :meth:`FaultPlan.from_dict`; unknown keys and
bad values raise ``ValueError`` naming the key. Every key is optional (the default is "no fault").

Times: ``*_ms`` latencies and ``*_s`` delays are **Trio-clock** durations (real seconds in paper
mode); windows (``start_s``/``end_s``/``at_s``) are **venue-clock** seconds since the FaultyVenue
first ran (sim seconds for a SimVenue). Rates are probabilities in [0, 1] drawn from the seeded rng.

Per-call faults (calls: instruments, funding, quote, server_time_ms, place_order, cancel_order,
query_order, open_orders, positions, balances, fills_since, funding_income_since, borrow, repay,
transfer):

``latency_ms``            ``{"p50": 20, "p99": 200}`` log-normal latency of every call (half before
                          the request reaches the venue, half on the way back)
``latency_ms_by_call``    ``{"place_order": {"p50": .., "p99": ..}}`` per-call override
``timeout_s``             call deadline; a drawn latency above it is a timeout (default 10)
``timeout_rate``          extra probability that a call times out
``timeout_applied_rate``  probability a timed-out *mutating* call took effect anyway (default 0.5)
``error_5xx_rate``        HTTP 5xx: reads raise VenueUnavailable, mutating calls OutcomeUnknown
``error_5xx_applied_rate`` probability a 5xx'd mutating call took effect anyway (default 0.5)
``rate_limit_rate``       HTTP 429: RateLimited(retry_after=``retry_after_s``), nothing sent
``retry_after_s``         Retry-After of a 429 (default 1.0)
``reject_rates``          place_order rejections before the venue sees the order:
                          ``{"insufficient_margin": p, "min_notional": p, "precision": p,
                          "post_only_would_cross": p (POST_ONLY orders only), "reduce_only": p
                          (reduce-only orders only)}``
``lost_ack_rate``         place/cancel reach the venue and take effect, but the call raises
                          OutcomeUnknown (the acknowledgement is lost)
``cancel_fill_race_rate`` before a cancel arrives the order fills (needs an inner venue with
                          ``force_fill``, e.g. SimVenue); the cancel then fails as on a real venue
``clock_skew_ms``         added to ``server_time_ms``
``transfer_delay_s``      extra time a transfer call takes (slow transfers)
``maintenance``           ``[{"start_s": .., "end_s": ..}]``: every call raises VenueUnavailable,
                          streams report StreamDisconnected then StreamResynced at the end

Stream faults (``run_user_data`` = "user", ``run_market_data`` = "market"):

``user_duplicate_rate``   an event is delivered twice
``user_reorder_rate``     an event is held back and delivered after the next one
``user_late_rate``        an event is delivered ``user_late_s`` (default 2.0) late
``ws_drops``              ``[{"at_s": .., "down_s": .., "stream": "user"|"market"|"both"}]``:
                          StreamDisconnected, events lost while down, then StreamResynced
``ws_drop_rate``          per-event probability of such a drop, lasting ``ws_down_s`` (default 5)
``stalls``                ``[{"start_s": .., "end_s": .., "stream": ..}]``: the stream goes silent
                          (events lost) without any disconnect
``stale_quotes``          ``[{"start_s": .., "end_s": ..}]``: quotes stop updating: the market
                          stream and ``quote()`` repeat the last quote seen before the window
``poll_s``                how often (Trio seconds) streams check their windows (default 0.1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from fundarb.venues.protocol import MUTATING_CALLS, VENUE_CALLS

__all__ = ["CALLS", "MUTATING_CALLS", "REJECT_KINDS", "FaultPlan", "Latency", "Window"]

CALLS = VENUE_CALLS  # the protocol's call names, defined once in fundarb.venues.protocol
REJECT_KINDS = ("insufficient_margin", "min_notional", "precision", "post_only_would_cross", "reduce_only")
STREAMS = ("user", "market", "both")


def _prob(name: str, v: Any) -> float:
    try:
        p = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a probability, got {v!r}") from None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: must be in [0, 1], got {v!r}")
    return p


def _nonneg(name: str, v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {v!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {v!r}")
    return x


@attrs.frozen
class Latency:
    """Log-normal latency given by its median and 99th percentile, in ms."""

    p50: float
    p99: float

    @classmethod
    def from_dict(cls, name: str, d: Any) -> Latency:
        """``{"p50": .., "p99": ..}``; p99 defaults to p50 (constant latency)."""
        if not isinstance(d, Mapping) or set(d) - {"p50", "p99"} or "p50" not in d:
            raise ValueError(f"{name}: expected {{'p50': ms, 'p99': ms}}, got {d!r}")
        p50 = _nonneg(f"{name}.p50", d["p50"])
        p99 = _nonneg(f"{name}.p99", d.get("p99", p50))
        if p99 < p50:
            raise ValueError(f"{name}: p99 {p99} below p50 {p50}")
        return cls(p50, p99)

    def sigma(self) -> float:
        """Log-normal sigma: ln(p99/p50) / z(0.99)."""
        return 0.0 if self.p50 <= 0 or self.p99 <= self.p50 else math.log(self.p99 / self.p50) / 2.3263


@attrs.frozen
class Window:
    """A venue-clock interval ``[start_s, end_s)`` on a stream ("user", "market" or "both")."""

    start_s: float
    end_s: float
    stream: str = "both"

    def covers(self, t_s: float, stream: str) -> bool:
        """True when ``t_s`` is inside and the window applies to ``stream``."""
        return self.start_s <= t_s < self.end_s and self.stream in ("both", stream)

    @classmethod
    def list_from(cls, name: str, items: Any, *, drop: bool = False) -> tuple[Window, ...]:
        """Parse a list of ``{"start_s", "end_s"[, "stream"]}`` (or ``{"at_s", "down_s"}`` for drops)."""
        if not isinstance(items, list):
            raise ValueError(f"{name}: expected a list of tables, got {items!r}")
        out = []
        for i, d in enumerate(items):
            where = f"{name}[{i}]"
            if not isinstance(d, Mapping):
                raise ValueError(f"{where}: expected a table, got {d!r}")
            keys = {"at_s", "down_s", "stream"} if drop else {"start_s", "end_s", "stream"}
            if set(d) - keys:
                raise ValueError(f"{where}: unknown keys {sorted(set(d) - keys)}")
            if drop:
                start = _nonneg(f"{where}.at_s", d["at_s"])
                end = start + _nonneg(f"{where}.down_s", d.get("down_s", 5.0))
            else:
                start, end = _nonneg(f"{where}.start_s", d["start_s"]), _nonneg(f"{where}.end_s", d["end_s"])
            stream = d.get("stream", "both")
            if stream not in STREAMS or end <= start:
                raise ValueError(f"{where}: bad window {dict(d)!r}")
            out.append(cls(start, end, stream))
        return tuple(out)


@attrs.frozen
class FaultPlan:
    """The faults to inject (see the module docstring for every key)."""

    latency: Latency = Latency(0.0, 0.0)
    latency_by_call: Mapping[str, Latency] = attrs.field(factory=dict)
    timeout_s: float = 10.0
    timeout_rate: float = 0.0
    timeout_applied_rate: float = 0.5
    error_5xx_rate: float = 0.0
    error_5xx_applied_rate: float = 0.5
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    reject_rates: Mapping[str, float] = attrs.field(factory=dict)
    lost_ack_rate: float = 0.0
    cancel_fill_race_rate: float = 0.0
    clock_skew_ms: int = 0
    transfer_delay_s: float = 0.0
    maintenance: tuple[Window, ...] = ()
    user_duplicate_rate: float = 0.0
    user_reorder_rate: float = 0.0
    user_late_rate: float = 0.0
    user_late_s: float = 2.0
    ws_drops: tuple[Window, ...] = ()
    ws_drop_rate: float = 0.0
    ws_down_s: float = 5.0
    stalls: tuple[Window, ...] = ()
    stale_quotes: tuple[Window, ...] = ()
    poll_s: float = 0.1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaultPlan:
        """Build from a plain dict; raises ValueError naming any unknown key or bad value."""
        if not isinstance(d, Mapping):
            raise ValueError(f"fault plan: expected a table, got {d!r}")
        kw: dict[str, Any] = {}
        for key, v in d.items():
            if key == "latency_ms":
                kw["latency"] = Latency.from_dict(key, v)
            elif key == "latency_ms_by_call":
                if not isinstance(v, Mapping) or set(v) - set(CALLS):
                    raise ValueError(f"{key}: keys must be among {CALLS}, got {v!r}")
                kw["latency_by_call"] = {c: Latency.from_dict(f"{key}.{c}", x) for c, x in v.items()}
            elif key == "reject_rates":
                if not isinstance(v, Mapping) or set(v) - set(REJECT_KINDS):
                    raise ValueError(f"{key}: keys must be among {REJECT_KINDS}, got {v!r}")
                kw[key] = {k: _prob(f"{key}.{k}", x) for k, x in v.items()}
            elif key in ("maintenance", "stalls", "stale_quotes"):
                kw[key] = Window.list_from(key, v)
            elif key == "ws_drops":
                kw[key] = Window.list_from(key, v, drop=True)
            elif key == "clock_skew_ms":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError(f"{key}: expected an integer, got {v!r}")
                kw[key] = v
            elif key.endswith("_rate"):
                if key not in attrs.fields_dict(cls):
                    raise ValueError(f"fault plan: unknown key {key!r}")
                kw[key] = _prob(key, v)
            elif key in (
                "timeout_s",
                "retry_after_s",
                "transfer_delay_s",
                "user_late_s",
                "ws_down_s",
                "poll_s",
            ):
                kw[key] = _nonneg(key, v)
            else:
                raise ValueError(f"fault plan: unknown key {key!r}")
        if kw.get("poll_s", 0.1) <= 0:
            raise ValueError("poll_s: must be > 0")
        return cls(**kw)

    def latency_for(self, call: str) -> Latency:
        """The latency distribution of ``call``."""
        return self.latency_by_call.get(call, self.latency)
