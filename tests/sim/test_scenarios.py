"""The scenario library against the real engine, the scenario format, the CLI and determinism.

Every scenario in ``sim/scenarios/`` runs here (each run is one ``trio.run`` on its own MockClock
and takes about a second). Runs that reveal an engine problem are ``xfail(strict=True)`` with the
exact failure, so a fix turns them into an XPASS that fails the suite until the mark is removed.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from fundarb.sim.fault_plan import FaultPlan
from fundarb.sim.scenario import Scenario, ScenarioError, load_scenario
from fundarb.sim.scenario_cli import add_arguments, main
from fundarb.sim.scenario_runner import Outcome, run_scenario

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "sim" / "scenarios"
REQUIRED = (
    "ws_drop_mid_hedge",
    "hedge_leg_rejected",
    "lost_ack",
    "rest_5xx_storm",
    "rate_limit_429",
    "latency_spike",
    "partial_fills",
    "flash_crash_liquidation_cascade",
    "adl_on_perp_leg",
    "funding_flip_negative",
    "stale_feed_silent_socket",
    "clock_skew",
    "venue_maintenance",
    "cancel_fill_race",
    "transfer_delay",
)

# (scenario, seed) pairs that pass: two seeds per scenario in CI (the 10-seed table is in the
# closing note of issue 3 and reproducible with `python -m fundarb sim run ... --seed N`).
PASSING = {
    "ws_drop_mid_hedge": (1, 2),
    "hedge_leg_rejected": (1, 2),
    "lost_ack": (1, 2),
    "rest_5xx_storm": (1, 3),
    "rate_limit_429": (2, 3),
    "latency_spike": (1, 3),
    "partial_fills": (1, 3),
    "flash_crash_liquidation_cascade": (1, 3),
    "adl_on_perp_leg": (1, 2),
    "funding_flip_negative": (1, 2),
    "stale_feed_silent_socket": (1, 2),
    "clock_skew": (1, 2),
    "venue_maintenance": (1, 2),
    "transfer_delay": (1, 2),
    "cancel_fill_race": (1, 2),
}


def _run(name: str, seed: int) -> Outcome:
    return run_scenario(load_scenario(LIBRARY / f"{name}.toml"), seed)


def _variant(name: str, faults: dict[str, Any], exercised: tuple[str, ...], **changes: Any) -> Scenario:
    """A library scenario with other faults (and other fields), for a failure of its own."""
    s = load_scenario(LIBRARY / f"{name}.toml")
    limits = attrs.evolve(s.limits, exercised=exercised)
    return attrs.evolve(s, faults=FaultPlan.from_dict(faults), fault_table=faults, limits=limits, **changes)


# Runs that reveal an engine problem (or a fault this engine cannot meet): strict xfail, with
# what broke. Each builds its scenario lazily (a loading error must fail the test, not collection).
KNOWN_FAILING: dict[str, tuple[Callable[[], Scenario], int, str]] = {
    "unwind_gives_up_naked": (
        lambda: _variant("hedge_leg_rejected", {"reject_rates": {"precision": 0.7}}, ("reject_precision",)),
        1,
        "naked: with 70 % of orders rejected for precision, the unwind of leg A needs many paced "
        "retries (0.25 s doubling to 2 s); the perp leg is naked ~386k notional*s (limit 250k)",
    ),
}


# Engine problems these scenarios found, now fixed: they must keep passing.
FIXED: dict[str, tuple[Callable[[], Scenario], int, str]] = {
    "startup_dies_on_one_502": (
        lambda: load_scenario(LIBRARY / "rest_5xx_storm.toml"),
        8,
        "start-up calls to a venue are retried with backoff (one 502 used to kill the engine)",
    ),
    "funding_lost_while_user_stream_down": (
        lambda: _variant(
            "ws_drop_mid_hedge",
            {"ws_drops": [{"at_s": 3300, "down_s": 600, "stream": "user"}]},
            ("user_drop",),
            horizon_ms=80 * 60_000,
            market={"kind": "flat", "prices": {"BTCUSDT": 30000}, "funding_rate": 0.0005},
        ),
        1,
        "funding settled while the user-data stream was down is read over REST after the resync "
        "(it was booked as 0 before)",
    ),
}


@pytest.mark.parametrize("case", list(FIXED))
def test_fixed_engine_failures_stay_fixed(case: str) -> None:
    build, seed, _ = FIXED[case]
    o = run_scenario(build(), seed)
    assert o.ok, _explain(o)


def _explain(o: Outcome) -> str:
    return "; ".join(f"{c.name}: {c.detail}" for c in o.failed())


@pytest.fixture(autouse=True)
def _quiet_engine(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL + 1)


def test_library_has_every_required_scenario() -> None:
    names = {p.stem for p in LIBRARY.glob("*.toml")}
    assert set(REQUIRED) <= names
    for path in LIBRARY.glob("*.toml"):
        scenario = load_scenario(path)
        assert scenario.name == path.stem
        assert scenario.description
        assert scenario.limits.exercised, f"{path.stem} names no fault counter to exercise"
    assert set(REQUIRED) == set(PASSING)


@pytest.mark.parametrize(("name", "seed"), [(n, s) for n, seeds in PASSING.items() for s in seeds])
def test_scenario_holds_its_invariants(name: str, seed: int) -> None:
    o = _run(name, seed)
    assert o.ok, _explain(o)
    exercised = load_scenario(LIBRARY / f"{name}.toml").limits.exercised
    assert all(o.injected.get(k, 0) > 0 for k in exercised), o.injected
    assert o.time_to_flat_s is not None
    assert all(p.state == "closed" for p in o.positions)


@pytest.mark.parametrize(
    "case",
    [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=v[2])) for k, v in KNOWN_FAILING.items()],
)
def test_known_engine_failures(case: str) -> None:
    build, seed, _ = KNOWN_FAILING[case]
    o = run_scenario(build(), seed)
    assert o.ok, _explain(o)


def test_same_seed_same_hash_other_seed_other_outcome() -> None:
    a, b = _run("lost_ack", 2), _run("lost_ack", 2)
    assert a.hash == b.hash
    assert a.to_dict() == b.to_dict()
    c = _run("lost_ack", 1)
    assert c.hash != a.hash


def test_runner_reports_a_violated_limit() -> None:
    scenario = load_scenario(LIBRARY / "lost_ack.toml")
    tight = attrs.evolve(scenario, limits=attrs.evolve(scenario.limits, max_naked_notional=1.0))
    o = run_scenario(tight, 1)
    assert not o.ok
    assert [c.name for c in o.failed()] == ["naked"]


def test_runner_reports_an_unexercised_fault() -> None:
    scenario = load_scenario(LIBRARY / "lost_ack.toml")
    wrong = attrs.evolve(scenario, limits=attrs.evolve(scenario.limits, exercised=("maintenance",)))
    o = run_scenario(wrong, 1)
    assert [c.name for c in o.failed()] == ["exercised"]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_json_last_line_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(str(LIBRARY / "venue_maintenance.toml"), "--seed", "2", "--json")) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["ok"] is True and summary["seed"] == 2 and summary["scenario"] == "venue_maintenance"
    assert summary["injected"]["maintenance"] > 0
    assert any(line.startswith("  outcome hash ") for line in out)


def test_cli_violation_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (LIBRARY / "lost_ack.toml").read_text()
    bad = tmp_path / "tight.toml"
    bad.write_text(
        text.replace('exercised = ["lost_ack"]', 'exercised = ["lost_ack"]\nmax_naked_notional = 1')
    )
    assert main(_args(str(bad), "--seed", "1")) == 1
    assert "VIOLATED naked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nhorizon_minutes = 10\n[market]\nkind = "moon"\n', "kind"),
        (
            'name = "x"\nhorizon_minutes = 10\ncolour = 1\n[market]\nkind = "flat"\n',
            "unknown keys ['colour']",
        ),
        ('name = "x"\n[market]\nkind = "flat"\n', "missing required key 'horizon_minutes'"),
        ('name = "x"\nhorizon_minutes = -1\n[market]\nkind = "flat"\n', "horizon_minutes"),
        (
            'name = "x"\nhorizon_minutes = 10\n[market]\nkind = "flat"\n[faults]\nlost_ack_rate = 2\n',
            "lost_ack_rate",
        ),
        (
            'name = "x"\nhorizon_minutes = 10\n[market]\nkind = "flat"\n[engine]\nentry_aprr = "0.1"\n',
            "ENTRY_APRR",
        ),
        (
            'name = "x"\nhorizon_minutes = 10\n[market]\nkind = "flat"\n[limits]\nexercised = "lost_ack"\n',
            "exercised",
        ),
        ('name = "x"\nhorizon_minutes = 10\n[market]\nkind = "flat"\nprices = { BTCUSDT = -1 }\n', "prices"),
        ("name = [", "not valid TOML"),
    ],
)
def test_bad_scenario_files_raise_a_typed_error_naming_the_key(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"bad\.toml") as info:
        load_scenario(path)
    assert message in str(info.value)
    assert main(_args(str(path))) == 2
    assert "bad.toml" in capsys.readouterr().err


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_market_kinds_build_drivers() -> None:
    base = {"name": "x", "horizon_minutes": 5}
    for market in (
        {"kind": "flat", "prices": {"BTCUSDT": [30000, 30010]}, "funding_rate": 0.0003},
        {"kind": "scripted", "points": [{"minutes": 0, "spot": 100}, {"minutes": 5, "spot": 90, "perp": 89}]},
        {"kind": "synthetic", "regimes": [{"minutes": 5, "move": -0.1}]},
        {"kind": "stress", "calm_minutes": 10},
        {"kind": "replay", "symbols": ["BTCUSDT"]},
    ):
        scenario = Scenario.from_dict({**base, "market": market}, source="t")
        tick = scenario.driver(3).tick_at(scenario.start_ms + 60_000)
        assert tick.spot["BTCUSDT"] > 0 and tick.perp["BTCUSDT"] > 0
