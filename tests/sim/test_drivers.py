"""Market drivers: replay through the shared loader, bridge properties, synthetic stress regimes."""

from __future__ import annotations

import math
import pathlib
from decimal import Decimal as D

import numpy as np
import pytest

from fundarb.backtest.loader import LoaderError
from fundarb.sim.drivers import BrownianNoise, FlatDriver, ScriptedDriver, ScriptPoint
from fundarb.sim.replay import ReplayDriver
from fundarb.sim.synthetic import Regime, SyntheticDriver

DATA = pathlib.Path(__file__).parent / "data"
T0 = 1672531200000  # 2023-01-01T00:00Z
H = 3_600_000


def replay(**kw: object) -> ReplayDriver:
    return ReplayDriver.from_data(("BTCUSDT",), data_dir=DATA, venue="testx", **kw)  # type: ignore[arg-type]


def test_replay_pins_real_prices_at_bar_boundaries() -> None:
    d = replay(seed=5)
    assert d.start_ms == T0 and d.end_ms == T0 + 32 * H
    assert d.tick_at(T0).spot["BTCUSDT"] == D(16500)  # first open
    assert d.tick_at(T0 + 8 * H).spot["BTCUSDT"] == D(16550)  # close of bar 1
    assert d.tick_at(T0 + 24 * H).spot["BTCUSDT"] == D(16400)  # close-only row
    assert d.tick_at(T0 + 24 * H).perp["BTCUSDT"] == D(16390)
    assert d.tick_at(T0 + 99 * H).spot["BTCUSDT"] == D(16800)  # held past the end


def test_replay_bridge_moves_between_bars_and_is_seeded() -> None:
    a, b, c = replay(seed=1), replay(seed=1), replay(seed=2)
    times = [T0 + 8 * H + k * 60_000 for k in range(1, 480)]
    pa = [float(a.tick_at(t).spot["BTCUSDT"]) for t in times]
    pb = [float(b.tick_at(t).spot["BTCUSDT"]) for t in reversed(times)][::-1]  # access order is irrelevant
    pc = [float(c.tick_at(t).spot["BTCUSDT"]) for t in times]
    assert pa == pb and pa != pc
    rets = np.diff(np.log(pa))
    assert rets.std() > 0
    # volatility from the bar's high/low (Parkinson): per-minute sd ~ ln(16700/16500)/sqrt(4 ln2) / sqrt(480)
    expected = math.log(16700 / 16500) / math.sqrt(4 * math.log(2)) / math.sqrt(480)
    assert 0.5 * expected < rets.std() < 1.6 * expected
    # perp and spot share the noise: the basis stays within a few bp of the knots' basis
    basis = [float(a.tick_at(t).perp["BTCUSDT"] / a.tick_at(t).spot["BTCUSDT"] - 1) for t in times]
    assert max(abs(x) for x in basis) < 0.002


def test_replay_funding_is_the_rate_that_will_settle() -> None:
    d = replay()
    assert d.tick_at(T0 + 1).funding["BTCUSDT"] == D("0.0001")
    assert d.tick_at(T0 + 8 * H).funding["BTCUSDT"] == D("0.0001")  # exact at settlement
    assert d.tick_at(T0 + 8 * H + 1).funding["BTCUSDT"] == D("-0.0002")
    noisy = replay(funding_noise=0.0001, seed=3)
    assert noisy.tick_at(T0 + 8 * H).funding["BTCUSDT"] == D("0.0001")  # noise vanishes at settlement
    early = [noisy.tick_at(T0 + 8 * H + k * 60_000).funding["BTCUSDT"] for k in range(1, 30)]
    assert len(set(early)) > 1 and all(x != D("-0.0002") for x in early)


def test_replay_start_and_errors(tmp_path: pathlib.Path) -> None:
    assert replay(start_ms=T0 + 8 * H).start_ms == T0 + 8 * H
    with pytest.raises(ValueError, match="no data"):
        replay(start_ms=T0 + 100 * H)
    with pytest.raises(LoaderError):
        ReplayDriver.from_data(("BTCUSDT",), data_dir=tmp_path, venue="testx")


