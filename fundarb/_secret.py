"""Secret values (API keys, passphrases, tokens) that never print.

``repr()`` and ``str()`` of a :class:`Secret` are ``Secret('***')`` whatever it holds, so a secret
that ends up in a log line, an exception message, an attrs ``repr`` or an f-string shows nothing.
The value comes out only through :meth:`Secret.reveal`, which makes every use greppable.

>>> key = Secret("abc123")
>>> key
Secret('***')
>>> f"{key}"
"Secret('***')"
>>> key.reveal()
'abc123'
"""

from __future__ import annotations

import hmac
from typing import NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "DatabaseUrl", "Secret", "redact_url"]

#: what a secret prints as
REDACTED = "***"


class Secret:
    """A string that is redacted in ``repr``/``str``; :meth:`reveal` returns the value.

    Equality is by value (in constant time); a Secret cannot be pickled or copied out by
    ``vars()`` (it has no ``__dict__``), so it only leaves the process through ``reveal()``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret holds a str, got {type(value).__name__}")
        if not value:
            raise ValueError("a Secret cannot be empty")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The secret value. Call it only where the value is sent (signing, a connection)."""
        value: str = object.__getattribute__(self, "_value")
        return value

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash((Secret, self.reveal()))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled: call reveal() where the value is really needed")


class DatabaseUrl(Secret):
    """A database URL: a :class:`Secret` whose ``repr`` shows the URL with the password redacted.

    >>> DatabaseUrl("postgresql://bot:hunter2@db:5432/fundarb")
    DatabaseUrl('postgresql://bot:***@db:5432/fundarb')
    """

    __slots__ = ()

    @property
    def redacted(self) -> str:
        """The URL with any password (in the authority or a ``password=`` parameter) replaced by ``***``."""
        return redact_url(self.reveal())

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.redacted!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a DatabaseUrl cannot be pickled: call reveal() where the value is really needed")


def redact_url(url: str) -> str:
    """``url`` with the password (in the authority or a ``password=`` query parameter) replaced by ``***``.

    A URL too malformed to parse is redacted whole.

    >>> redact_url("postgresql://bot:hunter2@db.internal:5432/fundarb")
    'postgresql://bot:***@db.internal:5432/fundarb'
    >>> redact_url("postgresql://db.internal/fundarb?user=bot&password=hunter2")
    'postgresql://db.internal/fundarb?user=bot&password=%2A%2A%2A'
    >>> redact_url("postgresql://db.internal/fundarb")
    'postgresql://db.internal/fundarb'
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user = parts.username or ""
            host = parts.hostname or ""
            if ":" in host:  # IPv6 literal
                host = f"[{host}]"
            port = f":{parts.port}" if parts.port is not None else ""
            netloc = f"{user}:{REDACTED}@{host}{port}"
        query = parts.query
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            query = urlencode([(k, REDACTED if k.lower() == "password" else v) for k, v in pairs])
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return REDACTED
