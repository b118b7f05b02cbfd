"""The short crash test (CI): the engine as a subprocess, kill -9'd mid-hedge, mid-unwind and at
random against the Binance loopback server; the long one is ``python sim/crash_test.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "sim" / "crash_test.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fundarb_crash_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def crash() -> ModuleType:
    return _load()


def test_kill_nine_mid_hedge_mid_unwind_and_at_random(tmp_path, crash):
    report = crash.run_crash_test(tmp_path, kills=6, seed=7, max_life=1.5, settle=15.0)
    summary = report.as_dict()
    assert report.ok, summary["problems"]
    assert report.starts == 7 and summary["reconciliation_reports"] >= 7
    modes = [k["mode"] for k in report.kills]
    assert len(modes) == 6
    # the targeted kills really hit their moment (a miss is labelled "mid-...->random")
    assert "mid-hedge" in modes and "mid-unwind" in modes, modes
    assert summary["durable_rows_checked"] > 0 and summary["orders_sent"] > 0


def test_a_lost_durable_row_is_reported(tmp_path, crash):
    """The durability check can fail: a row seen committed that later differs is a problem."""
    import sqlite3

    journal = crash.Journal(tmp_path / "journal.sqlite3")
    conn = sqlite3.connect(tmp_path / "journal.sqlite3")
    conn.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, kind TEXT, crc INTEGER)")
    conn.execute("INSERT INTO journal VALUES (1, 'engine.started', 7), (2, 'engine.started', 8)")
    conn.commit()
    seen = journal.rows()
    conn.execute("UPDATE journal SET crc = 9 WHERE seq = 2")
    conn.commit()
    conn.close()
    after = journal.rows()
    assert [s for s, row in seen.items() if after.get(s) != row] == [2]
