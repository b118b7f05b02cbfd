"""Benchmark: Binance frames through ``fundarb.venues.binance.decode`` vs ccxt's parsers.

    python bench/bench_decode.py [--seconds 0.5] [--repeats 5]

Rows: USDⓈ-M ``markPriceUpdate`` and ``bookTicker`` frames, an ``ORDER_TRADE_UPDATE`` trade frame
(-> an order update and a fill), and the REST ``premiumIndex`` answer. Both sides start from the
raw bytes and parse JSON with orjson, so the comparison is of the translation, not of the JSON
parser. ccxt side (when ``ccxt`` is importable; it is never a dependency of fundarb):
``ccxt.pro.binanceusdm().parse_ws_ticker`` for markPrice/bookTicker (what its websocket handler
calls), ``parse_ws_order`` + ``parse_ws_trade`` for ORDER_TRADE_UPDATE (what its order and
my-trades handlers call), ``parse_funding_rate`` for premiumIndex. One core; each side's best of
``--repeats`` timed runs of ``--seconds`` each, the two sides alternating run by run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from fundarb.venues.binance import BinanceDecoder
from fundarb.venues.binance import _translate_rest as rt

PAYLOADS = Path(__file__).resolve().parents[1] / "tests" / "venues" / "binance" / "payloads"


def _load(name: str) -> bytes:
    return orjson.dumps(orjson.loads((PAYLOADS / name).read_bytes()))  # compact, as on the wire


def rate(fn: Callable[[], Any], seconds: float, repeats: int) -> float:
    """Best calls/s of ``fn`` over ``repeats`` runs of about ``seconds`` each."""
    n = 1
    while True:  # calibrate a batch size that takes ~10 ms
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t > 0.01:
            break
        n *= 2
    best = 0.0
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(n):
                fn()
            count += n
        best = max(best, count / elapsed)
    return best


def main(argv: list[str] | None = None) -> int:
    """Print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    mark = _load("usdm_ws_mark_price.json")
    book = _load("usdm_ws_book_ticker.json")
    otu = _load("usdm_ws_order_trade_update_partial.json")
    premium = _load("usdm_rest_premium_index.json")
    decoder = BinanceDecoder()
    ours: dict[str, Callable[[], Any]] = {
        "markPriceUpdate (ws)": lambda: decoder.decode(mark),
        "bookTicker (ws)": lambda: decoder.decode(book),
        "ORDER_TRADE_UPDATE (ws)": lambda: decoder.decode(otu),
        "premiumIndex (rest)": lambda: rt.funding_from_premium_index(orjson.loads(premium), 8),
    }
    theirs: dict[str, Callable[[], Any]] = {}
    ccxt_version = "not installed"
    try:
        import ccxt
        import ccxt.pro

        ccxt_version = ccxt.__version__
        ex = ccxt.pro.binanceusdm()
        rest_ex = ccxt.binanceusdm()

        def ccxt_order_trade() -> Any:
            o = orjson.loads(otu)["o"]
            return ex.parse_ws_order(o), ex.parse_ws_trade(o)

        theirs = {
            "markPriceUpdate (ws)": lambda: ex.parse_ws_ticker(orjson.loads(mark), "contract"),
            "bookTicker (ws)": lambda: ex.parse_ws_ticker(orjson.loads(book), "contract"),
            "ORDER_TRADE_UPDATE (ws)": ccxt_order_trade,
            "premiumIndex (rest)": lambda: rest_ex.parse_funding_rate(orjson.loads(premium)),
        }
    except ImportError:
        pass

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"python {platform.python_version()} on {platform.machine()}, ccxt {ccxt_version}, one core, "
        f"load average {load:.2f} over {os.cpu_count()} cpus"
    )
    header = f"{'payload':<26}{'fundarb ev/s':>14}{'µs/frame':>10}{'ccxt /s':>12}{'µs/frame':>10}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for name, fn in ours.items():
        # Alternate the two sides run by run, so a load change on a shared machine hits both.
        ours_rate = their_rate = 0.0
        for _ in range(args.repeats):
            ours_rate = max(ours_rate, rate(fn, args.seconds, 1))
            if name in theirs:
                their_rate = max(their_rate, rate(theirs[name], args.seconds, 1))
        line = f"{name:<26}{ours_rate:>14,.0f}{1e6 / ours_rate:>10.2f}"
        if their_rate:
            line += f"{their_rate:>12,.0f}{1e6 / their_rate:>10.2f}{ours_rate / their_rate:>7.1f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
