"""The scenario library against the real engine, the scenario format, the CLI and determinism.

Every scenario in ``sim/scenarios/`` runs here (each run is one ``trio.run`` on its own MockClock
and takes about a second). Runs that reveal an engine problem are ``xfail(strict=True)`` with the
exact failure, so a fix turns them into an XPASS that fails the suite until the mark is removed.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import attrs
import pytest

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
}

# Runs that reveal an engine problem (or a fault this engine cannot meet): strict xfail.
KNOWN_FAILING = {
    ("ws_drop_mid_hedge", 3): (
        "funding: the venue settled 9.976108 USDT of funding while the user-data stream was down; "
        "the engine never reads funding_income_since after a resync, so it booked 0"
    ),
    ("rest_5xx_storm", 8): (
        "started: one HTTP 502 on instruments() at start-up kills the engine "
        "(Engine.run -> candidates_for has no retry)"
    ),
    ("hedge_leg_rejected", 3): (
        "naked: hedge rejected, the unwind of leg A rejected 3 times -> 'gave up', 0.666 BTC short "
        "perp stays naked ~120 s until the kill switch (2.4M notional*s vs limit 250k)"
    ),
    ("hedge_leg_rejected", 4): (
        "flat: the kill switch's unwind orders were rejected 3 times -> FAILED with both legs "
        "still held (0.669/0.669): the book is not flat"
    ),
    ("transfer_delay", 1): (
        "naked/flat: the margin top-up transfer (30 s slow) exceeds the risk service's call "
        "deadline (TooSlowError), reduce/exit orders are rejected 3 times, the position ends "
        "FAILED with 2.998 BTC short perp naked (~103k notional)"
    ),
    ("cancel_fill_race", 1): (
        "exercised: the engine only sends IOC / market orders, so no order ever rests when a "
        "cancel arrives and the FaultyVenue's cancel_fill_race never fires"
    ),
}


def _run(name: str, seed: int) -> Outcome:
    return run_scenario(load_scenario(LIBRARY / f"{name}.toml"), seed)


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
    assert set(REQUIRED) == set(PASSING) | {name for name, _ in KNOWN_FAILING}


@pytest.mark.parametrize(("name", "seed"), [(n, s) for n, seeds in PASSING.items() for s in seeds])
def test_scenario_holds_its_invariants(name: str, seed: int) -> None:
    o = _run(name, seed)
    assert o.ok, _explain(o)
    exercised = load_scenario(LIBRARY / f"{name}.toml").limits.exercised
    assert all(o.injected.get(k, 0) > 0 for k in exercised), o.injected
    assert o.time_to_flat_s is not None
    assert all(p.state == "closed" for p in o.positions)


@pytest.mark.parametrize(
    ("name", "seed"),
    [
        pytest.param(n, s, marks=pytest.mark.xfail(strict=True, reason=why))
        for (n, s), why in KNOWN_FAILING.items()
    ],
)
def test_known_engine_failures(name: str, seed: int) -> None:
    o = _run(name, seed)
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
    with pytest.raises(ScenarioError, match="bad.toml") as info:
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
