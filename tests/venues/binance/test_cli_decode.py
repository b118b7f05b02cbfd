"""`python -m fundarb decode --venue binance`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fundarb.__main__ import main

from .conftest import PAYLOADS, payload_bytes


def _run(capsysbinary: pytest.CaptureFixture[bytes], argv: list[str]) -> tuple[int, list[dict], str]:
    rc = main(argv)
    captured = capsysbinary.readouterr()
    return rc, [orjson.loads(line) for line in captured.out.splitlines()], captured.err.decode()


def test_json_lines_with_a_bad_line(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    lines = [
        orjson.dumps(orjson.loads(payload_bytes("usdm_ws_order_trade_update_partial.json"))),
        b'{"e":"markPriceUpdate"',
        orjson.dumps(orjson.loads(payload_bytes("usdm_ws_mark_price.json"))),
        b'{"e":"aggTrade"}',
    ]
    f = tmp_path / "frames.jsonl"
    f.write_bytes(b"\n".join(lines) + b"\n")
    rc, docs, err = _run(capsysbinary, ["decode", "--venue", "binance", str(f)])
    assert rc == 0
    assert [d.get("type", "error") for d in docs] == [
        "OrderReported",
        "FillReported",
        "error",
        "FundingReceived",
    ]
    assert docs[0]["update"]["filled_qty"] == "0.004"
    assert docs[1]["fill"]["price"] == "37000.10"
    assert docs[2]["line"] == 2
    summary = orjson.loads(err.split("fundarb decode: ", 1)[1])
    assert summary == {"frames": 4, "events": 3, "errors": 1, "ignored": 0, "unknown": 1,
                       "unknown_types": ["aggTrade"]}  # fmt: skip
    assert docs[3]["funding"] == {
        "instrument": "binance:perp:BTCUSDT",
        "rate": "0.00038167",
        "next_funding_ms": 1562306400000,
        "interval_hours": 8,
        "mark": "11794.15000000",
        "index": "11784.62659091",
        "ts_ms": 1562305380000,
    }


def test_single_pretty_printed_document(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    rc, docs, _err = _run(
        capsysbinary, ["decode", "--venue", "binance", str(PAYLOADS / "spot_uds_execution_report.json")]
    )
    assert rc == 0
    assert len(docs) == 1 and docs[0]["type"] == "OrderReported"
    assert docs[0]["update"]["instrument"] == "binance:spot:ETHBTC"


def test_unreadable_input_exits_2(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["decode", "--venue", "binance", str(tmp_path / "missing")]) == 2


def test_stdin_through_the_module_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fundarb", "decode", "--venue", "binance", "-"],
        input=payload_bytes("spot_ws_book_ticker.json"),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [doc] = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert doc["quote"]["bid"] == "25.35190000"
