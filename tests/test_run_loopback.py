"""`fundarb run` as an operator starts it, trading a `fundarb sim serve --venue binance` process
through the real Binance adapter (testnet mode, FUNDARB_BINANCE_LOOPBACK). Two subprocesses on
127.0.0.1; bounded in time; nothing reaches the internet."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_run_trades_the_binance_loopback_server(tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "fundarb", "sim", "serve", "--venue", "binance", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = server.stdout.readline().strip()  # "listening http://127.0.0.1:P ws://127.0.0.1:Q"
        assert banner.startswith("listening http://127.0.0.1:"), banner
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("FUNDARB_") or k.startswith("FUNDARB_TEST_")
        }
        env.update(
            {
                "FUNDARB_MODE": "testnet",
                "FUNDARB_VENUES": "binance",
                "FUNDARB_BINANCE_API_KEY": "sim-key",
                "FUNDARB_BINANCE_API_SECRET": "sim-secret",
                "FUNDARB_BINANCE_LOOPBACK": banner.removeprefix("listening "),
                "FUNDARB_SYMBOLS": "BTCUSDT",
                "FUNDARB_ENTRY_APR": "0.01",
                "FUNDARB_EXIT_APR": "0",
                "FUNDARB_HTTP_BIND": "127.0.0.1:0",
                "FUNDARB_STATUS_INTERVAL": "2",
                "FUNDARB_DATA_DIR": str(tmp_path),
            }
        )
        run = subprocess.run(
            [sys.executable, "-m", "fundarb", "run", "--for", "8"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "positions: hedged=1" in run.stdout, run.stdout + run.stderr[-2000:]
    assert "binance:perp:BTCUSDT" in run.stderr  # the entry went through the Binance adapter
