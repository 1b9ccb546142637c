"""The UDP receive thread (dynserver/server/udp.py, _Receiver) on real sockets: a close
under a flood, a snapshot swap while a batch is in flight (no reply from the old
snapshot leaves after the swap returned), the rate limiter applied to its cache hits
(with the credit it takes ahead, and exactly without one), and the limiter's events
recorded on the event loop."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from dynserver.dns.cookies import Cookies
from dynserver.dns.packet import PacketCache
from dynserver.dns.rrl import RateLimiter
from dynserver.dns.snapshot import Snapshot
from dynserver.model import Listener
from dynserver.server import udp
from dynserver.server.guard import Guard
from dynserver.server.udp import UdpServer
from tests.dns.zones import DYN
from tests.server.test_udp import THREADS, use_reader
from tests.snapshots import load_snapshot
from tests.support import loopback

NAME = "www.dyn.example.test"
OLD, NEW = "192.0.2.10", "192.0.2.99"  # www's address in the two snapshots


@pytest.fixture(autouse=True, params=THREADS)
def threaded(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return use_reader(str(request.param), monkeypatch)


class Holder:
    """What the runtime is to a listener: the current snapshot, read per query (the
    core) and per batch (the thread's packet cache)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def answer(self, data: bytes, tcp: bool, peer: tuple[str, int] | None = None) -> bytes | None:
        reply = self.snapshot.answer(data, tcp, peer)
        assert reply is None or isinstance(reply, bytes)
        return reply

    def packets(self) -> tuple[PacketCache, list[int]]:
        return self.snapshot.packet_cache()


def _addresses(data: bytes) -> set[str]:
    return {rd.to_text() for rrset in dns.message.from_wire(data).answer for rd in rrset}


def test_close_under_a_flood_stops_the_thread_at_once(tmp_path: Path) -> None:
    holder = Holder(load_snapshot(tmp_path, {"dyn.example.test": DYN}))
    query = dns.message.make_query(NAME, "A").to_wire()
    stop = threading.Event()
    sent = [0]

    def flood(address: tuple[str, int]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            while not stop.is_set():
                try:
                    sock.sendto(query, address)
                    sent[0] += 1
                except BlockingIOError:
                    time.sleep(0.0005)
                if sent[0] % 64 == 0:
                    # Drain the replies now and then, so the flood goes on.
                    while True:
                        try:
                            sock.recv(4096)
                        except BlockingIOError:
                            break

    async def main() -> None:
        server = UdpServer(Listener(loopback(), 0), holder.answer, packets=holder.packets)
        server.start()
        assert server.threaded
        receiver = server._receiver
        assert receiver is not None
        flooders = [threading.Thread(target=flood, args=(server.address,)) for _ in range(2)]
        for flooder in flooders:
            flooder.start()
        try:
            await asyncio.sleep(0.3)
            answered = holder.snapshot.stats.hits[:]
            started = time.monotonic()
            server.close()
            took = time.monotonic() - started
        finally:
            stop.set()
            for flooder in flooders:
                flooder.join()
        assert sum(answered) > 100, "the flood was being answered"
        assert not receiver._thread.is_alive()
        assert took < 0.5, f"close took {took:.3f} s"
        assert server._sock is None

    asyncio.run(main())


def test_close_when_idle_wakes_the_thread_at_once(tmp_path: Path) -> None:
    holder = Holder(load_snapshot(tmp_path, {"dyn.example.test": DYN}))

    async def main() -> None:
        server = UdpServer(Listener(loopback(), 0), holder.answer, packets=holder.packets)
        server.start()
        receiver = server._receiver
        assert receiver is not None
        await asyncio.sleep(0.05)  # the thread is in recvmmsg
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < udp.IDLE_WAKE_S / 2, "woken, not timed out"
        assert not receiver._thread.is_alive()

    asyncio.run(main())


def test_a_swap_mid_batch_lets_no_reply_from_the_old_snapshot_out_after_it(tmp_path: Path) -> None:
    """The thread reads the old snapshot for a batch, then dawdles (its packet source
    sleeps); the loop swaps meanwhile and, when the swap (with its fence) returns, sends
    a marker from the server's socket. The client's socket receives in order: replies
    before the marker may be old (that batch), every reply after it must be new."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = load_snapshot(tmp_path / "old", {"dyn.example.test": DYN})
    new = load_snapshot(tmp_path / "new", {"dyn.example.test": DYN.replace(OLD, NEW)})
    holder = Holder(old)
    in_batch = threading.Event()
    slow = threading.Event()

    def packets() -> tuple[PacketCache, list[int]]:
        cache = holder.packets()  # the snapshot, read once for the batch
        if slow.is_set() and not in_batch.is_set():
            in_batch.set()
            time.sleep(0.1)  # a long batch: the swap happens now
        return cache

    query = dns.message.make_query(NAME, "A").to_wire()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = UdpServer(Listener(loopback(), 0), holder.answer, packets=packets)
        server.start()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((loopback(), 0))
        client.setblocking(False)
        try:
            for _ in range(3):  # the first fills the packet cache, the others hit it
                client.sendto(query, server.address)
                assert _addresses(await asyncio.wait_for(loop.sock_recv(client, 4096), 5)) == {OLD}
            slow.set()
            for _ in range(20):
                client.sendto(query, server.address)
            while not in_batch.is_set():
                await asyncio.sleep(0.001)
            holder.snapshot = new  # Runtime.swap: the reference, then every listener's fence
            server.fence()
            assert server._sock is not None
            server._sock.sendto(b"MARK", client.getsockname())
            for _ in range(20):
                client.sendto(query, server.address)
            received = []
            while True:
                try:
                    received.append(await asyncio.wait_for(loop.sock_recv(client, 4096), 0.5))
                except TimeoutError:
                    break
        finally:
            client.close()
            server.close()
        mark = received.index(b"MARK")
        before = [_addresses(r) for r in received[:mark]]
        after = [_addresses(r) for r in received[mark + 1 :]]
        assert {OLD} in before, "the slow batch was answered from the old snapshot, before the mark"
        assert after and all(a == {NEW} for a in after), after
        assert len(before) + len(after) == 40

    asyncio.run(main())


def test_cache_hits_on_the_thread_are_rate_limited_exactly_without_credit(tmp_path: Path) -> None:
    snapshot = load_snapshot(tmp_path, {"dyn.example.test": DYN})
    holder = Holder(snapshot)
    limiter = RateLimiter(rate=10, slip=2, window=1.0)  # 10 a second: no credit (10 ms of it < 1)
    query = dns.message.make_query(NAME, "A").to_wire()
    replies, _ = _flood(holder, Guard(limiter, Cookies(bytes(16))), query, 100)
    answered = [r for r in replies if r.answer]
    slipped = [r for r in replies if r.flags & 0x0200]
    assert 10 <= len(answered) <= 12
    assert limiter.limited == 100 - len(answered) and len(slipped) == limiter.slipped == limiter.limited // 2


def test_the_thread_takes_credit_ahead_and_still_limits(tmp_path: Path) -> None:
    """rate 2,000 (credit: 10 ms of it, 20 tokens), window 0.05 s (a bucket of 100): a
    flood of 300 repeated queries gets about the bucket, plus what refills while it
    lasts, plus at most one credit."""
    snapshot = load_snapshot(tmp_path, {"dyn.example.test": DYN})
    holder = Holder(snapshot)
    limiter = RateLimiter(rate=2000, slip=0, window=0.05)
    query = dns.message.make_query(NAME, "A").to_wire()
    replies, took = _flood(holder, Guard(limiter, None), query, 300)
    answered = len(replies)
    assert limiter.limited > 0 and limiter.limited + answered == 300
    assert answered <= 100 + 2000 * took + 20 + 1, (answered, took)


def _flood(holder: Holder, guard: Guard, query: bytes, count: int) -> tuple[list[dns.message.Message], float]:
    """The query once (a miss, fills the cache; not counted), then ``count`` times from
    one socket, 50 at a time (within the socket's buffer); every reply that comes, and
    the time from the first query to the last reply."""

    async def main() -> tuple[list[dns.message.Message], float]:
        loop = asyncio.get_running_loop()
        server = UdpServer(Listener(loopback(), 0), holder.answer, packets=holder.packets, guard=guard)
        server.start()
        assert server.threaded
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(server.address)
                limiter = guard.limiter
                assert limiter is not None
                sock.send(query)
                await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
                limiter.limited = limiter.slipped = limiter.dropped = 0
                limiter._keys = [None] * len(limiter._keys)  # a full bucket again
                started = last = time.monotonic()
                for n in range(count):
                    sock.send(query)
                    if n % 50 == 49:
                        await asyncio.sleep(0.001)
                replies = []
                while True:
                    try:
                        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.5)
                    except TimeoutError:
                        return replies, last - started
                    last = time.monotonic()
                    replies.append(dns.message.from_wire(data))
        finally:
            server.close()

    return asyncio.run(main())


def test_the_limiters_events_from_the_thread_are_recorded_on_the_loop(tmp_path: Path) -> None:
    """App._add_event: a note of the limiter from a receive thread reaches the runtime's
    events through the event loop's thread."""
    from dynserver import config
    from dynserver.app import App
    from tests.support import write_config

    path = write_config(tmp_path, {"dyn.example.test": DYN}, "[server.rrl]\nrate = 1\n")
    loaded = config.load(path)
    app = App(loaded)
    threads: list[int] = []
    app.runtime.add_event = lambda event: threads.append(threading.get_ident())  # type: ignore[method-assign]
    query = dns.message.make_query(NAME, "A").to_wire()

    async def main() -> None:
        from dynserver.app import with_listeners

        app.config = with_listeners(app.config, [Listener(loopback(), 0)], None)
        await app.start()
        try:
            (server,) = app.udp
            assert server.threaded
            replies = 0
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(server.address)
                for _ in range(30):
                    sock.send(query)
                    await asyncio.sleep(0.002)
                while True:
                    try:
                        await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), 0.3)
                        replies += 1
                    except TimeoutError:
                        break
            assert replies < 30
        finally:
            await app.stop()

    asyncio.run(main())
    assert threads and set(threads) == {threading.get_ident()}, "on the loop's thread only"


def test_a_deferred_or_uncached_query_still_gets_its_answer_from_the_loop(tmp_path: Path) -> None:
    """Every query the cache cannot answer (NXDOMAIN the first time, a NOTIFY) is
    answered by the core on the event loop's thread."""
    snapshot = load_snapshot(tmp_path, {"dyn.example.test": DYN})
    threads: set[int] = set()

    def core(data: bytes, tcp: bool, peer: tuple[str, int] | None = None) -> bytes | None:
        threads.add(threading.get_ident())
        reply = snapshot.answer(data, tcp, peer)
        assert reply is None or isinstance(reply, bytes)
        return reply

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = UdpServer(Listener(loopback(), 0), core, packets=snapshot.packet_cache)
        server.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(server.address)
                sock.send(dns.message.make_query("nope.dyn.example.test", "A").to_wire())
                reply = dns.message.from_wire(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))
                assert reply.rcode() == dns.rcode.NXDOMAIN
        finally:
            server.close()

    asyncio.run(main())
    assert threads == {threading.get_ident()}


