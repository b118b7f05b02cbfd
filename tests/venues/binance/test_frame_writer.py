"""FrameWriter: one WebSocket frame handed to the kernel from synchronous code.

It writes only when that is safe (trio-websocket's send lock free, its internals where 0.12.2
keeps them, a plain socket underneath, the connection open) and says what happened: True, all of
the frame left; None, none of it did (not writable now, or the socket failed: the caller sends it
the slow way); False, part of it did (the socket is closed: the stream would be corrupt). Real
sockets only: ``socket.socketpair()`` under ``trio.SocketStream`` with a wsproto peer, and a
trio-websocket server on 127.0.0.1 port 0.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import WebSocketRequest, open_websocket_url, serve_websocket
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from fundarb.venues.binance._frame_writer import FrameWriter


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)


class FakeWs:
    """What FrameWriter reads of a trio-websocket connection, under 0.12.2's attribute names."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._wsproto = Connection(ConnectionType.CLIENT)  # an open connection (past the handshake)
        self._stream_lock = trio.Lock()
        self.closed: object = None


def socket_pair(sndbuf: int | None = None) -> tuple[trio.SocketStream, socket.socket]:
    """Our end as trio wraps it (non-blocking), and the peer's plain socket (also non-blocking)."""
    ours, peer = socket.socketpair()
    if sndbuf is not None:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    peer.setblocking(False)
    return trio.SocketStream(trio.socket.from_stdlib_socket(ours)), peer


def drain(peer: socket.socket) -> tuple[bytes, bool]:
    """Everything the peer can read now, and whether it saw the end of the stream."""
    chunks = []
    while True:
        try:
            chunk = peer.recv(1 << 16)
        except BlockingIOError:
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def decode(data: bytes) -> list[str]:
    """The text messages a server-side wsproto connection reads from ``data``."""
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data)
    messages, parts = [], []
    for event in server.events():
        assert isinstance(event, TextMessage), event
        parts.append(event.data)
        if event.message_finished:
            messages.append("".join(parts))
            parts = []
    assert not parts, "an incomplete message"
    return messages


def fill_send_buffer(stream: trio.SocketStream) -> int:
    """Write filler until the kernel takes no more; returns how many bytes it took."""
    sock = stream.socket._sock  # type: ignore[attr-defined]
    taken = 0
    while True:
        try:
            taken += sock.send(b"x" * 4096)
        except BlockingIOError:
            return taken


async def test_a_full_write_is_one_frame_the_peer_decodes() -> None:
    stream, peer = socket_pair()
    with peer:
        ws = FakeWs(stream)
        writer = FrameWriter.of(ws)  # type: ignore[arg-type]
        assert writer is not None
        assert writer.write('{"id":"a-1","method":"order.place"}') is True
        assert writer.write('{"id":"a-2"}') is True
        data, eof = drain(peer)
        assert decode(data) == ['{"id":"a-1","method":"order.place"}', '{"id":"a-2"}'] and not eof
        assert not ws._stream_lock.locked()  # never taken: nothing else could be mid-write anyway
        await stream.aclose()


@pytest.mark.parametrize(
    "change", ["lock held", "no lock", "no wsproto", "no stream", "closed", "memory stream"]
)
async def test_declines_when_a_write_now_is_not_safe(change: str) -> None:
    stream, peer = socket_pair()
    with peer:
        ws = FakeWs(stream)
        if change == "lock held":  # trio-websocket is writing (or about to)
            await ws._stream_lock.acquire()
        elif change == "no lock":  # another trio-websocket version
            del ws._stream_lock
        elif change == "no wsproto":
            del ws._wsproto
        elif change == "no stream":
            del ws._stream
        elif change == "closed":
            ws.closed = "1000: bye"
        else:  # not a plain socket (TLS would be a trio.SSLStream): never written around
            ws._stream = trio.testing.MemorySendStream()
        assert FrameWriter.of(ws) is None  # type: ignore[arg-type]
        assert drain(peer) == (b"", False)
        await stream.aclose()


async def test_nothing_is_sent_when_the_socket_is_not_writable() -> None:
    stream, peer = socket_pair(sndbuf=8192)
    with peer:
        writer = FrameWriter.of(FakeWs(stream))  # type: ignore[arg-type]
        assert writer is not None
        filler = fill_send_buffer(stream)
        assert writer.write('{"id":"eagain-1"}') is None  # EAGAIN: the caller sends it the slow way
        data, eof = drain(peer)
        assert data == b"x" * filler and not eof  # not one byte of the frame
        # the buffer drained, the socket and the wsproto state are intact: the next frame is whole
        assert writer.write('{"id":"eagain-2"}') is True
        data, _ = drain(peer)
        assert decode(data) == ['{"id":"eagain-2"}']
        await stream.aclose()


async def test_a_failed_socket_sends_nothing_and_is_left_to_the_slow_path() -> None:
    stream, peer = socket_pair()
    writer = FrameWriter.of(FakeWs(stream))  # type: ignore[arg-type]
    assert writer is not None
    peer.close()
    assert writer.write('{"id":"epipe-1"}') is None  # EPIPE (an OSError): nothing left
    assert stream.socket.fileno() != -1  # not closed here: the slow path meets the error and reports it
    await stream.aclose()


async def test_a_partial_write_closes_the_socket(caplog: pytest.LogCaptureFixture) -> None:
    stream, peer = socket_pair(sndbuf=8192)
    with peer:
        writer = FrameWriter.of(FakeWs(stream))  # type: ignore[arg-type]
        assert writer is not None
        # 4 MB while the peer is not reading: the kernel takes part of it
        frame = '{"id":"big-1","pad":"' + "p" * (4 << 20) + '"}'
        assert writer.write(frame) is False
        assert stream.socket.fileno() == -1  # closed: nothing may follow a torn frame
        assert "connection closed" in caplog.text
        data, eof = drain(peer)
        assert 0 < len(data) < len(frame) and eof
        await stream.aclose()  # closing again is harmless


async def test_a_trio_websocket_connection_is_written_and_stays_usable(clock: trio.testing.MockClock) -> None:
    """The internals FrameWriter reads are there in the installed trio-websocket, and a frame it
    writes is one the server reads; the connection's own sends and reads go on as before."""
    received: list[str] = []

    async def echo(request: WebSocketRequest) -> None:
        ws = await request.accept()
        while True:
            message = await ws.get_message()
            assert isinstance(message, str)
            received.append(message)
            await ws.send_message(f"echo {message}")

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, echo, "127.0.0.1", 0, None)
            async with open_websocket_url(f"ws://127.0.0.1:{server.port}/") as ws:
                writer = FrameWriter.of(ws)
                assert writer is not None
                assert writer.write("now-1") is True
                assert await ws.get_message() == "echo now-1"
                await ws.send_message("slow-2")  # trio-websocket's own path after ours
                assert await ws.get_message() == "echo slow-2"
                writer = FrameWriter.of(ws)
                assert writer is not None and writer.write("now-3") is True
                assert await ws.get_message() == "echo now-3"
                async with ws._stream_lock:  # a send_message in progress
                    assert FrameWriter.of(ws) is None
            assert ws.closed is not None
            assert FrameWriter.of(ws) is None
            assert received == ["now-1", "slow-2", "now-3"]
            nursery.cancel_scope.cancel()
