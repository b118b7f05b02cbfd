"""The operator HTTP endpoint: every route in-process through httpx.ASGITransport, the kill
switch's guards, secrets kept out of answers and logs, and a real hypercorn server on 127.0.0.1:0."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from decimal import Decimal
from functools import partial
from typing import Any

import attrs
import httpx
import orjson
import pytest
import trio

from fundarb._secret import Secret
from fundarb.core.errors import InvalidValue
from fundarb.http import (
    DEFAULT_KILL_REASON,
    MAX_BODY_BYTES,
    HttpApp,
    create_app,
    is_loopback_bind,
    is_loopback_host,
    redact_secrets,
    run_http_server,
)
from fundarb.metrics import Metrics, create_metrics

TOKEN = "tok-3f9a1c77e2b84d0c9a51"
API_SECRET = "venue-api-secret-8d1e2f"


@attrs.define
class FakeSource:
    """A HealthSource whose answers the test sets."""

    alive: bool = True
    reasons: list[str] = attrs.Factory(list)
    rows: list[dict[str, Any]] = attrs.Factory(list)
    kills: list[str] = attrs.Factory(list)
    fail: Exception | None = None
    kill_blocks: bool = False

    def is_alive(self) -> bool:
        if self.fail is not None:
            raise self.fail
        return self.alive

    def readiness(self) -> list[str]:
        if self.fail is not None:
            raise self.fail
        return list(self.reasons)

    def positions(self) -> list[dict[str, Any]]:
        if self.fail is not None:
            raise self.fail
        return self.rows

    async def kill(self, reason: str) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        if self.fail is not None:
            raise self.fail
        self.kills.append(reason)
        if self.kill_blocks:
            await trio.sleep_forever()
        return {"mode": "halted", "flattening": 2}


def make(
    source: FakeSource | None = None, *, token: Secret | str | None = TOKEN, bind: str = "127.0.0.1:8080"
) -> tuple[HttpApp, FakeSource, Metrics]:
    source = FakeSource() if source is None else source
    metrics = create_metrics()
    return create_app(source, metrics, bind=bind, admin_token=token), source, metrics


def client(app: HttpApp, *, client_host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(client_host, 50123))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def kills_counted(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("fundarb_kill_switch_activations_total", {"source": "http"})
    return value or 0.0


# --- read-only routes -------------------------------------------------------------------------


async def test_healthz_200_when_alive_503_when_not() -> None:
    app, source, _ = make()
    async with client(app) as c:
        r = await c.get("/healthz")
        assert (r.status_code, r.json()) == (200, {"status": "alive"})
        assert r.headers["cache-control"] == "no-store"
        source.alive = False
        r = await c.get("/healthz")
        assert (r.status_code, r.json()) == (503, {"status": "dead"})


async def test_healthz_and_readyz_when_the_source_raises_give_503_with_the_type_only() -> None:
    app, source, _ = make()
    source.fail = RuntimeError(f"db at postgresql://bot:{API_SECRET}@db is down")
    async with client(app) as c:
        h = await c.get("/healthz")
        r = await c.get("/readyz")
        p = await c.get("/positions")
    assert h.status_code == 503 and h.json() == {"status": "error", "error": "RuntimeError"}
    assert r.status_code == 503 and r.json() == {
        "ready": False,
        "reasons": ["readiness check failed: RuntimeError"],
    }
    assert p.status_code == 500 and p.json() == {"error": "positions unavailable: RuntimeError"}
    for response in (h, r, p):
        assert API_SECRET not in response.text


async def test_readyz_200_when_ready_and_503_with_every_reason() -> None:
    app, source, _ = make()
    async with client(app) as c:
        r = await c.get("/readyz")
        assert (r.status_code, r.json()) == (200, {"ready": True, "reasons": []})
        source.reasons = ["venue binance disconnected", "market data stale: binance:perp:BTCUSDT (12 s)"]
        r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"ready": False, "reasons": source.reasons}


async def test_metrics_is_the_prometheus_exposition_of_the_engine_registry() -> None:
    app, _, metrics = make()
    metrics.record_order_sent("binance")
    metrics.record_hedge_gap(0.0003)
    async with client(app) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'fundarb_orders_sent_total{venue="binance"} 1.0' in r.text
    assert 'fundarb_hedge_gap_seconds_bucket{le="0.0005"} 1.0' in r.text
    assert "fundarb_positions" in r.text
    # only this engine's registry: nothing from prometheus_client's global one
    assert "python_gc_objects_collected_total" not in r.text


async def test_positions_json_with_decimals_as_strings_and_secrets_redacted() -> None:
    rows = [
        {
            "id": "p-1",
            "state": "hedged",
            "qty": Decimal("0.015"),
            "legs": [{"venue": "binance", "api_key": API_SECRET}],
            "credentials": Secret(API_SECRET),
            "notes": {"Auth-Token": API_SECRET, "pnl": Decimal("-1.25")},
        }
    ]
    app, _, _ = make(FakeSource(rows=rows))
    async with client(app) as c:
        r = await c.get("/positions")
    assert r.status_code == 200
    assert r.json() == {
        "positions": [
            {
                "id": "p-1",
                "state": "hedged",
                "qty": "0.015",
                "legs": [{"venue": "binance", "api_key": "***"}],
                "credentials": "***",
                "notes": {"Auth-Token": "***", "pnl": "-1.25"},
            }
        ]
    }
    assert API_SECRET not in r.text


async def test_positions_that_cannot_be_encoded_give_500_not_a_crash() -> None:
    app, _, _ = make(FakeSource(rows=[{"opened": object()}]))
    async with client(app) as c:
        r = await c.get("/positions")
    assert r.status_code == 500
    assert r.json() == {"error": "positions unavailable: TypeError"}


async def test_unknown_route_404_wrong_method_405_and_head_has_no_body() -> None:
    app, _, _ = make()
    async with client(app) as c:
        assert (await c.get("/nope")).status_code == 404
        r = await c.post("/healthz")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        r = await c.head("/readyz")
        assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 0
        r = await c.get("/admin/kill", headers=auth())
        assert r.status_code == 405 and r.headers["allow"] == "POST"


# --- the kill switch --------------------------------------------------------------------------


async def test_kill_with_the_right_token_calls_the_engine_and_counts_it() -> None:
    app, source, metrics = make()
    async with client(app) as c:
        r = await c.post("/admin/kill", json={"reason": "cascade on binance"}, headers=auth())
    assert r.status_code == 200
    assert r.json() == {
        "killed": True,
        "reason": "cascade on binance",
        "result": {"mode": "halted", "flattening": 2},
    }
    assert source.kills == ["cascade on binance"]
    assert kills_counted(metrics) == 0.0  # the provider counts (the engine's kill does), not the app
    assert TOKEN not in r.text


async def test_kill_accepts_a_secret_token_and_an_empty_body() -> None:
    app, source, _ = make(token=Secret(TOKEN))
    async with client(app) as c:
        r = await c.post("/admin/kill", headers={"authorization": f"bearer {TOKEN}"})
    assert r.status_code == 200
    assert source.kills == [DEFAULT_KILL_REASON]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-000000000"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "longer", "basic-scheme", "no-scheme", "empty"],
)
async def test_kill_refused_403_without_the_right_bearer_token(
    headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app, source, metrics = make()
    async with client(app) as c:
        r = await c.post("/admin/kill", json={"reason": "x"}, headers=headers)
    assert r.status_code == 403
    assert r.json() == {"error": "forbidden: missing or wrong bearer token"}
    assert source.kills == []
    assert kills_counted(metrics) == 0.0
    assert TOKEN not in r.text and TOKEN not in caplog.text
    assert "kill refused" in caplog.text


async def test_kill_is_404_when_no_token_is_configured() -> None:
    for token in (None, ""):
        app, source, _ = make(token=token)
        async with client(app) as c:
            r = await c.post("/admin/kill", json={"reason": "x"}, headers=auth())
        assert r.status_code == 404
        assert "no admin token" in r.json()["error"]
        assert source.kills == []
        assert not app.kill_enabled


@pytest.mark.parametrize("bind", ["0.0.0.0:8080", "10.0.0.7:8080", "[::]:8080", ":8080", "unix:/tmp/f.sock"])
async def test_kill_refused_on_a_non_loopback_bind_even_with_the_right_token(bind: str) -> None:
    app, source, _ = make(bind=bind)
    async with client(app) as c:
        r = await c.post("/admin/kill", json={"reason": "x"}, headers=auth())
    assert r.status_code == 403
    assert "loopback bind" in r.json()["error"]
    assert source.kills == []


async def test_kill_refused_when_served_on_any_non_loopback_address() -> None:
    app, source, _ = make(bind="127.0.0.1:8080")
    assert app.kill_enabled
    app.note_bind("0.0.0.0:8080")  # what run_http_server does when serving elsewhere too
    assert not app.kill_enabled
    async with client(app) as c:
        r = await c.post("/admin/kill", headers=auth())
    assert r.status_code == 403 and source.kills == []


async def test_kill_refused_from_a_non_loopback_client() -> None:
    app, source, _ = make()
    async with client(app, client_host="10.0.0.9") as c:
        r = await c.post("/admin/kill", headers=auth())
    assert r.status_code == 403
    assert "loopback address" in r.json()["error"]
    assert source.kills == []


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "must be JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"reason": 7}', 400, "non-empty string"),
        (b'{"reason": "  "}', 400, "non-empty string"),
        (orjson.dumps({"reason": "x" * 501}), 400, "at most 500"),
        (orjson.dumps({"reason": "line\nbreak"}), 400, "printable"),
        (b" " * (MAX_BODY_BYTES + 1), 413, "over 4096 bytes"),
    ],
    ids=["not-json", "not-object", "reason-not-str", "reason-blank", "reason-long", "newline", "too-big"],
)
async def test_kill_bad_bodies_are_refused_with_a_clear_error(
    body: bytes, status: int, fragment: str
) -> None:
    app, source, _ = make()
    async with client(app) as c:
        r = await c.post("/admin/kill", content=body, headers=auth())
    assert r.status_code == status
    assert fragment in r.json()["error"]
    assert source.kills == []


async def test_kill_failing_in_the_engine_is_500_with_the_type_only(caplog: pytest.LogCaptureFixture) -> None:
    app, source, metrics = make()
    source.fail = RuntimeError(f"cannot flatten: key {API_SECRET}")
    async with client(app) as c:
        r = await c.post("/admin/kill", headers=auth())
    assert r.status_code == 500
    assert r.json() == {"error": "kill failed: RuntimeError"}
    assert API_SECRET not in r.text and TOKEN not in caplog.text
    assert kills_counted(metrics) == 0.0


def test_the_app_keeps_no_token_and_its_repr_shows_none() -> None:
    app, _, _ = make()
    assert TOKEN not in repr(app)
    assert all(TOKEN not in repr(v) for v in attrs.asdict(app, recurse=False).values())


def test_create_app_refuses_a_non_source_and_a_bad_token_type() -> None:
    with pytest.raises(InvalidValue, match="does not implement HealthSource"):
        create_app(object(), create_metrics(), bind="127.0.0.1:0")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="admin_token must be"):
        create_app(FakeSource(), create_metrics(), bind="127.0.0.1:0", admin_token=b"x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1:8080", True),
        ("127.1.2.3:0", True),
        ("localhost:8080", True),
        ("[::1]:8080", True),
        ("0.0.0.0:8080", False),
        ("[::]:8080", False),
        ("192.168.1.4:8080", False),
        ("example.com:8080", False),
        (":8080", False),
        ("127.0.0.1", False),
        ("unix:/run/fundarb.sock", False),
        ("fd://3", False),
    ],
)
def test_is_loopback_bind(bind: str, expected: bool) -> None:
    assert is_loopback_bind(bind) is expected


def test_is_loopback_host() -> None:
    assert is_loopback_host("::1") and is_loopback_host("LOCALHOST") and is_loopback_host("127.0.0.5")
    assert not is_loopback_host("") and not is_loopback_host("testserver") and not is_loopback_host("8.8.8.8")


def test_redact_secrets_walks_nested_values_and_leaves_others() -> None:
    data = {"a": [{"password": "p", "b": ({"x_api_key": "k"},)}], "keep": 1, "signature": "s", 3: "int key"}
    assert redact_secrets(data) == {
        "a": [{"password": "***", "b": [{"x_api_key": "***"}]}],
        "keep": 1,
        "signature": "***",
        3: "int key",
    }


# --- lifespan and a real server ---------------------------------------------------------------


async def test_lifespan_startup_and_shutdown_complete() -> None:
    app, _, _ = make()
    to_app, app_inbox = trio.open_memory_channel[dict[str, Any]](2)
    app_outbox, from_app = trio.open_memory_channel[MutableMapping[str, Any]](2)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(app, {"type": "lifespan"}, app_inbox.receive, app_outbox.send))
            await to_app.send({"type": "lifespan.startup"})
            assert await from_app.receive() == {"type": "lifespan.startup.complete"}
            await to_app.send({"type": "lifespan.shutdown"})
            assert await from_app.receive() == {"type": "lifespan.shutdown.complete"}


async def test_real_hypercorn_server_on_an_ephemeral_loopback_port(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app, source, metrics = make()
    source.reasons = ["reconciliation not done"]
    metrics.record_venue_error("binance", RuntimeError(f"HTTP 401 for key {API_SECRET}"))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(run_http_server, app, "127.0.0.1:0")
            assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:")
            assert not urls[0].endswith(":0")
            async with httpx.AsyncClient(base_url=urls[0], trust_env=False) as c:
                healthz = await c.get("/healthz")
                readyz = await c.get("/readyz")
                refused = await c.post("/admin/kill", json={"reason": "x"}, headers=auth("not-it"))
                killed = await c.post("/admin/kill", json={"reason": "from test"}, headers=auth())
                scraped = await c.get("/metrics")
            nursery.cancel_scope.cancel()
    assert healthz.status_code == 200 and healthz.json() == {"status": "alive"}
    assert readyz.status_code == 503 and readyz.json()["reasons"] == ["reconciliation not done"]
    assert refused.status_code == 403
    assert killed.status_code == 200 and source.kills == ["from test"]
    assert scraped.status_code == 200
    assert 'fundarb_positions{state="hedged"} 0.0' in scraped.text
    assert 'fundarb_venue_api_errors_total{kind="RuntimeError",venue="binance"} 1.0' in scraped.text
    for text in (healthz.text, readyz.text, refused.text, killed.text, scraped.text, caplog.text):
        assert TOKEN not in text and API_SECRET not in text


async def test_real_server_stops_when_the_shutdown_trigger_fires() -> None:
    app, _, _ = make()
    stop = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                partial(run_http_server, app, "127.0.0.1:0", shutdown_trigger=stop.wait)
            )
            async with httpx.AsyncClient(base_url=urls[0], trust_env=False) as c:
                assert (await c.get("/healthz")).status_code == 200
            stop.set()
        # the nursery exits only because run_http_server returned by itself
    with trio.fail_after(5):
        async with httpx.AsyncClient(base_url=urls[0], trust_env=False) as c:
            with pytest.raises(httpx.ConnectError):
                await c.get("/healthz")
