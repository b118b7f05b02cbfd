"""Binance adapter (Spot, Spot Margin, USDⓈ-M futures): the venue's public face.

* :func:`sign` — the HMAC-SHA256 request signature (hex).
* :func:`decode` — websocket frame -> normalized events; :func:`decode_statistics`.
* :class:`BinanceVenue` — the :class:`~fundarb.venues.protocol.Venue` implementation.
"""

from __future__ import annotations

from fundarb.venues.binance._auth import Credentials, Secret, sign
from fundarb.venues.binance.decode import BinanceDecoder, DecodeStatistics, decode, decode_statistics

__all__ = [
    "BinanceDecoder",
    "Credentials",
    "DecodeStatistics",
    "Secret",
    "decode",
    "decode_statistics",
    "sign",
]
