"""The CLI dispatcher: every subcommand's --help, and `fundarb config` exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fundarb.__main__ import COMMANDS, main
from fundarb.config import variables_markdown


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No FUNDARB_* settings from the outer environment (the test suite's own are kept)."""
    for name in list(os.environ):
        if name.startswith("FUNDARB_") and not name.startswith("FUNDARB_TEST_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _clean_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDARB_")}
    return {**env, **extra}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: fundarb {command}" in capsys.readouterr().out


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_config_prints_the_effective_configuration(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("FUNDARB_LEVERAGE", "2")
    clean_env.setenv("FUNDARB_ADMIN_TOKEN", "admin-token-0123456789")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "FUNDARB_MODE=paper\n" in out
    assert "FUNDARB_LEVERAGE=2\n" in out
    assert "FUNDARB_ADMIN_TOKEN=***\n" in out
    assert "admin-token-0123456789" not in out


def test_config_json(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("FUNDARB_DATABASE_URL", "postgresql://bot:hunter2pw@db/fundarb")
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["mode"] == "paper"
    assert data["risk"]["leverage"] == "3"
    assert data["database_url"] == "postgresql://bot:***@db/fundarb"
    assert "hunter2pw" not in out


def test_config_markdown_is_the_readme_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out == variables_markdown()


def test_config_error_exits_2_listing_every_problem(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("FUNDARB_LEVERAGE", "99")
    clean_env.setenv("FUNDARB_MODE", "yolo")
    clean_env.setenv("FUNDARB_BINANCE_API_SECRTE", "leaked-if-echoed")
    assert main(["config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "FUNDARB_LEVERAGE='99': must be in (0, 20]" in captured.err
    assert "FUNDARB_MODE='yolo'" in captured.err
    assert "FUNDARB_BINANCE_API_SECRTE: unknown variable" in captured.err
    assert "leaked-if-echoed" not in captured.err


def test_live_mode_refusal_through_the_real_entry_point() -> None:
    env = _clean_environ(
        FUNDARB_MODE="live", FUNDARB_VENUES="binance", FUNDARB_BINANCE_API_KEY="key-value-123"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "fundarb", "config"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert "FUNDARB_LIVE_CONFIRM" in proc.stderr
    assert "FUNDARB_BINANCE_API_SECRET: required in live mode for venue binance" in proc.stderr
    assert "key-value-123" not in proc.stderr + proc.stdout


def test_entry_point_help_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fundarb", "--help"],
        env=_clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: fundarb" in proc.stdout
