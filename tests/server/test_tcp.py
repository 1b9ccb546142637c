"""The TCP transport (RFC 7766) against real sockets on 127.x: pipelined queries answered
in order (deferred replies and transfer streams included), the idle and message timeouts,
the per-client and total connection limits, and malformed length prefixes."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import pytest

from dynserver.dns.snapshot import Snapshot
from dynserver.model import Listener, ServerConfig
from dynserver.server.tcp import TcpServer
from dynserver.types import Answerer, Stream
from tests.dns.zones import DYN
from tests.snapshots import load_snapshot
from tests.support import loopback

Reply = bytes | Stream | Awaitable[bytes | None] | None
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# Longest wait for something that happens at once or after a short timeout.
PATIENCE = 5.0


def scripted(data: bytes, tcp: bool, peer: tuple[str, int]) -> Reply:
    """Echo with a prefix; ``later...`` is answered after a pause (as an UPDATE is),
    ``xfr...`` by three messages (as a transfer is), ``drop...`` not at all."""
    assert tcp
    if data.startswith(b"later"):

        async def wait() -> bytes:
            await asyncio.sleep(0.05)
            return b"re:" + data

        return wait()
    if data.startswith(b"xfr"):
        return Stream(iter([b"xfr:1", b"xfr:2", b"xfr:3"]))
    if data.startswith(b"drop"):
        return None
    return b"re:" + data


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    folder: Path = tmp_path_factory.mktemp("zones")
    return load_snapshot(folder, {"dyn.example.test": DYN})


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


@asynccontextmanager
async def serving(answer: Answerer, **limits: Any) -> AsyncIterator[TcpServer]:
    server = TcpServer(Listener(loopback(), 0), answer, ServerConfig(dns=(), http=None, **limits))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@asynccontextmanager
async def connected(server: TcpServer, source: str | None = None) -> AsyncIterator[Connection]:
    host, port = server.address
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):  # the server may have reset it
            await writer.wait_closed()


def framed(*messages: bytes) -> bytes:
    return b"".join(len(message).to_bytes(2, "big") + message for message in messages)


async def receive(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(PATIENCE):
        length = int.from_bytes(await reader.readexactly(2), "big")
        return await reader.readexactly(length)


async def closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection; it must send nothing before."""
    started = time.monotonic()
    async with asyncio.timeout(PATIENCE):
        assert await reader.read() == b"", "the server sent something before closing"
    return time.monotonic() - started


async def answered(server: TcpServer, source: str | None = None) -> bool:
    """Whether a new connection (from ``source``) gets a reply, or is closed at once
    (reset, when our query reaches a socket the server already closed)."""
    async with connected(server, source) as (reader, writer):
        writer.write(framed(b"ping"))
        try:
            return await receive(reader) == b"re:ping"
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return False


def queries(*names: str) -> Iterator[dns.message.QueryMessage]:
    for ident, name in enumerate(names, start=100):
        query = dns.message.make_query(name, "A")
        query.id = ident
        yield query


# -- pipelining ---------------------------------------------------------------------------


def test_pipelined_queries_are_answered_in_order_on_one_connection(snapshot: Snapshot) -> None:
    async def body() -> None:
        async with serving(snapshot.answer) as server, connected(server) as (reader, writer):
            sent = list(queries("www.dyn.example.test.", "nope.dyn.example.test.", "mail.dyn.example.test."))
            writer.write(framed(*(query.to_wire() for query in sent)))  # one write, three queries
            replies = [dns.message.from_wire(await receive(reader)) for _ in sent]
            assert [reply.id for reply in replies] == [query.id for query in sent]
            assert [reply.rcode() for reply in replies] == [
                dns.rcode.NOERROR,
                dns.rcode.NXDOMAIN,
                dns.rcode.NOERROR,
            ]
            assert str(replies[0].answer[0][0]) == "192.0.2.10"

    run(body)


def test_a_deferred_reply_and_a_stream_keep_their_place_in_the_pipeline() -> None:
    async def body() -> None:
        async with serving(scripted) as server, connected(server) as (reader, writer):
            writer.write(framed(b"one", b"later-two", b"xfr-three", b"four"))
            got = [await receive(reader) for _ in range(6)]
            assert got == [b"re:one", b"re:later-two", b"xfr:1", b"xfr:2", b"xfr:3", b"re:four"]

    run(body)


# -- timeouts ------------------------------------------------------------------------------


