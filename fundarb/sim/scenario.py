"""Scenario files: one TOML file describes one fault-injection run of the engine.

A scenario fixes the market (driver), the engine's settings, the faults injected between the
engine and the simulated venue, how long the run lasts, and the limits its invariants are
checked against. The format is documented for operators in ``sim/README.md``; in short::

    name = "lost_ack"
    description = "10 % of placements and cancels take effect but their answer is lost"
    horizon_minutes = 120      # sim minutes the engine trades before the final flatten
    speed = 120.0              # sim seconds per (mock) Trio second
    start = "2023-01-01T07:00:00Z"   # optional; default 1 h before the 08:00 funding
    step_seconds = 60          # market step of the simulated venue (sim seconds)
    seed = 1                   # default seed; ``--seed`` overrides it

    [market]                   # kind = "flat" | "scripted" | "synthetic" | "stress" | "replay"
    kind = "flat"
    prices = { BTCUSDT = 30000 }       # or { BTCUSDT = [spot, perp] }
    funding_rate = 0.0005

    [engine]                   # FUNDARB_* variables without the prefix (see fundarb.config)
    entry_apr = "0.05"
    max_open_positions = 2

    [faults]                   # a fundarb.sim.fault_plan.FaultPlan table
    lost_ack_rate = 0.1

    [account]                  # the simulated account's opening balances (USDT)
    futures_usdt = 100000
    spot_usdt = 100000

    [limits]
    max_naked_notional = 20000         # USDT
    max_naked_notional_seconds = 60000 # USDT * engine seconds
    flatten_within_s = 120             # engine seconds for the final flatten
    min_positions = 1                  # the run must actually trade
    exercised = ["lost_ack"]           # FaultyVenue.injected counters that must be > 0

``clock_check_s`` (optional) turns on the risk service's venue-clock check at that interval;
paper mode leaves it off because the simulated clock runs ``speed`` times faster than the
engine's, so it only makes sense with ``speed = 1``.

Every table is validated when the file loads: an unknown key, a bad value or a missing required
key raises :class:`ScenarioError` naming the file and the key.
"""

from __future__ import annotations

import datetime
import pathlib
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from fundarb.config import PREFIX, ConfigError, load_config
from fundarb.sim.drivers import FlatDriver, MarketDriver, ScriptedDriver, ScriptPoint
from fundarb.sim.fault_plan import FaultPlan
from fundarb.sim.synthetic import SyntheticDriver
from fundarb.sim.venue import SIM_EPOCH_MS

__all__ = ["MARKET_KINDS", "Limits", "Scenario", "ScenarioError", "load_scenario"]