def test_replay_on_vendored_data_runs() -> None:
    d = ReplayDriver.from_data(("BTCUSDT",), start_ms=T0)
    t = d.tick_at(T0 + 3 * H + 17 * 60_000)
    assert D(10000) < t.spot["BTCUSDT"] < D(30000) and abs(t.funding["BTCUSDT"]) < D("0.01")


def test_synthetic_stress_crash_basis_and_funding_flip() -> None:
    d = SyntheticDriver.stress(seed=4, calm_minutes=60)
    m = 60_000
    before, after = d.tick_at(60 * m), d.tick_at(70 * m)
    assert after.spot["BTCUSDT"] == (before.spot["BTCUSDT"] * D("0.7")).quantize(D(1))
    assert before.funding["BTCUSDT"] < 0 < d.tick_at(59 * m).funding["BTCUSDT"]
    assert after.perp["BTCUSDT"] < after.spot["BTCUSDT"] * D("0.99")  # basis blow-out, perp below spot
    mid = d.tick_at(65 * m)
    assert mid.spot["BTCUSDT"] != before.spot["BTCUSDT"] and mid.perp["BTCUSDT"] < mid.spot["BTCUSDT"]
    assert SyntheticDriver.stress(seed=4).tick_at(90 * m) == SyntheticDriver.stress(seed=4).tick_at(90 * m)
    assert SyntheticDriver.stress(seed=4).tick_at(30 * m) != SyntheticDriver.stress(seed=5).tick_at(30 * m)


def test_synthetic_from_dict_and_volatility_regimes() -> None:
    d = SyntheticDriver.from_dict(
        {
            "seed": 1,
            "prices": {"BTCUSDT": "30000"},
            "regimes": [{"minutes": 600, "vol": 0.1}, {"minutes": 600, "vol": 2.0, "basis_bps": 5}],
        }
    )
    m = 60_000
    calm = np.diff(np.log([float(d.tick_at(k * m).spot["BTCUSDT"]) for k in range(600)])).std()
    wild = np.diff(np.log([float(d.tick_at(k * m).spot["BTCUSDT"]) for k in range(600, 1200)])).std()
    assert wild > 8 * calm
    with pytest.raises(ValueError, match="unknown"):
        SyntheticDriver.from_dict({"prices": {"BTCUSDT": 1}, "regimes": [{"minutes": 1, "drift": 1}]})
    with pytest.raises(ValueError):
        Regime(0)


def test_flat_and_scripted_drivers() -> None:
    f = FlatDriver({"BTCUSDT": (D(100), D(101))}, {"BTCUSDT": D("0.0001")})
    assert f.tick_at(5).perp == {"BTCUSDT": D(101)}
    s = ScriptedDriver(
        [ScriptPoint(0, "BTCUSDT", D(100), D(100)), ScriptPoint(1000, "BTCUSDT", D(200), D(210))]
    )
    t = s.tick_at(500)
    assert t.spot["BTCUSDT"] == D(150) and t.perp["BTCUSDT"] == D(155)
    assert s.tick_at(5000).spot["BTCUSDT"] == D(200)


def test_brownian_noise_variance_and_bridge_pins() -> None:
    n = BrownianNoise(9, "x", 60_000)
    assert n.bridge(0, 10 * H, 0) == 0 and n.bridge(0, 10 * H, 10 * H) == pytest.approx(0, abs=1e-6)
    incs = [n.delta(k * H, (k + 1) * H) for k in range(2000)]
    assert np.std(incs) == pytest.approx(math.sqrt(H), rel=0.1)
    assert n.delta(0, 3 * 86_400_000 + 5 * H) == pytest.approx(
        n.delta(0, 86_400_000) + n.delta(86_400_000, 3 * 86_400_000 + 5 * H)
    )
    with pytest.raises(ValueError):
        BrownianNoise(1, "x", 7_000_000)
