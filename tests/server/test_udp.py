"""The UDP transport, every reader (the receive thread's loop in C and in Python, the
event loop's recvmmsg/sendmmsg batches, and plain recvfrom/sendto),
against real sockets: every query gets its own reply at its own client, in bursts larger
than a batch, from IPv4 and IPv6 clients; dropped, deferred and failing answers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable

import pytest

from dynserver.model import Listener
from dynserver.server import udp
from dynserver.server.udp import UdpServer
from tests.support import IN_CI, loopback

# The receive thread's loop in C (dynserver/server/_hitloop.c) and in Python, the event
# loop's batches, recvfrom.
READERS = ["native", "thread", "mmsg", "plain"]
THREADS = ["native", "thread"]  # the receive thread's two loops


@pytest.fixture(params=READERS)
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return use_reader(str(request.param), monkeypatch)


def use_reader(reader: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make UdpServer.start pick ``reader`` (one of READERS)."""
    if reader != "plain" and not udp._mmsg_available():
        pytest.skip("recvmmsg/sendmmsg are Linux-only")
    if reader == "native" and udp._hitloop is None:
        message = "the C loop is not built (make builds it: needs gcc, libc6-dev, python3-dev)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    monkeypatch.setenv(udp.MMSG_ENV, "0" if reader == "plain" else "1")
    monkeypatch.setenv(udp.THREAD_ENV, "1" if reader in THREADS else "0")
    monkeypatch.setenv(udp.NATIVE_ENV, "1" if reader == "native" else "0")
    return reader


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
        assert server.batched is (reader != "plain")
        assert server.threaded is (reader in THREADS)
        assert server.native is (reader == "native")
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


def test_long_queries_in_the_slots_of_short_replies_are_read_whole(reader: str) -> None:
    """A reply shortens its slot's iovec for sendmmsg; the next query in that slot is
    still read up to RECV_SIZE (the batched readers keep separate receive headers)."""

    async def body(server: UdpServer, clients: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        (sock,) = clients
        for size in (1, 3000, 2, 4000, 1, 2500):
            for n in range(5):
                sock.sendto(b"%d" % n + b"x" * (size - 1), server.address)
            replies = await receive(loop, sock, 5)
            assert sorted(int(reply.rsplit(b"|", 1)[1]) for reply in replies) == [size] * 5

    serve(loopback(), socket.AF_INET, 1, body)


def test_repeated_queries_are_served_from_the_snapshot_packet_cache(reader: str) -> None:
    """Through the real core: the batched reader serves repeats from the packet cache
    itself (ID and RD from each query, counters moved), and what the cache may not answer
    (QR set, another opcode) still reaches the core."""
    import tempfile
    from pathlib import Path

    import dns.flags
    import dns.message
    import dns.rcode

    from tests.dns.zones import BIG_ZONES
    from tests.snapshots import load_snapshot

    snapshot = load_snapshot(Path(tempfile.mkdtemp()), BIG_ZONES)
    calls: list[bytes] = []

    def core(data: bytes, tcp: bool, peer: tuple[str, int]) -> bytes | None:
        calls.append(data)
        reply = snapshot.answer(data, tcp, peer)
        assert reply is None or isinstance(reply, bytes)
        return reply

    query = dns.message.make_query("www.dyn.example.test.", "A", use_edns=0, payload=1232)

    async def main() -> None:
        server = UdpServer(Listener(loopback(), 0), core, packets=snapshot.packet_cache)  # type: ignore[arg-type]
        server.start()
        loop = asyncio.get_running_loop()
        sock = _client(socket.AF_INET, server.address[0])
        try:
            replies = []
            for n in range(6):
                query.id = 1000 + n
                query.flags = dns.flags.RD if n % 2 else 0
                sock.sendto(query.to_wire(), server.address)
                (reply,) = await receive(loop, sock, 1)
                replies.append(dns.message.from_wire(reply))
            for n, reply in enumerate(replies):
                assert reply.id == 1000 + n
                assert bool(reply.flags & dns.flags.RD) == bool(n % 2)
                assert reply.flags & dns.flags.AA and reply.rcode() == dns.rcode.NOERROR
                assert [str(rrset) for rrset in reply.answer] == ["www.dyn.example.test. 300 IN A 192.0.2.10"]
            served_by_core = len(calls)
            # The first asks build the template and fill the cache; from then on the
            # reader (thread, mmsg) or Snapshot.answer (plain reader) serves the repeats.
            if reader != "plain":
                assert 1 <= served_by_core <= 2
            else:
                assert served_by_core == 6
            wire = bytearray(query.to_wire())
            wire[2] |= 0x80  # QR: a reply, never answered
            sock.sendto(bytes(wire), server.address)
            wire[2] = (wire[2] & 0x07) | 0x20  # opcode NOTIFY (4)
            sock.sendto(bytes(wire), server.address)
            (notify,) = await receive(loop, sock, 1)
            assert len(calls) == served_by_core + 2, "both went to the core"
            assert dns.message.from_wire(notify).id == query.id
        finally:
            sock.close()
            server.close()

    asyncio.run(main())
    counted = sum(count for _, _, _, count in snapshot.stats.totals())
    assert counted == 7, "six queries and the NOTIFY counted, wherever they were answered"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_queries_that_arrive_before_the_reader_starts_are_answered_when_it_does(
    reader: str, loop: str
) -> None:
    # The server binds its listeners first and reads them only once everything else has
    # started (issue 15): what arrives in between waits in the socket, none of it is lost.
    host = loopback()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    clients = [_client(socket.AF_INET, host) for _ in range(100)]
    for i, client in enumerate(clients):
        client.sendto(b"early%d" % i, sock.getsockname())

    async def main() -> None:
        server = UdpServer(Listener(host, 0), echo)  # type: ignore[arg-type]
        server.start(sock)
        try:
            running = asyncio.get_running_loop()
            for i, client in enumerate(clients):
                reply = await asyncio.wait_for(running.sock_recv(client, 65535), 5)
                assert reply.startswith(b"early%d|%s|%d|" % (i, host.encode(), client.getsockname()[1]))
        finally:
            server.close()
            for client in clients:
                client.close()

    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


def test_queries_queued_when_the_listener_closes_are_answered_before_it_does(reader: str) -> None:
    # A reload that removes a listener, or a stop, closes its socket: what the kernel
    # already queued in it is answered first, not dropped with it.
    host = loopback()
    clients = [_client(socket.AF_INET, host) for _ in range(100)]

    async def main() -> None:
        server = UdpServer(Listener(host, 0), echo)  # type: ignore[arg-type]
        server.start()
        for i, client in enumerate(clients):
            client.sendto(b"last%d" % i, server.address)
        time.sleep(0.05)  # delivered (loopback may defer to a softirq), with no loop turn
        server.close()
        running = asyncio.get_running_loop()
        try:
            for i, client in enumerate(clients):
                reply = await asyncio.wait_for(running.sock_recv(client, 65535), 5)
                assert reply.startswith(b"last%d|" % i)
        finally:
            for client in clients:
                client.close()

    asyncio.run(main())