MARKET_KINDS = ("flat", "scripted", "synthetic", "stress", "replay")
_TOP_KEYS = {
    "name",
    "description",
    "horizon_minutes",
    "speed",
    "start",
    "step_seconds",
    "seed",
    "market",
    "engine",
    "faults",
    "limits",
    "account",
    "clock_check_s",
}
_DEFAULT_START_MS = SIM_EPOCH_MS + 7 * 3_600_000  # one hour before the 08:00 funding


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the key."""


def _num(where: str, v: Any, *, positive: bool = False, integer: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ScenarioError(f"{where}: expected a number, got {v!r}")
    try:
        x = float(v)
    except ValueError:
        raise ScenarioError(f"{where}: expected a number, got {v!r}") from None
    if x != x or x in (float("inf"), float("-inf")) or (positive and x <= 0) or x < 0:
        raise ScenarioError(f"{where}: expected a finite number {'> 0' if positive else '>= 0'}, got {v!r}")
    if integer and x != int(x):
        raise ScenarioError(f"{where}: expected an integer, got {v!r}")
    return x


def _dec(where: str, v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | str | Decimal):
        raise ScenarioError(f"{where}: expected a decimal number, got {v!r}")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise ScenarioError(f"{where}: expected a decimal number, got {v!r}") from None
    if not d.is_finite():
        raise ScenarioError(f"{where}: must be finite, got {v!r}")
    return d


def _table(where: str, v: Any) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise ScenarioError(f"{where}: expected a table, got {v!r}")
    return v


@attrs.frozen
class Limits:
    """What a run must stay within (see the module docstring)."""

    max_naked_notional: float = 50_000.0
    max_naked_notional_seconds: float = 250_000.0
    flatten_within_s: float = 300.0
    min_positions: int = 1
    exercised: tuple[str, ...] = ()
    funding_tolerance: Decimal = Decimal("0.01")

    @classmethod
    def from_dict(cls, where: str, d: Mapping[str, Any]) -> Limits:
        """Parse a ``[limits]`` table."""
        known = {f.name for f in attrs.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
        kw: dict[str, Any] = {}
        for key in ("max_naked_notional", "max_naked_notional_seconds", "flatten_within_s"):
            if key in d:
                kw[key] = _num(f"{where}.{key}", d[key], positive=True)
        if "min_positions" in d:
            kw["min_positions"] = int(_num(f"{where}.min_positions", d["min_positions"], integer=True))
        if "funding_tolerance" in d:
            kw["funding_tolerance"] = _dec(f"{where}.funding_tolerance", d["funding_tolerance"])
        if "exercised" in d:
            ex = d["exercised"]
            if not isinstance(ex, list) or not all(isinstance(x, str) and x for x in ex):
                raise ScenarioError(f"{where}.exercised: expected a list of fault counter names, got {ex!r}")
            kw["exercised"] = tuple(ex)
        return cls(**kw)


@attrs.frozen
class Scenario:
    """One parsed scenario file. ``market`` and ``engine`` stay plain tables, validated on load."""

    name: str
    description: str
    horizon_ms: int
    speed: float
    start_ms: int
    step_ms: int
    seed: int
    market: Mapping[str, Any]
    engine: Mapping[str, str]
    faults: FaultPlan
    fault_table: Mapping[str, Any]
    limits: Limits
    path: str = ""
    balances: Mapping[str, Decimal] = attrs.field(factory=dict)
    clock_check_s: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "<scenario>") -> Scenario:
        """Validate and build; raises :class:`ScenarioError` naming ``source`` and the key."""
        unknown = set(d) - _TOP_KEYS
        if unknown:
            raise ScenarioError(f"{source}: unknown keys {sorted(unknown)}")
        for key in ("name", "horizon_minutes", "market"):
            if key not in d:
                raise ScenarioError(f"{source}: missing required key {key!r}")
        name = d["name"]
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"{source}: name must be a non-empty string")
        description = d.get("description", "")
        if not isinstance(description, str):
            raise ScenarioError(f"{source}: description must be a string")
        horizon_ms = int(_num(f"{source}: horizon_minutes", d["horizon_minutes"], positive=True) * 60_000)
        speed = _num(f"{source}: speed", d.get("speed", 60.0), positive=True)
        step_ms = int(_num(f"{source}: step_seconds", d.get("step_seconds", 60), positive=True) * 1000)
        seed = int(_num(f"{source}: seed", d.get("seed", 1), integer=True))
        start_ms = _parse_start(source, d.get("start"))
        market = _table(f"{source}: market", d["market"])
        engine_raw = _table(f"{source}: engine", d.get("engine", {}))
        engine = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in engine_raw.items()}
        fault_table = _table(f"{source}: faults", d.get("faults", {}))
        try:
            faults = FaultPlan.from_dict(fault_table)
        except ValueError as e:
            raise ScenarioError(f"{source}: faults: {e}") from None
        limits = Limits.from_dict(f"{source}: limits", _table(f"{source}: limits", d.get("limits", {})))
        account = _table(f"{source}: account", d.get("account", {}))
        if set(account) - {"futures_usdt", "spot_usdt"}:
            raise ScenarioError(
                f"{source}: account: unknown keys {sorted(set(account) - {'futures_usdt', 'spot_usdt'})}"
            )
        balances = {k: _dec(f"{source}: account.{k}", v) for k, v in account.items()}
        if any(v < 0 for v in balances.values()):
            raise ScenarioError(f"{source}: account: balances must be >= 0")
        clock_check = d.get("clock_check_s")
        clock_check_s = (
            None if clock_check is None else _num(f"{source}: clock_check_s", clock_check, positive=True)
        )
        scenario = cls(
            name,
            description,
            horizon_ms,
            speed,
            start_ms,
            step_ms,
            seed,
            market,
            engine,
            faults,
            fault_table,
            limits,
            source,
            balances,
            clock_check_s,
        )
        scenario.driver(seed)  # validate the market table now, not mid-run
        scenario.config({})
        return scenario

    # --- what the runner builds from it ---

    def driver(self, seed: int) -> MarketDriver:
        """The market driver of this scenario for ``seed``."""
        return build_driver(self.market, seed, self.start_ms, self.step_ms, where=f"{self.path}: market")

    def config(self, base: Mapping[str, str]) -> Any:
        """The engine :class:`~fundarb.config.Config`: ``base`` env overlaid with ``[engine]``."""
        env = dict(base)
        env.setdefault(f"{PREFIX}MODE", "paper")
        for k, v in self.engine.items():
            env[f"{PREFIX}{k.upper()}"] = v
        try:
            return load_config(env)
        except ConfigError as e:
            raise ScenarioError(f"{self.path}: engine: {e}") from None

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols the engine trades: ``[engine] symbols`` or the market's."""
        return tuple(self.config({}).symbols)