def _limited_floods(
    holder: Holder, guard: Guard, query: bytes, sources: list[tuple[socket.AddressFamily, str]], count: int
) -> list[int]:
    """The query once from each source (a miss, fills the cache), then ``count`` times
    from each, interleaved 10 at a time; the replies with an answer each source got."""

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        family = sources[0][0]
        host = "::1" if family == socket.AF_INET6 else loopback()
        server = UdpServer(Listener(host, 0), holder.answer, packets=holder.packets, guard=guard)
        server.start()
        socks = []
        try:
            for source_family, source in sources:
                sock = socket.socket(source_family, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((source, 0))
                sock.setblocking(False)
                sock.connect(server.address)
                sock.send(query)
                await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            for first in range(0, count, 10):
                for sock in socks:
                    for _ in range(min(10, count - first)):
                        sock.send(query)
                await asyncio.sleep(0.001)
            answered = []
            for sock in socks:
                got = 0
                while True:
                    try:
                        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.3)
                    except TimeoutError:
                        break
                    got += bool(dns.message.from_wire(data).answer)
                answered.append(got)
            return answered
        finally:
            for sock in socks:
                sock.close()
            server.close()

    return asyncio.run(main())


def test_the_limit_is_per_client_network_on_the_thread(tmp_path: Path) -> None:
    """Two clients in one /24 share a bucket; a client in another /24 has its own (the
    loops read the network from the address the kernel wrote)."""
    holder = Holder(load_snapshot(tmp_path, {"dyn.example.test": DYN}))
    limiter = RateLimiter(rate=10, slip=0, window=1.0)
    query = dns.message.make_query(NAME, "A").to_wire()
    base = loopback().rsplit(".", 2)[0]
    sources = [
        (socket.AF_INET, f"{base}.7.1"),
        (socket.AF_INET, f"{base}.7.2"),
        (socket.AF_INET, f"{base}.8.1"),
    ]
    shared_a, shared_b, own = _limited_floods(holder, Guard(limiter, None), query, sources, 60)
    # A bucket of 10, less the first query of each (the miss, charged through the guard),
    # plus what refills meanwhile: one bucket for the /24 of two, not one each (18).
    assert 8 <= shared_a + shared_b <= 11, (shared_a, shared_b)
    assert 9 <= own <= 11, own


