"""Crash test: kill -9 the engine at random moments against a venue that keeps its state.

::

    python sim/crash_test.py [--kills 25] [--seed 1] [--workdir DIR] [--json]

1. Starts the Binance-compatible loopback server (``python -m fundarb sim serve --venue binance
   --port 0 --scenario FAULTS``: it prints its URLs on its first stdout line) with seeded faults
   that make positions churn: place-order latency and 15 % ``insufficient_margin`` rejections
   (a rejected entry closes, a rejected hedge unwinds) and a short hedge timeout.
2. Runs the engine as a subprocess (``python sim/crash_test.py engine HTTP WS``: the same
   :func:`fundarb.engine.app.run_engine` as ``fundarb run``, configured by ``FUNDARB_*``
   environment variables, with the Binance adapter pointed at the loopback server, which
   ``fundarb run`` cannot do yet: there is no configuration variable for Binance base URLs) on
   an SQLite journal, and ``kill -9``'s it ``--kills`` times: in turn mid-hedge (a position in
   ``open-leg-A``/``hedge-pending`` in the journal), mid-unwind (``unwinding``) and at a random
   moment; a targeted kill that finds no such moment within a few seconds becomes a random one.
   Before each kill it records every row committed to the journal.
3. After the last kill it starts the engine once more, lets it reconcile and settle, stops it
   with SIGTERM, and checks:

   * **no durable event lost**: every row seen committed before a kill is still there, with the
     same kind and checksum; seqs are gap-free; the journal replays (``fold_journal``) cleanly;
   * **every position reconciled**: every start journaled a reconciliation report, and a final
     reconciliation of the journal against the server's state (``core.reconcile``) finds no
     drift, no orphan order and no unowned exposure; FAILED positions are counted (each must
     carry a critical alert);
   * **no naked leg**: per symbol, the server's perp position and spot balance offset each other
     (within one lot), and every journaled position that is not FAILED holds equal legs;
   * **no duplicate order**: client order ids are unique across every PlaceOrder of every
     engine life, no order was refused as a duplicate, and every fill at the server belongs to a
     journaled order.

Exit status 0 when every check passed; the summary (``--json`` for machine-readable) gives the
measured figures. ``tests/engine/test_crash.py`` runs a short version in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fundarb.sim.crash_checks import CrashReport, Journal, check_after_crashes

__all__ = ["CrashReport", "engine_main", "main", "run_crash_test"]

ROOT = Path(__file__).resolve().parents[1]
FAULTS = """\
name = "crash_test"
description = "flat market, seeded rejections and latency: positions open, hedge, unwind and churn"
horizon_minutes = 1440
speed = 1.0
step_seconds = 1

[market]
kind = "flat"
prices = { BTCUSDT = 30000, ETHUSDT = 2000 }
funding_rate = 0.0001

