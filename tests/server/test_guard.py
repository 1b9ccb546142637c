"""Rate limiting and DNS Cookies on real sockets: the transports with a Guard around a real
snapshot, both UDP readers, floods from one client, TCP never limited, and dig and kdig
asking for cookies (their server cookie checked against an independent RFC 9018
computation, tests/dns/test_cookies.py)."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from dynserver.dns.cookies import Cookies
from dynserver.dns.rrl import RateLimiter
from dynserver.dns.snapshot import Snapshot
from dynserver.metrics import Metrics
from dynserver.model import Listener, RrlConfig, ServerConfig
from dynserver.server.guard import Guard, rrl_event
from dynserver.server.tcp import TcpServer
from dynserver.server.udp import UdpServer
from dynserver.store.db import EventRow
from tests.dns.test_cookies import independent_server_cookie
from tests.dns.zones import DYN
from tests.server.test_udp import READERS, use_reader
from tests.snapshots import load_snapshot
from tests.support import loopback, tcp_read, tcp_send

SECRET = bytes.fromhex("00112233445566778899aabbccddeeff")
NAME = "www.dyn.example.test"
CLIENT_ADDRESS = "127.0.0.1"  # the source address of an unbound socket (and of dig) here


@pytest.fixture(params=READERS)
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return use_reader(str(request.param), monkeypatch)


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    return load_snapshot(tmp_path, {"dyn.example.test": DYN})


@asynccontextmanager
async def serving(snapshot: Snapshot, guard: Guard) -> AsyncIterator[tuple[str, int]]:
    host = loopback()
    server = UdpServer(Listener(host, 0), snapshot.answer, packets=snapshot.packet_cache, guard=guard)
    server.start()
    port = server.address[1]
    config = ServerConfig(dns=(), http=None)
    tcp = TcpServer(Listener(host, port), snapshot.answer, config, guard=guard)
    await tcp.start()
    try:
        yield host, port
    finally:
        server.close()
        await tcp.close()


async def flood(host: str, port: int, queries: list[bytes]) -> list[dns.message.Message]:
    """Send every query from one socket, then collect the replies that come."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((host, port))
        for query in queries:
            sock.send(query)
        replies = []
        while True:
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.5)
            except TimeoutError:
                return replies
            replies.append(dns.message.from_wire(data))


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())  # type: ignore[arg-type]


def test_a_flood_from_one_network_is_limited_and_every_second_reply_slips(
    reader: str, snapshot: Snapshot
) -> None:
    limiter = RateLimiter(rate=10, slip=2, window=1.0)
    guard = Guard(limiter, Cookies(SECRET))
    query = dns.message.make_query(NAME, "A").to_wire()

    async def body() -> None:
        async with serving(snapshot, guard) as (host, port):
            replies = await flood(host, port, [query] * 100)
        answered = [r for r in replies if not r.flags & dns.flags.TC]
        slipped = [r for r in replies if r.flags & dns.flags.TC]
        assert 10 <= len(answered) <= 12, "the rate, plus what refilled during the flood"
        assert all(r.answer for r in answered)
        assert all(not r.answer and r.question and r.rcode() == dns.rcode.NOERROR for r in slipped)
        assert limiter.limited == 100 - len(answered)
        assert len(slipped) == limiter.slipped == limiter.limited // 2
        assert limiter.dropped == limiter.limited - limiter.slipped

    run(body)


def test_tcp_is_never_limited(snapshot: Snapshot) -> None:
    guard = Guard(RateLimiter(rate=1, slip=2, window=1.0), None)
    query = dns.message.make_query(NAME, "A").to_wire()

    async def body() -> None:
        async with serving(snapshot, guard) as (host, port):

            def ask() -> list[dns.message.Message]:
                with socket.create_connection((host, port), timeout=5) as sock:
                    replies = []
                    for _ in range(50):
                        tcp_send(sock, query)
                        replies.append(dns.message.from_wire(tcp_read(sock)))
                    return replies

            replies = await asyncio.to_thread(ask)
        assert len(replies) == 50 and all(r.answer and not r.flags & dns.flags.TC for r in replies)

    run(body)


def _cookie_query(value: bytes) -> bytes:
    query = dns.message.make_query(NAME, "A", use_edns=0)
    query.use_edns(0, options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, value)])
    return query.to_wire()


def _cookie_of(message: dns.message.Message) -> bytes | None:
    found = [o.to_wire() for o in message.options if o.otype == dns.edns.OptionType.COOKIE]
    return found[0] if found else None


