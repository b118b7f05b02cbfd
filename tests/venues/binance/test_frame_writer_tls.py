"""The immediate frame write over TLS: a real ``trio.SSLStream`` on a loopback socket pair.

The frame is encrypted with the stream's own SSL object and sent with one non-blocking ``send``;
the peer must decrypt it as one WebSocket text frame, and the stream must stay usable for
``send_all`` afterwards (the TLS record sequence continues). A stream that is not handshaken or
is busy writing is declined; a write the kernel does not take whole closes the socket.
"""

from __future__ import annotations

import socket
import ssl

import pytest
import trio
import trustme
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from fundarb.venues.binance._frame_writer import FrameWriter


class FakeWs:
    """The three trio-websocket internals FrameWriter reads, around a real stream."""

    closed = None

    def __init__(self, stream: trio.abc.Stream, proto: WSConnection) -> None:
        self._stream = stream
        self._wsproto = proto
        self._stream_lock = trio.Lock()


def _ws_pair() -> tuple[WSConnection, WSConnection]:
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="localhost", target="/ws-api/v3")))
    list(server.events())
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    return client, server


@pytest.fixture
def sockets():
    """Socket pairs made by a test, closed after it."""
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def _socketpair(made: list[socket.socket]) -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    made += [a, b]
    return a, b


async def _tls_pair(
    made: list[socket.socket], sndbuf: int | None = None
) -> tuple[trio.SSLStream, trio.SSLStream, socket.socket]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    a, b = _socketpair(made)
    if sndbuf is not None:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    client = trio.SSLStream(
        trio.SocketStream(trio.socket.from_stdlib_socket(a)), client_ctx, server_hostname="localhost"
    )
    server = trio.SSLStream(
        trio.SocketStream(trio.socket.from_stdlib_socket(b)), server_ctx, server_side=True
    )
    async with trio.open_nursery() as n:
        n.start_soon(client.do_handshake)
        n.start_soon(server.do_handshake)
    return client, server, a


async def _read_messages(server: trio.SSLStream, proto: WSConnection, count: int) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        proto.receive_data(await server.receive_some())
        out += [e.data for e in proto.events() if isinstance(e, TextMessage)]
    return out


async def test_a_frame_written_at_once_over_tls_is_decrypted_by_the_peer_and_the_stream_goes_on(sockets):
    client, server, _ = await _tls_pair(sockets)
    client_proto, server_proto = _ws_pair()
    ws = FakeWs(client, client_proto)
    writer = FrameWriter.of(ws)  # type: ignore[arg-type]
    assert writer is not None
    frame = '{"id":"r1","method":"order.place","params":{"symbol":"BTCUSDT"}}'
    assert writer.write(frame) is True
    # the TLS record sequence goes on: a normal send_all after it is read in order
    await client.send_all(client_proto.send(TextMessage(data="after")))
    assert await _read_messages(server, server_proto, 2) == [frame, "after"]
    # and immediate writes can follow each other
    assert FrameWriter.of(ws).write("third") is True  # type: ignore[union-attr]
    assert await _read_messages(server, server_proto, 1) == ["third"]


async def test_a_tls_stream_that_is_not_handshaken_or_is_writing_is_declined(sockets):
    ca = trustme.CA()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    a, _b = _socketpair(sockets)
    fresh = trio.SSLStream(
        trio.SocketStream(trio.socket.from_stdlib_socket(a)), client_ctx, server_hostname="localhost"
    )
    assert FrameWriter.of(FakeWs(fresh, _ws_pair()[0])) is None  # type: ignore[arg-type]

    client, _server, _ = await _tls_pair(sockets)
    ws = FakeWs(client, _ws_pair()[0])
    await client._inner_send_lock.acquire()  # trio is mid-write on this stream
    try:
        assert FrameWriter.of(ws) is None  # type: ignore[arg-type]
    finally:
        client._inner_send_lock.release()
    assert FrameWriter.of(ws) is not None  # type: ignore[arg-type]


async def test_a_tls_frame_the_kernel_does_not_take_whole_closes_the_socket(sockets):
    client, _server, raw = await _tls_pair(sockets, sndbuf=4096)
    ws = FakeWs(client, _ws_pair()[0])
    writer = FrameWriter.of(ws)  # type: ignore[arg-type]
    assert writer is not None
    # the peer does not read: a multi-megabyte frame cannot leave whole; its record cannot be
    # sent twice, so the connection is closed and the request must count as lost
    assert writer.write("x" * 8_000_000) is False
    assert raw.fileno() == -1
