"""`fundarb decode --venue binance [FILE|-]`: what did the venue send us?

Reads one JSON document per line (or the whole input as one document when it does not split
into lines of JSON), decodes each with the venue's decoder and prints one JSON line per
normalized event: ``{"type": "<EventClass>", ...fields}`` with Decimals and enums as strings.
Bad input prints ``{"error": "...", "line": n}`` and decoding goes on; a summary of the counts
(frames, events, errors, ignored and unknown event types) goes to stderr at the end. Exit status
0, or 2 when the input cannot be read.
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
import orjson

from fundarb.venues.errors import DecodeError

HELP = "decode venue websocket frames (one JSON document per line) into normalized events"
VENUES = ("binance",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--venue`` and an optional input path (``-`` or nothing for stdin)."""
    parser.add_argument("--venue", choices=VENUES, default="binance", help="which venue's format (binance)")
    parser.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")


def _decoder(venue: str) -> tuple[Callable[[bytes], list[Any]], Callable[[], Any]]:
    if venue == "binance":
        from fundarb.venues.binance import BinanceDecoder

        decoder = BinanceDecoder()
        return decoder.decode, decoder.statistics
    raise ValueError(f"unknown venue {venue!r}")


def event_to_json(event: Any) -> dict[str, Any]:
    """A venue event as a JSON-ready dict: ``type`` first, Decimals and enums as strings."""
    return {"type": type(event).__name__, **_plain(attrs.asdict(event, recurse=False))}


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        if type(value).__name__ == "InstrumentId":
            return str(value)
        return _plain(attrs.asdict(value, recurse=False))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _documents(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The whole input when it is one JSON document (even pretty-printed), else its lines."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        yield from ((n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip())
    else:
        yield 1, data


def main(args: argparse.Namespace) -> int:
    """Decode the input; 0 on success (even with bad lines), 2 when the input cannot be read."""
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as fh:
                data = fh.read()
    except OSError as exc:
        print(f"fundarb decode: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    decode, statistics = _decoder(args.venue)
    out = sys.stdout.buffer
    for line_no, doc in _documents(data):
        try:
            events = decode(doc)
        except DecodeError as exc:
            out.write(orjson.dumps({"error": str(exc), "line": line_no}) + b"\n")
            continue
        for event in events:
            out.write(orjson.dumps(event_to_json(event)) + b"\n")
    out.flush()
    stats = statistics()
    summary = {"frames": stats.frames, "events": stats.events, "errors": stats.errors, "ignored": stats.control,
               "unknown": stats.unknown, "unknown_types": list(stats.unknown_types)}  # fmt: skip
    print(f"fundarb decode: {orjson.dumps(summary).decode()}", file=sys.stderr)
    return 0
