"""The operator HTTP endpoint: an ASGI app served by hypercorn's Trio worker.

Routes (all answers are JSON except ``/metrics``; every answer has ``Cache-Control: no-store``):

=====================  ======  ===========================================================
``/healthz``           GET     200 ``{"status": "alive"}``; 503 if the engine says it is not
                               alive. Answered on the engine's event loop, so a 200 also
                               proves the loop is responsive.
``/readyz``            GET     200 ``{"ready": true, "reasons": []}``, or 503 with the
                               reasons (venues disconnected, stale data, journal, ...)
``/metrics``           GET     Prometheus text exposition of the engine's registry
``/positions``         GET     ``{"positions": [...]}``; keys that look like secrets are
                               redacted as defence in depth
``/admin/kill``        POST    the kill switch, see below
=====================  ======  ===========================================================

``POST /admin/kill`` (optional JSON body ``{"reason": "..."}``) calls :meth:`HealthSource.kill`
only when all of these hold, and answers 200 with the engine's result:

- an admin token is configured (else 404, the route does not exist);
- every address the server is bound to is a loopback address, and the request came from and
  to a loopback address (else 403);
- the request carries ``Authorization: Bearer <token>``; the comparison is constant-time on
  SHA-256 digests, and the app keeps only the digest, never the token (else 403).

Refusals never echo the presented credentials. The provider's ``kill`` journals the kill and
counts it in ``fundarb_kill_switch_activations_total`` (it knows the source; this module does
not count, so a kill is counted once).

Start the server from the engine's root nursery::

    urls = await nursery.start(run_http_server, app, "127.0.0.1:8080")
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from decimal import Decimal
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import hypercorn.trio
import orjson
import trio
from hypercorn.config import Config
from prometheus_client import CONTENT_TYPE_LATEST

from fundarb._secret import REDACTED, Secret
from fundarb.core.errors import InvalidValue
from fundarb.metrics import Metrics

__all__ = [
    "DEFAULT_KILL_REASON",
    "MAX_BODY_BYTES",
    "MAX_REASON_CHARS",
    "HealthSource",
    "HttpApp",
    "create_app",
    "is_loopback_bind",
    "is_loopback_host",
    "redact_secrets",
    "run_http_server",
]

log = logging.getLogger("fundarb.http")

#: reason recorded when a kill request has no body
DEFAULT_KILL_REASON = "operator kill via HTTP"
#: largest accepted request body (the kill request's JSON)
MAX_BODY_BYTES = 4096
#: longest accepted kill reason
MAX_REASON_CHARS = 500

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@runtime_checkable
class HealthSource(Protocol):
    """What the engine provides to the HTTP layer. Every method runs on the engine's event loop."""

    def is_alive(self) -> bool:
        """True while the engine runs (its root nursery is up and not shutting down)."""
        ...

    def readiness(self) -> list[str]:
        """Reasons the engine is not ready to trade; empty when ready."""
        ...

    def positions(self) -> list[dict[str, Any]]:
        """Current positions as JSON-safe dicts (Decimal allowed; no secrets)."""
        ...

    async def kill(self, reason: str) -> dict[str, Any]:
        """Set HALTED globally and flatten everything, journaled; return a JSON-safe summary."""
        ...


# --- addresses ----------------------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``::1``, ``[::1]``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_bind(bind: str) -> bool:
    """True if the hypercorn bind string ``host:port`` listens on loopback only.

    ``unix:``/``fd://`` binds, an empty host and wildcard addresses are not loopback.
    """
    if bind.startswith(("unix:", "fd://")):
        return False
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        return False
    return is_loopback_host(host)


# --- JSON ---------------------------------------------------------------------------------------

_SECRET_KEY_PARTS = ("secret", "token", "password", "passphrase", "apikey", "api_key", "signature")


def _looks_secret(key: str) -> bool:
    k = key.lower().replace("-", "_")
    return any(part in k for part in _SECRET_KEY_PARTS) or k in {"authorization", "key"}


