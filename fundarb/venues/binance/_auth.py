"""Request signing (HMAC-SHA256, hex) and API credentials whose secret never prints.

REST (``/api/v3``, ``/sapi/v1``, ``/fapi/v1``): the signature covers the exact query string
that is sent (we put every parameter in the query, nothing in the body), and ``signature`` is
appended last. WebSocket API: the parameters except ``signature`` are sorted by name and joined
``k=v`` with ``&`` on the raw (not percent-encoded) values. See WIRE.md §1.2.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode

import attrs

__all__ = ["Credentials", "Secret", "sign", "signed_query", "ws_api_payload"]


@attrs.frozen(repr=False)
class Secret:
    """A secret string. ``repr``/``str`` print ``Secret('***')``; read it with :meth:`reveal`."""

    _value: str = attrs.field(alias="value")

    def reveal(self) -> str:
        """The secret itself: pass it to :func:`sign`, never to a log."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def _as_secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _key_repr(key: str) -> str:
    return repr(key[:4] + "…") if key else "''"


@attrs.frozen
class Credentials:
    """An API key and its secret. The key is not secret (it travels in a header) but only its
    first characters print; the secret never does."""

    api_key: str = attrs.field(repr=_key_repr)
    secret: Secret = attrs.field(converter=_as_secret)


def sign(secret: str, payload: str) -> str:
    """``hex(HMAC_SHA256(secret, payload))``, Binance's signature of ``payload``.

    >>> sign("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    ...      "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    ...      "&recvWindow=5000&timestamp=1499827319559")
    'c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71'
    """
    return hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_query(secret: Secret, params: Mapping[str, str]) -> str:
    """The percent-encoded query string of ``params`` (in order) with ``&signature=…`` last."""
    query = urlencode(list(params.items()))
    return (
        f"{query}&signature={sign(secret.reveal(), query)}"
        if query
        else f"signature={sign(secret.reveal(), '')}"
    )


def ws_api_payload(params: Mapping[str, str | int]) -> str:
    """The string a WebSocket API request signs: params sorted by name, ``k=v`` joined by ``&``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
