"""Binance adapter (Spot, Spot Margin, USDⓈ-M futures): the venue's public face.

* :func:`sign` — the HMAC-SHA256 request signature (hex).
* :func:`decode` — websocket frame -> normalized events; :func:`decode_statistics`.
* :class:`BinanceVenue` — the :class:`~fundarb.venues.protocol.Venue` implementation.
"""

from __future__ import annotations

from fundarb.venues.binance._auth import Credentials, Secret, sign
from fundarb.venues.binance._endpoints import LIVE_URLS, TESTNET_URLS, BaseUrls
from fundarb.venues.binance._ws import ReconnectPolicy
from fundarb.venues.binance.client import BinanceVenue
from fundarb.venues.binance.decode import BinanceDecoder, DecodeStatistics, decode, decode_statistics

__all__ = [
    "LIVE_URLS",
    "TESTNET_URLS",
    "BaseUrls",
    "BinanceDecoder",
    "BinanceVenue",
    "Credentials",
    "DecodeStatistics",
    "ReconnectPolicy",
    "Secret",
    "decode",
    "decode_statistics",
    "sign",
]