def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    async def body() -> None:
        async with serving(scripted, tcp_idle_timeout=0.5) as server, connected(server) as (reader, writer):
            writer.write(framed(b"one"))
            assert await receive(reader) == b"re:one"
            idle = await closed_after(reader)  # the server's clock started a little earlier
            assert idle >= 0.3, f"closed after {idle:.2f} s, well before the idle timeout"

    run(body)


def test_a_message_must_arrive_within_the_message_timeout() -> None:
    async def body() -> None:
        limits = {"tcp_idle_timeout": 30.0, "tcp_message_timeout": 0.3}
        async with serving(scripted, **limits) as server, connected(server) as (reader, writer):
            writer.write((100).to_bytes(2, "big") + b"only ten b")  # 90 bytes never come
            waited = await closed_after(reader)
            assert 0.25 <= waited < limits["tcp_idle_timeout"], f"closed after {waited:.2f} s"

    run(body)


# -- connection limits --------------------------------------------------------------------


def test_a_client_over_its_connection_limit_is_closed_at_once_and_others_are_not() -> None:
    async def body() -> None:
        client, other = loopback(), loopback()
        async with (
            serving(scripted, tcp_max_connections_per_client=2) as server,
            connected(server, client) as first,
            connected(server, client) as (reader, writer),
        ):
            for each_reader, each_writer in (first, (reader, writer)):
                each_writer.write(framed(b"hello"))
                assert await receive(each_reader) == b"re:hello"  # both are being served
            assert not await answered(server, client), "a third connection from the client"
            assert await answered(server, other), "another client is not limited by this one"
            writer.write_eof()  # the server sees the end, frees the slot, then closes
            await closed_after(reader)
            assert await answered(server, client), "a closed connection frees its slot"

    run(body)


def test_connections_over_the_total_limit_are_closed_at_once() -> None:
    async def body() -> None:
        async with (
            serving(scripted, tcp_max_connections=2) as server,
            connected(server, loopback()) as first,
            connected(server, loopback()) as (reader, writer),
        ):
            for each_reader, each_writer in (first, (reader, writer)):
                each_writer.write(framed(b"hello"))
                assert await receive(each_reader) == b"re:hello"
            assert not await answered(server, loopback())
            writer.write_eof()
            await closed_after(reader)
            assert await answered(server, loopback()), "a closed connection frees its slot"

    run(body)


# -- malformed lengths --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        (framed(b""), "a zero length: no header to answer"),
        (framed(b"\x12\x34\x01"), "shorter than a header: dropped, as over UDP"),
        (b"\x00", "half a length prefix, then the end"),
        ((50).to_bytes(2, "big") + b"\x12\x34\x01\x00", "fewer bytes than the length says, then the end"),
    ],
)
def test_a_malformed_length_ends_the_connection_without_a_reply(
    snapshot: Snapshot, sent: bytes, why: str
) -> None:
    async def body() -> None:
        async with serving(snapshot.answer) as server:
            async with connected(server) as (reader, writer):
                writer.write(sent)
                writer.write_eof()
                await closed_after(reader)
            async with connected(server) as (reader, writer):  # and the server keeps serving
                query = next(queries("www.dyn.example.test."))
                writer.write(framed(query.to_wire()))
                assert dns.message.from_wire(await receive(reader)).id == query.id, why

    run(body)


def test_a_message_shorter_than_its_question_gets_formerr_and_the_connection_goes_on(
    snapshot: Snapshot,
) -> None:
    async def body() -> None:
        async with serving(snapshot.answer) as server, connected(server) as (reader, writer):
            header = struct.pack("!HHHHHH", 0x4242, 0, 1, 0, 0, 0)  # one question, then nothing
            writer.write(framed(header + b"\x03www"))
            reply = await receive(reader)
            assert reply[:2] == b"\x42\x42" and reply[3] & 0xF == dns.rcode.FORMERR
            query = next(queries("www.dyn.example.test."))
            writer.write(framed(query.to_wire()))
            assert dns.message.from_wire(await receive(reader)).id == query.id

    run(body)


def test_a_message_the_core_drops_ends_the_connection() -> None:
    async def body() -> None:
        async with serving(scripted) as server, connected(server) as (reader, writer):
            writer.write(framed(b"one", b"drop-this", b"never-read"))
            assert await receive(reader) == b"re:one"
            await closed_after(reader)

    run(body)