[faults]
latency_ms_by_call = { place_order = { p50 = 20, p99 = 250 } }
reject_rates = { insufficient_margin = 0.15 }
"""
KEY, SECRET = "sim-key", "sim-secret"
TRANSIENT = ("open-leg-A", "hedge-pending", "unwinding", "closing", "rebalancing", "reconciling")
TARGETS = {"mid-hedge": ("open-leg-A", "hedge-pending"), "mid-unwind": ("unwinding", "closing")}


def engine_env(workdir: Path) -> dict[str, str]:
    """The engine's environment: testnet mode on the loopback Binance, small positions, churn."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDARB_")}
    env.update(
        FUNDARB_MODE="testnet",
        FUNDARB_VENUES="binance",
        FUNDARB_BINANCE_API_KEY=KEY,
        FUNDARB_BINANCE_API_SECRET=SECRET,
        FUNDARB_DATA_DIR=str(workdir),
        FUNDARB_HTTP_BIND="127.0.0.1:0",
        FUNDARB_ENTRY_APR="0.01",
        FUNDARB_EXIT_APR="0",
        FUNDARB_MAX_POSITION_NOTIONAL="500",
        FUNDARB_MAX_OPEN_POSITIONS="1000",
        FUNDARB_HEDGE_TIMEOUT="0.2",
        FUNDARB_STATUS_INTERVAL="3600",
        FUNDARB_FLATTEN_ON_EXIT="1",
        FUNDARB_LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    return env


# --- the engine subprocess -------------------------------------------------------------------------


def engine_main(http: str, ws: str) -> int:
    """Run the engine (as ``fundarb run`` does) on the Binance adapter at the loopback server."""
    import logging

    import trio

    from fundarb.config import load_config
    from fundarb.engine.app import run_engine
    from fundarb.venues.binance import BinanceVenue, Credentials
    from fundarb.venues.binance._endpoints import BaseUrls

    config = load_config(os.environ)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    urls = BaseUrls(spot=http, futures=http, spot_stream=ws, spot_ws_api=f"{ws}/ws-api/v3", futures_stream=ws)

    async def run() -> None:
        venue = BinanceVenue(
            Credentials(KEY, SECRET), base_urls=urls, call_timeout=config.execution.order_timeout
        )
        try:
            await run_engine(config, {"binance": venue})
        finally:
            with trio.move_on_after(5, shield=True):
                await venue.aclose()

    try:
        trio.run(run)
    except KeyboardInterrupt:
        pass
    return 0


# --- the driver ------------------------------------------------------------------------------------


def _start_server(workdir: Path, seed: int) -> tuple[subprocess.Popen[str], str, str]:
    faults = workdir / "faults.toml"
    faults.write_text(FAULTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDARB_")}
    env.update(FUNDARB_BINANCE_API_KEY=KEY, FUNDARB_BINANCE_API_SECRET=SECRET, PYTHONPATH=str(ROOT))
    with (workdir / "server.log").open("w") as log:
        proc = _popen_server(faults, seed, log, env)
    return _banner(proc, workdir)


def _popen_server(faults: Path, seed: int, log: Any, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fundarb", "sim", "serve", "--venue", "binance", "--port", "0",
         "--seed", str(seed), "--speed", "1", "--step-ms", "1000", "--scenario", str(faults)],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, env=env,
    )  # fmt: skip


def _banner(proc: subprocess.Popen[str], workdir: Path) -> tuple[subprocess.Popen[str], str, str]:
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 3 or line[0] != "listening":
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise RuntimeError(f"loopback server did not start: {line!r} (see {workdir / 'server.log'})")

    def drain(out: Any = proc.stdout) -> None:  # a full pipe would stall the server
        with out:
            for _ in out:
                pass

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    proc.drainer = drainer  # type: ignore[attr-defined]
    return proc, line[1], line[2]


def _start_engine(
    workdir: Path, http: str, ws: str, n: int, *, flatten: bool = True
) -> subprocess.Popen[bytes]:
    env = engine_env(workdir)
    env["FUNDARB_FLATTEN_ON_EXIT"] = "1" if flatten else "0"
    with (workdir / f"engine-{n:03d}.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "engine", http, ws],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env,
        )  # fmt: skip


def _wait_reconciled(journal: Journal, starts: int, proc: subprocess.Popen[bytes], limit: float) -> bool:
    """Wait until this engine life journaled its reconciliation report."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if sum(1 for k, _ in journal.rows().values() if k == "engine.reconcile_reported") >= starts:
            return True
        time.sleep(0.02)
    return False


def _kill_at(
    journal: Journal, proc: subprocess.Popen[bytes], mode: str, rng: random.Random, max_life: float
) -> dict[str, Any]:
    """Kill -9 ``proc`` at a moment chosen by ``mode``; return what was seen when it died."""
    hit = False
    if mode == "mid-unwind":  # a graceful stop flattens (FLATTEN_ON_EXIT): die in the middle of it
        time.sleep(rng.uniform(0.05, max_life))
        # only once there is something to flatten: a stop with every position flat (an engine slow
        # to start on a loaded machine) ends at once, with no unwind to die in
        deadline = time.monotonic() + max(3 * max_life, 4.0)
        while time.monotonic() < deadline and proc.poll() is None:
            states = journal.states()
            if states["hedged"] or any(states[s] for s in TRANSIENT):
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGTERM)
    if mode in TARGETS:
        wanted = TARGETS[mode]
        deadline = time.monotonic() + max(3 * max_life, 4.0)
        while time.monotonic() < deadline and proc.poll() is None:
            states = journal.states()
            if any(states[s] for s in wanted):
                hit = True
                break
            time.sleep(0.002)
    if not hit and mode != "mid-unwind":
        time.sleep(rng.uniform(0.05, max_life))
    durable = journal.rows()  # committed before the kill: must survive it
    states = journal.states()
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {
        "mode": mode
        if hit or mode == "random"
        else f"{mode}->{'stopped' if proc.returncode == 0 else 'random'}",
        "rows_durable": len(durable),
        "states_at_kill": {s: n for s, n in states.items() if s in TRANSIENT and n},
        "_durable": durable,
    }


def _acknowledge_if_needed(workdir: Path) -> int:
    """The engine is dead: acknowledge pending reconciliation reports (journaled), return how many."""
    import trio

    import fundarb.engine.app  # noqa: F401  (registers every journal tag the engine writes)
    from fundarb.engine.reconcile import acknowledge
    from fundarb.engine.reconcile_records import unacknowledged
    from fundarb.journal import open_journal

    async def ack() -> int:
        async with open_journal(None, workdir) as j:
            pending = unacknowledged(await j.read())
            if pending:
                await acknowledge(j, "crash test: reviewed", time.time_ns() // 1_000_000)
            return len(pending)

    return trio.run(ack)


def run_crash_test(
    workdir: Path, kills: int, seed: int = 1, max_life: float = 2.0, settle: float = 20.0
) -> CrashReport:
    """Run the whole test in ``workdir`` (see the module docstring); never raises on a failed check."""
    rng = random.Random(seed)
    report = CrashReport()
    journal = Journal(workdir / "journal.sqlite3")
    started = time.monotonic()
    server, http, ws = _start_server(workdir, seed)
    durable_seen: dict[int, tuple[str, int]] = {}
    modes = ["mid-hedge", "mid-unwind", "random"]
    try:
        for i in range(kills):
            proc = _start_engine(workdir, http, ws, i)
            report.starts += 1
            if not _wait_reconciled(journal, report.starts, proc, 60.0):
                report.problems.append(
                    f"start {i}: engine died or did not reconcile (see engine-{i:03d}.log)"
                )
                proc.kill()
                proc.wait()
                break
            kill = _kill_at(journal, proc, modes[i % len(modes)], rng, max_life)
            for seq, row in kill.pop("_durable").items():
                durable_seen.setdefault(seq, row)
            kill["acknowledged"] = _acknowledge_if_needed(workdir)  # as an operator would
            report.kills.append(kill)
        # the last life: reconcile, settle, stop gracefully
        proc = _start_engine(workdir, http, ws, kills, flatten=False)  # keeps what it holds
        report.starts += 1
        if not _wait_reconciled(journal, report.starts, proc, 60.0):
            report.problems.append("final start: engine died or did not reconcile")
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and any(journal.states()[s] for s in TRANSIENT):
            time.sleep(0.05)
        if any(journal.states()[s] for s in TRANSIENT):
            report.problems.append(
                f"positions still moving {settle} s after the final start: {journal.states()}"
            )
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            report.problems.append("final engine did not stop within 40 s of SIGTERM")
            proc.kill()
            proc.wait()
        check_after_crashes(report, workdir, journal, durable_seen, http, key=KEY, secret=SECRET)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        drainer = getattr(server, "drainer", None)
        if drainer is not None:
            drainer.join(timeout=5)
    report.figures["seconds"] = round(time.monotonic() - started, 1)
    return report


# --- the checks ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["engine"]:
        return engine_main(args_list[1], args_list[2])
    parser = argparse.ArgumentParser(description="kill -9 the engine at random moments; check what survives")
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-life", type=float, default=2.0, help="longest random engine life, seconds")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary directory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(args_list)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fundarb-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = run_crash_test(workdir, args.kills, args.seed, args.max_life)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        d = report.as_dict()
        print(f"crash test in {workdir}: {'PASS' if report.ok else 'FAIL'} in {d.get('seconds')} s")
        for k, v in d.items():
            if k not in ("ok", "problems", "kills"):
                print(f"  {k}: {v}")
        for kill in report.kills:
            print(f"  kill: {kill}")
        for p in report.problems:
            print(f"  PROBLEM: {p}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
