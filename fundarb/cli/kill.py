"""`fundarb kill`: the operator's kill switch, from the command line.

POSTs ``{"reason": ...}`` to the running engine's ``/admin/kill`` with
``Authorization: Bearer $FUNDARB_ADMIN_TOKEN``; the engine sets HALTED, flattens everything and
journals it (see :mod:`fundarb.http`). The address is ``--url`` or ``http://$FUNDARB_HTTP_BIND``
(default ``127.0.0.1:8080``; a wildcard bind such as ``0.0.0.0`` is reached on ``127.0.0.1``).

Exit status: 0 the engine accepted the kill; 1 refused, failed or unreachable (the message says
which); 2 bad usage: no token configured, or a URL that is not a loopback address (the token is
never sent anywhere but to this machine, and never through a proxy).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx
import orjson
import trio

from fundarb.core.errors import InvalidValue
from fundarb.http import is_loopback_host

__all__ = [
    "DEFAULT_BIND",
    "DEFAULT_REASON",
    "HELP",
    "KillOutcome",
    "add_arguments",
    "amain",
    "kill_url",
    "main",
    "request_kill",
]

HELP = "kill switch: tell the running engine to halt and flatten everything (POST /admin/kill)"

#: used when FUNDARB_HTTP_BIND is unset (same default as the engine)
DEFAULT_BIND = "127.0.0.1:8080"
#: reason sent when --reason is not given
DEFAULT_REASON = "operator kill via CLI"
#: seconds to wait for the engine's answer (the engine answers once the kill is under way)
DEFAULT_TIMEOUT = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--reason``, ``--url`` and ``--timeout``."""
    parser.add_argument("--reason", default=DEFAULT_REASON, help="why (journaled by the engine)")
    parser.add_argument(
        "--url",
        default=None,
        help="engine address, e.g. http://127.0.0.1:8080 (default: http://$FUNDARB_HTTP_BIND)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for the answer"
    )


@attrs.frozen
class KillOutcome:
    """What came back from the engine: ``status`` is ``None`` when no answer arrived."""

    ok: bool
    status: int | None
    body: Any
    message: str


def kill_url(target: str) -> str:
    """The ``/admin/kill`` URL for ``target``: a base URL (``http://127.0.0.1:8080``) or a bind
    (``127.0.0.1:8080``, ``[::1]:8080``, ``0.0.0.0:8080``).

    Raises :class:`~fundarb.core.errors.InvalidValue` for a malformed target or a host that is
    not a loopback address.
    """
    text = target.strip()
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise InvalidValue(f"kill: malformed address {target!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidValue(f"kill: expected http://host:port or host:port, got {target!r}")
    if parts.username or parts.password:
        raise InvalidValue("kill: the address must not contain credentials")
    if _is_wildcard(host):
        host = "::1" if ":" in host else "127.0.0.1"
    if not is_loopback_host(host):
        raise InvalidValue(
            f"kill: refusing to send the admin token to {host!r}: the kill endpoint is loopback-only"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    path = parts.path if parts.path not in ("", "/") else "/admin/kill"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


async def request_kill(
    url: str,
    token: str,
    reason: str,
    *,
    answer_within: float = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> KillOutcome:
    """POST the kill to ``url`` (from :func:`kill_url`) and describe the outcome, waiting at most
    ``answer_within`` seconds in all. Never raises for HTTP or network failures: they come back
    as ``ok=False`` with a message."""
    headers = {"Authorization": f"Bearer {token}"}
    response: httpx.Response | None = None
    try:
        with trio.move_on_after(answer_within):
            # trust_env=False: no proxy from the environment ever sees the token.
            async with httpx.AsyncClient(transport=transport, trust_env=False, timeout=None) as client:
                response = await client.post(url, json={"reason": reason}, headers=headers)
    except httpx.TransportError as exc:
        return KillOutcome(
            False, None, None, f"cannot reach the engine at {url}: {type(exc).__name__}: {exc}"
        )
    if response is None:
        return KillOutcome(
            False,
            None,
            None,
            f"no answer from {url} within {answer_within:g} s: the engine may or may not have received "
            "the kill; check /readyz, /positions and the journal",
        )
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:2000]
    if response.status_code == 200:
        return KillOutcome(True, 200, body, f"kill accepted by {url}")
    detail = body.get("error") if isinstance(body, dict) else None
    return KillOutcome(
        False,
        response.status_code,
        body,
        f"kill refused by {url} (HTTP {response.status_code}): {detail or body}",
    )


async def amain(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """The command's async core: read the environment, send the kill, print the answer, return
    the exit status."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    token = environ.get("FUNDARB_ADMIN_TOKEN", "").strip()
    if not token:
        print("fundarb kill: FUNDARB_ADMIN_TOKEN is not set: the kill endpoint needs it", file=err)
        return 2
    if not args.timeout > 0:
        print(f"fundarb kill: --timeout must be positive, got {args.timeout}", file=err)
        return 2
    target = args.url or environ.get("FUNDARB_HTTP_BIND", "").strip() or DEFAULT_BIND
    try:
        url = kill_url(target)
    except InvalidValue as exc:
        print(f"fundarb {exc}", file=err)
        return 2
    outcome = await request_kill(url, token, args.reason, answer_within=args.timeout, transport=transport)
    if outcome.ok:
        print(outcome.message, file=out)
        print(orjson.dumps(outcome.body, option=orjson.OPT_INDENT_2).decode(), file=out)
        return 0
    print(f"fundarb {outcome.message}", file=err)
    return 1


def main(args: argparse.Namespace) -> int:
    """Run :func:`amain` under Trio with the process environment."""
    return trio.run(amain, args, os.environ)
