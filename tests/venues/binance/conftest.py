"""Shared helpers for the Binance adapter tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

PAYLOADS = Path(__file__).parent / "payloads"


def payload_bytes(name: str) -> bytes:
    """The raw bytes of a recorded payload."""
    return (PAYLOADS / name).read_bytes()


def payload(name: str) -> Any:
    """A recorded payload, parsed."""
    return orjson.loads(payload_bytes(name))
