"""`fundarb kill`: address handling, exit codes, and the command against a real server on 127.0.0.1:0."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from fundarb.cli import kill as kill_cli
from fundarb.core.errors import InvalidValue
from fundarb.http import create_app, run_http_server
from fundarb.metrics import create_metrics

TOKEN = "cli-token-5b0e4d2a9c71f3e8"


class Source:
    """A minimal HealthSource recording kills; ``block`` makes kill() never answer."""

    def __init__(self, *, block: bool = False) -> None:
        self.kills: list[str] = []
        self.block = block

    def is_alive(self) -> bool:
        return True

    def readiness(self) -> list[str]:
        return []

    def positions(self) -> list[dict[str, Any]]:
        return []

    async def kill(self, reason: str) -> dict[str, Any]:
        self.kills.append(reason)
        if self.block:
            await trio.sleep_forever()
        return {"mode": "halted", "flattening": ["p-1", "p-2"]}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    kill_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


async def run(args: argparse.Namespace, env: dict[str, str], **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await kill_cli.amain(args, env, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[tuple[str, Source]]:
    """A real hypercorn server on 127.0.0.1:<free port> with the kill endpoint enabled."""
    source = Source()
    app = create_app(source, create_metrics(), bind="127.0.0.1:0", admin_token=TOKEN)
    with trio.fail_after(10):
        urls = await nursery.start(run_http_server, app, "127.0.0.1:0")
    yield urls[0], source


def bind_of(url: str) -> str:
    return url.removeprefix("http://")


# --- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080/admin/kill"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000/admin/kill"),
        ("[::1]:8080", "http://[::1]:8080/admin/kill"),
        ("[::]:8080", "http://[::1]:8080/admin/kill"),
        ("localhost:8080", "http://localhost:8080/admin/kill"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/admin/kill"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/admin/kill"),
        ("https://127.0.0.1:8443/custom/kill", "https://127.0.0.1:8443/custom/kill"),
    ],
)
def test_kill_url(target: str, url: str) -> None:
    assert kill_cli.kill_url(target) == url


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("10.0.0.5:8080", "refusing to send the admin token"),
        ("http://example.com:8080", "refusing to send the admin token"),
        ("ftp://127.0.0.1:21", "expected http://host:port"),
        ("http://user:pw@127.0.0.1:8080", "must not contain credentials"),
        ("127.0.0.1:notaport", "malformed address"),
    ],
)
def test_kill_url_refuses_non_loopback_and_malformed_targets(target: str, fragment: str) -> None:
    with pytest.raises(InvalidValue, match=fragment):
        kill_cli.kill_url(target)


# --- exit codes without a server ----------------------------------------------------------------


async def test_no_token_is_bad_usage_exit_2() -> None:
    code, out, err = await run(parse(), {"FUNDARB_HTTP_BIND": "127.0.0.1:8080"})
    assert code == 2 and out == ""
    assert "FUNDARB_ADMIN_TOKEN is not set" in err


async def test_non_loopback_target_is_exit_2_and_nothing_is_sent() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    env = {"FUNDARB_ADMIN_TOKEN": TOKEN, "FUNDARB_HTTP_BIND": "192.168.1.10:8080"}
    code, _, err = await run(parse(), env, transport=httpx.MockTransport(handler))
    assert code == 2 and sent == []
    assert "loopback-only" in err and TOKEN not in err


async def test_non_positive_timeout_is_exit_2() -> None:
    code, _, err = await run(parse("--timeout", "0"), {"FUNDARB_ADMIN_TOKEN": TOKEN})
    assert code == 2 and "--timeout must be positive" in err


async def test_default_address_and_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"killed": True})

    code, out, _ = await run(
        parse("--reason", "manual"), {"FUNDARB_ADMIN_TOKEN": TOKEN}, transport=httpx.MockTransport(handler)
    )
    assert code == 0 and "kill accepted by http://127.0.0.1:8080/admin/kill" in out
    (request,) = seen
    assert request.method == "POST" and str(request.url) == "http://127.0.0.1:8080/admin/kill"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.content == b'{"reason":"manual"}'


async def test_unreachable_engine_is_exit_1_with_a_clear_message() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on that port any more
    with trio.fail_after(10):
        code, out, err = await run(
            parse(), {"FUNDARB_ADMIN_TOKEN": TOKEN, "FUNDARB_HTTP_BIND": f"127.0.0.1:{port}"}
        )
    assert code == 1 and out == ""
    assert f"cannot reach the engine at http://127.0.0.1:{port}/admin/kill" in err


# --- against a real server ----------------------------------------------------------------------


async def test_kill_against_a_real_server_exit_0(server: tuple[str, Source]) -> None:
    url, source = server
    env = {"FUNDARB_ADMIN_TOKEN": TOKEN, "FUNDARB_HTTP_BIND": bind_of(url)}
    with trio.fail_after(10):
        code, out, err = await run(parse("--reason", "funding flipped everywhere"), env)
    assert code == 0, err
    assert source.kills == ["funding flipped everywhere"]
    assert "kill accepted" in out and '"mode": "halted"' in out and '"p-2"' in out
    assert TOKEN not in out + err


async def test_kill_with_a_wrong_token_is_refused_exit_1(server: tuple[str, Source]) -> None:
    url, source = server
    env = {"FUNDARB_ADMIN_TOKEN": "not-the-token-00000000", "FUNDARB_HTTP_BIND": "0.0.0.0:1"}
    with trio.fail_after(10):
        code, out, err = await run(parse("--url", url), env)
    assert code == 1 and out == ""
    assert "HTTP 403" in err and "missing or wrong bearer token" in err
    assert "not-the-token" not in err
    assert source.kills == []


async def test_kill_against_a_server_without_a_token_is_refused_exit_1(nursery: trio.Nursery) -> None:
    source = Source()
    app = create_app(source, create_metrics(), bind="127.0.0.1:0", admin_token=None)
    with trio.fail_after(10):
        (url,) = await nursery.start(run_http_server, app, "127.0.0.1:0")
        code, _, err = await run(parse("--url", url), {"FUNDARB_ADMIN_TOKEN": TOKEN})
    assert code == 1 and "HTTP 404" in err and "no admin token" in err
    assert source.kills == []


async def test_an_engine_that_does_not_answer_in_time_is_exit_1(nursery: trio.Nursery) -> None:
    source = Source(block=True)
    app = create_app(source, create_metrics(), bind="127.0.0.1:0", admin_token=TOKEN)
    with trio.fail_after(10):
        (url,) = await nursery.start(run_http_server, app, "127.0.0.1:0")
        code, _, err = await run(parse("--url", url, "--timeout", "0.3"), {"FUNDARB_ADMIN_TOKEN": TOKEN})
    assert code == 1
    assert "no answer" in err and "may or may not have received the kill" in err
    assert source.kills == [kill_cli.DEFAULT_REASON]


async def test_the_real_entry_point_as_a_subprocess(server: tuple[str, Source]) -> None:
    url, source = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDARB_")}
    env |= {"FUNDARB_ADMIN_TOKEN": TOKEN, "FUNDARB_HTTP_BIND": bind_of(url)}
    with trio.fail_after(60):
        ok = await trio.run_process(
            [sys.executable, "-m", "fundarb", "kill", "--reason", "subprocess"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        del env["FUNDARB_ADMIN_TOKEN"]
        usage = await trio.run_process(
            [sys.executable, "-m", "fundarb", "kill"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert ok.returncode == 0, ok.stderr.decode()
    assert b"kill accepted" in ok.stdout
    assert source.kills == ["subprocess"]
    assert usage.returncode == 2 and b"FUNDARB_ADMIN_TOKEN is not set" in usage.stderr
