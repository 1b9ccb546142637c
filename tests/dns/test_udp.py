"""The UDP transport, both readers (recvmmsg/sendmmsg batches and plain recvfrom/sendto),
against real sockets: every query gets its own reply at its own client, in bursts larger
than a batch, from IPv4 and IPv6 clients; dropped, deferred and failing answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable

import pytest

from dynserver.model import Listener
from dynserver.server import udp
from dynserver.server.udp import UdpServer
from tests.support import loopback

READERS = ["mmsg", "plain"]


@pytest.fixture(params=READERS)
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "mmsg" and not udp._mmsg_available():
        pytest.skip("recvmmsg/sendmmsg are Linux-only")
    monkeypatch.setenv(udp.MMSG_ENV, "1" if request.param == "mmsg" else "0")
    return str(request.param)


def echo(data: bytes, tcp: bool, peer: tuple[str, int]) -> bytes | Awaitable[bytes | None] | None:
    """Reply with the query, the peer it came from and the size it had."""
    if data.startswith(b"drop"):
        return None
    if data.startswith(b"boom"):
        raise RuntimeError("a bug in the core")
    if data.startswith(b"later"):

        async def wait() -> bytes:
            await asyncio.sleep(0.05)
            return b"late:" + data

        return wait()
    return b"%s|%s|%d|%d" % (data, peer[0].encode(), peer[1], len(data))


def serve(host: str, family: socket.AddressFamily, clients: int, body: object) -> None:
    async def main() -> None:
        server = UdpServer(Listener(host, 0), echo)  # type: ignore[arg-type]
        server.start()
        try:
            await body(server, [_client(family, host) for _ in range(clients)])  # type: ignore[operator]
        finally:
            server.close()

    asyncio.run(main())


def _client(family: socket.AddressFamily, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


async def receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, count: int) -> list[bytes]:
    replies = []
    for _ in range(count):
        replies.append(await asyncio.wait_for(loop.sock_recv(sock, 65535), 5))
    return replies


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_bursts_from_many_clients_each_get_their_own_replies(
    reader: str, family: socket.AddressFamily
) -> None:
    host = loopback() if family == socket.AF_INET else "::1"
    if family == socket.AF_INET6:
        try:
            _client(family, host).close()
        except OSError as error:
            pytest.skip(f"IPv6 loopback unavailable: {error}")
    per_client = udp.BATCH * 2 + 7  # more than one batch from each, interleaved

    async def body(server: UdpServer, clients: list[socket.socket]) -> None:
        assert server.batched is (reader == "mmsg")
        loop = asyncio.get_running_loop()
        address = server.address
        for n in range(per_client):
            for c, sock in enumerate(clients):
                sock.sendto(b"q%d-%d" % (c, n), address)
            if n % 10 == 9:
                await asyncio.sleep(0.002)  # let the server drain: stay within the socket buffers
        for c, sock in enumerate(clients):
            replies = await receive(loop, sock, per_client)
            chost, cport = sock.getsockname()[:2]
            expected = [
                b"q%d-%d|%s|%d|%d" % (c, n, chost.encode(), cport, len(b"q%d-%d" % (c, n)))
                for n in range(per_client)
            ]
            assert sorted(replies) == sorted(expected)

    serve(host, family, 3, body)


def test_dropped_failing_and_deferred_answers(reader: str) -> None:
    async def body(server: UdpServer, clients: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        (sock,) = clients
        for message in (b"drop-1", b"boom-1", b"later-1", b"plain-1", b"drop-2", b"plain-2"):
            sock.sendto(message, server.address)
        replies = await receive(loop, sock, 3)
        host, port = sock.getsockname()[:2]
        assert set(replies) == {
            b"plain-1|%s|%d|7" % (host.encode(), port),
            b"plain-2|%s|%d|7" % (host.encode(), port),
            b"late:later-1",
        }
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(sock, 65535), 0.3)  # nothing for drop/boom

    serve(loopback(), socket.AF_INET, 1, body)


def test_an_oversized_datagram_is_cut_to_the_receive_size(reader: str) -> None:
    async def body(server: UdpServer, clients: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        (sock,) = clients
        sock.sendto(b"x" * (udp.RECV_SIZE + 500), server.address)
        sock.sendto(b"small", server.address)
        replies = await receive(loop, sock, 2)
        sizes = sorted(int(reply.rsplit(b"|", 1)[1]) for reply in replies)
        assert sizes == [5, udp.RECV_SIZE]

    serve(loopback(), socket.AF_INET, 1, body)