def test_a_valid_server_cookie_is_exempt_and_a_client_cookie_alone_slips_badcookie(
    reader: str, snapshot: Snapshot
) -> None:
    limiter = RateLimiter(rate=5, slip=1, window=1.0)
    guard = Guard(limiter, Cookies(SECRET))
    client = bytes.fromhex("0102030405060708")

    async def body() -> None:
        async with serving(snapshot, guard) as (host, port):
            first = await flood(host, port, [_cookie_query(client)])
            full = _cookie_of(first[0])
            assert full is not None and full[:8] == client and len(full) == 24
            stamp = int.from_bytes(full[12:16], "big")
            assert full[8:] == independent_server_cookie(SECRET, client, CLIENT_ADDRESS, stamp)
            proven = await flood(host, port, [_cookie_query(full)] * 60)
            assert len(proven) == 60 and all(r.answer for r in proven), "exempt from RRL"
            assert all(_cookie_of(r) == full for r in proven), "a fresh cookie is sent back as it is"
            alone = await flood(host, port, [_cookie_query(client)] * 30)
        bad = [r for r in alone if r.rcode() == dns.rcode.BADCOOKIE]
        assert len(alone) == 30 and 20 <= len(bad) <= 25, "over the limit: BADCOOKIE, not TC"
        for reply in bad:
            cookie = _cookie_of(reply)
            assert cookie is not None and cookie[:8] == client and not reply.answer

    run(body)


async def _tool(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    return out.decode()


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_dig_and_kdig_get_a_server_cookie_they_can_send_back(snapshot: Snapshot, tool: str) -> None:
    program = shutil.which(tool)
    if program is None:
        pytest.skip(f"{tool} is not installed")
    guard = Guard(RateLimiter(rate=1000, slip=2, window=1.0), Cookies(SECRET))

    async def body() -> None:
        async with serving(snapshot, guard) as (host, port):
            first = await _tool(program, f"@{host}", "-p", str(port), "+cookie", NAME, "A")
            match = re.search(r"COOKIE: ([0-9a-fA-F]{16})([0-9a-fA-F]{32})", first)
            assert match is not None, first
            client, server = bytes.fromhex(match.group(1)), bytes.fromhex(match.group(2))
            stamp = int.from_bytes(server[4:8], "big")
            assert server == independent_server_cookie(SECRET, client, CLIENT_ADDRESS, stamp)
            assert "NOERROR" in first and "192.0.2.10" in first
            again = await _tool(
                program, f"@{host}", "-p", str(port), f"+cookie={(client + server).hex()}", NAME, "A"
            )
            assert "NOERROR" in again and "192.0.2.10" in again
            if tool == "dig":
                assert "(good)" in again, again  # dig says so when our cookie came back
            assert server.hex() in again.lower()

    run(body)


def test_from_config(snapshot: Snapshot) -> None:
    guard = Guard.from_config(ServerConfig(dns=(), http=None, cookie_secret=SECRET))
    assert guard.limiter is not None and guard.cookies is not None


def test_limiting_is_counted_in_metrics_and_told_in_events() -> None:
    rows: list[EventRow] = []
    guard = Guard.from_config(
        ServerConfig(dns=(), http=None, rrl=RrlConfig(rate=2, slip=2)), event=rrl_event(rows.append)
    )
    assert guard.limiter is not None
    metrics = Metrics(process=False)
    metrics.watch_rrl(guard.limiter)
    for _ in range(6):
        guard.limiter.verdict(b"\x7f\x00\x00", b"E", 1.0)
    text = metrics.render().decode()
    assert "dynserver_rrl_limited_total 4.0" in text
    assert 'dynserver_rrl_replies_total{result="slipped"} 2.0' in text
    assert 'dynserver_rrl_replies_total{result="dropped"} 2.0' in text
    assert [(r.kind, r.target, r.result) for r in rows] == [("rrl", "127.0.0.0/24", "started")]
    assert Guard.from_config(ServerConfig(dns=(), http=None, rrl=RrlConfig(enabled=False))).limiter is None


def test_the_guard_never_raises_on_mutated_queries(snapshot: Snapshot) -> None:
    """Random bytes flipped in queries with cookies and options: whatever the core
    answers, the guard returns bytes or None."""
    rng = random.Random(15)
    guard = Guard(RateLimiter(rate=5, slip=2, window=1.0), Cookies(SECRET), clock=lambda: 1_700_000_000.0)
    seeds = [
        _cookie_query(bytes(8)),
        _cookie_query(bytes(24)),
        dns.message.make_query(NAME, "A", use_edns=0).to_wire(),
        dns.message.make_query(NAME, "TXT", want_dnssec=True).to_wire(),
    ]
    for n in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if n % 7 == 0:
            data = data[: rng.randrange(12, len(data) + 1)]
        reply = snapshot.answer(bytes(data), False)
        if isinstance(reply, bytes):
            out = guard.reply(bytes(data), reply, ("192.0.2.1", 53), n % 2 == 0)
            assert out is None or isinstance(out, bytes)