def redact_secrets(value: Any) -> Any:
    """A copy of ``value`` (nested dicts/lists/tuples) with secret-looking keys' values as ``***``."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _looks_secret(k) else redact_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_secrets(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default)


# --- the app ------------------------------------------------------------------------------------


@attrs.define(repr=False)
class HttpApp:
    """The ASGI application. Build with :func:`create_app`; serve with :func:`run_http_server`."""

    source: HealthSource
    metrics: Metrics
    _token_digest: bytes | None
    _binds: set[str]

    def __repr__(self) -> str:
        state = "enabled" if self.kill_enabled else "disabled"
        return f"<HttpApp binds={sorted(self._binds)} kill={state}>"

    @property
    def kill_enabled(self) -> bool:
        """True when an admin token is configured and every bind is loopback."""
        return self._token_digest is not None and self.loopback_only

    @property
    def loopback_only(self) -> bool:
        """True when every address this app is (or will be) served on is a loopback address."""
        return bool(self._binds) and all(is_loopback_bind(b) for b in self._binds)

    def note_bind(self, bind: str) -> None:
        """Record that the app is served on ``bind`` (called by :func:`run_http_server`)."""
        self._binds.add(bind)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
        else:
            raise InvalidValue(f"unsupported ASGI scope type {kind!r}")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        head = method == "HEAD"
        if path == "/admin/kill":
            if self._token_digest is None:
                await _send_json(send, 404, {"error": "not found: no admin token is configured"})
            elif method != "POST":
                await _send_json(send, 405, {"error": "method not allowed"}, allow="POST")
            else:
                await self._kill(scope, receive, send)
            return
        handler = self._GETS.get(path)
        if handler is None:
            await _send_json(send, 404, {"error": "not found"}, head=head)
        elif method not in ("GET", "HEAD"):
            await _send_json(send, 405, {"error": "method not allowed"}, allow="GET, HEAD")
        else:
            status, content_type, body = handler(self)
            await _send(send, status, content_type, body, head=head)

    # Each GET handler returns (status, content type, body).

    def _healthz(self) -> tuple[int, str, bytes]:
        try:
            alive = bool(self.source.is_alive())
        except Exception as exc:
            log.exception("healthz: is_alive() raised")
            return 503, _JSON, _dumps({"status": "error", "error": type(exc).__name__})
        return (
            (200, _JSON, _dumps({"status": "alive"})) if alive else (503, _JSON, _dumps({"status": "dead"}))
        )

    def _readyz(self) -> tuple[int, str, bytes]:
        try:
            reasons = [str(r) for r in self.source.readiness()]
        except Exception as exc:
            log.exception("readyz: readiness() raised")
            reasons = [f"readiness check failed: {type(exc).__name__}"]
        return (503 if reasons else 200), _JSON, _dumps({"ready": not reasons, "reasons": reasons})

    def _metrics(self) -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE_LATEST, self.metrics.exposition()

    def _positions(self) -> tuple[int, str, bytes]:
        try:
            body = _dumps({"positions": redact_secrets(list(self.source.positions()))})
        except Exception as exc:
            log.exception("positions: could not build the answer")
            return 500, _JSON, _dumps({"error": f"positions unavailable: {type(exc).__name__}"})
        return 200, _JSON, body

    _GETS: ClassVar[Mapping[str, Callable[[HttpApp], tuple[int, str, bytes]]]] = {
        "/healthz": _healthz,
        "/readyz": _readyz,
        "/metrics": _metrics,
        "/positions": _positions,
    }

    async def _kill(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = (scope.get("client") or ("", 0))[0]
        server = (scope.get("server") or ("", 0))[0]
        if not self.loopback_only:
            log.warning("kill refused: the server is bound to a non-loopback address")
            await _send_json(send, 403, {"error": "forbidden: kill is only served on a loopback bind"})
            return
        if not (is_loopback_host(client) and is_loopback_host(server)):
            log.warning("kill refused: request not from a loopback address (client %r)", client)
            await _send_json(send, 403, {"error": "forbidden: kill only from a loopback address"})
            return
        if not self._authorized(scope):
            log.warning("kill refused: missing or wrong bearer token (client %r)", client)
            await _send_json(send, 403, {"error": "forbidden: missing or wrong bearer token"})
            return
        body = None if _declared_length(scope) > MAX_BODY_BYTES else await _read_body(receive)
        if body is None:
            await _send_json(send, 413, {"error": f"request body over {MAX_BODY_BYTES} bytes"})
            return
        try:
            reason = _kill_reason(body)
        except InvalidValue as exc:
            await _send_json(send, 400, {"error": str(exc)})
            return
        log.warning("kill requested over HTTP: %s", reason)
        try:
            result = await self.source.kill(reason)
        except Exception as exc:
            log.exception("kill: the engine's kill() raised")
            await _send_json(send, 500, {"error": f"kill failed: {type(exc).__name__}"})
            return
        try:
            payload = _dumps({"killed": True, "reason": reason, "result": redact_secrets(result)})
        except TypeError as exc:  # the kill happened; only its summary cannot be encoded
            log.error("kill: result not JSON-serializable: %s", exc)
            payload = _dumps({"killed": True, "reason": reason, "result": None})
        await _send(send, 200, _JSON, payload)

    def _authorized(self, scope: Scope) -> bool:
        assert self._token_digest is not None
        given = b""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                scheme, _, credentials = bytes(value).strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credentials.strip()
                break
        # Compare fixed-length digests: constant time, and no length leak.
        return bool(given) and hmac.compare_digest(hashlib.sha256(given).digest(), self._token_digest)


def create_app(
    source: HealthSource, metrics: Metrics, *, bind: str, admin_token: Secret | str | None = None
) -> HttpApp:
    """The ASGI app for ``source`` and ``metrics``, to be served on ``bind`` (``host:port``).

    ``admin_token`` (a :class:`~fundarb._secret.Secret`, a str, or ``None``) enables
    ``POST /admin/kill``; ``None`` or an empty string disables it (404). Only its SHA-256 digest
    is kept.
    """
    if not isinstance(source, HealthSource):
        raise InvalidValue(f"create_app: {type(source).__name__} does not implement HealthSource")
    if isinstance(admin_token, Secret):
        token = admin_token.reveal()
    elif admin_token is None or isinstance(admin_token, str):
        token = admin_token or ""
    else:
        raise InvalidValue(f"admin_token must be a Secret, str or None, not {type(admin_token).__name__}")
    digest = hashlib.sha256(token.encode()).digest() if token else None
    return HttpApp(source, metrics, digest, {bind})


async def run_http_server(
    app: Callable[..., Awaitable[None]],
    bind: str,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    graceful_timeout: float = 2.0,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``bind`` with hypercorn's Trio worker until cancelled or ``shutdown_trigger``
    returns. For ``nursery.start``: reports the bound URLs (``["http://127.0.0.1:40123"]``; port
    ``0`` picks a free one). No access log (requests never reach a log line); hypercorn's own
    messages go to the ``fundarb.http.server`` logger.
    """
    if isinstance(app, HttpApp):
        app.note_bind(bind)
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = logging.getLogger("fundarb.http.server")
    config.graceful_timeout = graceful_timeout
    await hypercorn.trio.serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)


# --- ASGI helpers -------------------------------------------------------------------------------

_JSON = "application/json"


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _declared_length(scope: Scope) -> int:
    """The request's Content-Length, 0 if absent or malformed (the body is then read with a cap)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or ``None`` if it exceeds :data:`MAX_BODY_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _kill_reason(body: bytes) -> str:
    if not body.strip():
        return DEFAULT_KILL_REASON
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidValue('body must be JSON: {"reason": "..."}') from None
    if not isinstance(data, dict):
        raise InvalidValue('body must be a JSON object: {"reason": "..."}')
    reason = data.get("reason", DEFAULT_KILL_REASON)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidValue("reason must be a non-empty string")
    if len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise InvalidValue(f"reason must be printable text of at most {MAX_REASON_CHARS} characters")
    return reason.strip()


async def _send_json(send: Send, status: int, data: Any, *, head: bool = False, allow: str = "") -> None:
    await _send(send, status, _JSON, _dumps(data), head=head, allow=allow)


async def _send(
    send: Send, status: int, content_type: str, body: bytes, *, head: bool = False, allow: str = ""
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
