"""The statecharts in statecharts/ are what the code renders (a test fails on any drift)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fundarb.cli.statecharts import render_all
from fundarb.core.position import TRANSITIONS, PositionState
from fundarb.core.render import edges, to_dot, to_markdown, to_mermaid

ROOT = Path(__file__).resolve().parents[2]


def test_committed_statecharts_match_the_code():
    for name, text in render_all().items():
        assert (ROOT / "statecharts" / name).read_text() == text, f"{name} drifted: run `python -m fundarb statecharts`"


def test_check_command_passes_then_fails_on_drift(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "fundarb", "statecharts", "--check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    for name, text in render_all().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "position.mmd").write_text(to_mermaid().replace("HEDGED", "HEDGD", 1))
    bad = subprocess.run(
        [sys.executable, "-m", "fundarb", "statecharts", "--check", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "position.mmd" in bad.stderr


def test_renderings_cover_every_state_and_rule():
    mermaid, dot, table = to_mermaid(), to_dot(), to_markdown()
    for state in PositionState:
        assert state.name in mermaid and state.name in dot
    assert table.count("\n| ") == len(TRANSITIONS) + 1  # header + one row per rule
    assert (PositionState.HEDGE_PENDING, PositionState.HEDGED) in edges()
    assert all(src is not dst for src, dst in edges())