def _parse_start(source: str, v: Any) -> int:
    if v is None:
        return _DEFAULT_START_MS
    if isinstance(v, datetime.datetime):
        dt = v
    elif isinstance(v, str):
        try:
            dt = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ScenarioError(f"{source}: start: expected an ISO date-time, got {v!r}") from None
    else:
        raise ScenarioError(f"{source}: start: expected an ISO date-time, got {v!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return int(dt.timestamp() * 1000)


def _prices(where: str, v: Any) -> dict[str, tuple[Decimal, Decimal]]:
    out = {}
    for sym, p in _table(where, v).items():
        if isinstance(p, list):
            if len(p) != 2:
                raise ScenarioError(f"{where}.{sym}: expected a price or [spot, perp], got {p!r}")
            out[sym] = (_dec(f"{where}.{sym}", p[0]), _dec(f"{where}.{sym}", p[1]))
        else:
            out[sym] = (_dec(f"{where}.{sym}", p), _dec(f"{where}.{sym}", p))
        if min(out[sym]) <= 0:
            raise ScenarioError(f"{where}.{sym}: prices must be > 0")
    if not out:
        raise ScenarioError(f"{where}: at least one symbol needs a price")
    return out


def build_driver(m: Mapping[str, Any], seed: int, start_ms: int, step_ms: int, *, where: str) -> MarketDriver:
    """A driver from a ``[market]`` table (see the module docstring and ``sim/README.md``)."""
    kind = m.get("kind")
    if kind not in MARKET_KINDS:
        raise ScenarioError(f"{where}.kind: expected one of {MARKET_KINDS}, got {kind!r}")
    allowed = {
        "flat": {"kind", "prices", "funding_rate"},
        "scripted": {"kind", "points"},
        "synthetic": {"kind", "prices", "regimes", "initial_basis_bps"},
        "stress": {"kind", "prices", "calm_minutes"},
        "replay": {"kind", "symbols", "data", "start_date"},
    }[kind]
    unknown = set(m) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown keys for kind {kind!r}: {sorted(unknown)}")
    try:
        if kind == "flat":
            prices = _prices(f"{where}.prices", m.get("prices", {"BTCUSDT": 30000}))
            rate = _dec(f"{where}.funding_rate", m.get("funding_rate", "0.0001"))
            return FlatDriver(prices, dict.fromkeys(prices, rate), start_ms=start_ms)
        if kind == "scripted":
            pts = m.get("points")
            if not isinstance(pts, list) or not pts:
                raise ScenarioError(f"{where}.points: expected a non-empty list of tables")
            points = []
            for i, p in enumerate(pts):
                w = f"{where}.points[{i}]"
                p = _table(w, p)
                if set(p) - {"minutes", "symbol", "spot", "perp", "funding_rate"}:
                    raise ScenarioError(
                        f"{w}: unknown keys {sorted(set(p) - {'minutes', 'symbol', 'spot', 'perp', 'funding_rate'})}"
                    )
                at = start_ms + int(_num(f"{w}.minutes", p.get("minutes", 0)) * 60_000)
                spot = _dec(f"{w}.spot", p["spot"])
                points.append(
                    ScriptPoint(
                        at,
                        str(p.get("symbol", "BTCUSDT")),
                        spot,
                        _dec(f"{w}.perp", p.get("perp", spot)),
                        _dec(f"{w}.funding_rate", p.get("funding_rate", "0.0001")),
                    )
                )
            return ScriptedDriver(points)
        if kind == "synthetic":
            levels = {
                s: p[0] for s, p in _prices(f"{where}.prices", m.get("prices", {"BTCUSDT": 30000})).items()
            }
            table: dict[str, Any] = {
                "prices": levels,
                "regimes": m.get("regimes", []),
                "seed": seed,
                "start_ms": start_ms,
                "step_ms": step_ms,
            }
            if "initial_basis_bps" in m:
                table["initial_basis_bps"] = m["initial_basis_bps"]
            return SyntheticDriver.from_dict(table)
        if kind == "stress":
            levels = {
                s: p[0] for s, p in _prices(f"{where}.prices", m.get("prices", {"BTCUSDT": 30000})).items()
            }
            calm = int(_num(f"{where}.calm_minutes", m.get("calm_minutes", 120), positive=True, integer=True))
            return SyntheticDriver.stress(seed=seed, start_ms=start_ms, prices=levels, calm_minutes=calm)
        from fundarb.sim.replay import ReplayDriver

        symbols = m.get("symbols", ["BTCUSDT"])
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise ScenarioError(f"{where}.symbols: expected a list of symbols")
        return ReplayDriver.from_data(
            tuple(symbols), data_dir=m.get("data"), seed=seed, step_ms=step_ms, start_ms=start_ms
        )
    except ScenarioError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise ScenarioError(f"{where}: {type(e).__name__}: {e}") from None


def load_scenario(path: str | pathlib.Path) -> Scenario:
    """Read and validate a scenario TOML file."""
    p = pathlib.Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"{p}: cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{p}: not valid TOML: {e}") from None
    return Scenario.from_dict(data, source=str(p))