def test_an_ipv6_flood_is_limited_on_the_thread(tmp_path: Path) -> None:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))
    except OSError as error:
        pytest.skip(f"IPv6 loopback unavailable: {error}")
    holder = Holder(load_snapshot(tmp_path, {"dyn.example.test": DYN}))
    limiter = RateLimiter(rate=10, slip=0, window=1.0)
    query = dns.message.make_query(NAME, "A").to_wire()
    (answered,) = _limited_floods(holder, Guard(limiter, None), query, [(socket.AF_INET6, "::1")], 80)
    assert 9 <= answered <= 11, answered
    assert limiter.limited >= 80 - answered


def test_a_failing_packet_source_is_logged_and_the_thread_serves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a batch (here: the packet source raises once) loses that batch, not the
    listener: the next query is answered."""
    holder = Holder(load_snapshot(tmp_path, {"dyn.example.test": DYN}))
    failed = threading.Event()

    def packets() -> tuple[PacketCache, list[int]]:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug in the snapshot")
        return holder.packets()

    query = dns.message.make_query(NAME, "A").to_wire()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = UdpServer(Listener(loopback(), 0), holder.answer, packets=packets)
        server.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(server.address)
                sock.send(query)
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.3)
                assert failed.is_set()
                sock.send(query)
                assert _addresses(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)) == {OLD}
        finally:
            server.close()

    with caplog.at_level("ERROR", logger="dynserver.server.udp"):
        asyncio.run(main())
    assert "error answering a UDP batch" in caplog.text


def test_garbage_between_cached_queries_never_gets_a_cached_answer(tmp_path: Path) -> None:
    """Datagrams of 0-3 bytes, replies (QR set), other opcodes, random bytes and a
    datagram longer than the read buffer, sent between repeats of a cached query: every
    repeat is answered from the cache, no garbage gets a cached answer, and the thread
    serves on."""
    holder = Holder(load_snapshot(tmp_path, {"dyn.example.test": DYN}))
    query = dns.message.make_query(NAME, "A").to_wire()
    rng = random.Random(20)
    garbage = [b"", b"\x00", b"\x12\x34\x01", query[:3]]
    garbage += [query[:2] + bytes((query[2] | flag,)) + query[3:] for flag in (0x80, 0x08, 0x10, 0x28, 0xF8)]
    garbage += [bytes(rng.randrange(256) for _ in range(rng.randrange(4, 80))) for _ in range(40)]
    garbage += [query + bytes(udp.RECV_SIZE + 100)]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = UdpServer(Listener(loopback(), 0), holder.answer, packets=holder.packets)
        server.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(server.address)
                sock.send(query)  # fills the cache
                assert _addresses(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)) == {OLD}
                for n, junk in enumerate(garbage):
                    ident = (n + 1).to_bytes(2, "big")
                    sock.send(ident + junk[2:] if len(junk) >= 2 else junk)
                    sock.send(b"\xff\xff" + query[2:])
                replies = []
                while True:
                    try:
                        replies.append(await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.3))
                    except TimeoutError:
                        break
                cached = [r for r in replies if r[:2] == b"\xff\xff"]
                assert len(cached) == len(garbage)
                assert all(_addresses(r) == {OLD} for r in cached)
                for reply in replies:
                    if reply[:2] != b"\xff\xff":
                        # at most an error to the garbage (FORMERR, NOTIMP...), never the answer
                        assert reply[3] & 0x0F != 0 or not reply[6:8].strip(b"\x00"), reply
        finally:
            server.close()

    asyncio.run(main())
