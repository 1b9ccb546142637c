"""The packet-cache contract (dynserver/dns/packet.py) against the snapshot that fills the
cache: its entries are ``packet.entry`` of its replies, and ``packet.serve`` gives what
Snapshot.answer gives from them."""

from __future__ import annotations

import struct
from pathlib import Path

import dns.message
import pytest

from dynserver.dns import packet
from dynserver.dns.snapshot import Snapshot
from dynserver.dns.wire import AA, CD, OPCODE_MASK, OPCODE_NOTIFY, OPCODE_UPDATE, QR, RD, TC
from tests.dns.zones import DYN
from tests.snapshots import load_snapshot


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    return load_snapshot(tmp_path, {"dyn.example.test": DYN})


def cached_query(snapshot: Snapshot, name: str, **options: object) -> bytes:
    """A query the snapshot has answered over UDP, so its packet is in the cache."""
    query = dns.message.make_query(name, "A", **options).to_wire()  # type: ignore[arg-type]
    snapshot.answer(query, False)
    snapshot.answer(query, False)  # the first may take the full path; this one is cached
    cache, _ = snapshot.packet_cache()
    assert query[packet.KEY_START :] in cache
    return query


def with_header(query: bytes, ident: int, flags: int) -> bytes:
    return struct.pack("!HH", ident, flags) + query[packet.KEY_START :]


@pytest.mark.parametrize(
    "options", [{"use_edns": False}, {"use_edns": 0, "payload": 1232, "want_dnssec": True}]
)
def test_an_entry_is_the_reply_after_its_id_for_rd_clear_and_set(
    snapshot: Snapshot, options: dict[str, object]
) -> None:
    query = cached_query(snapshot, "WwW.dyn.example.test.", **options)
    cache, _ = snapshot.packet_cache()
    without_rd, with_rd, stat = cache[query[packet.KEY_START :]]
    fresh = Snapshot(snapshot.zones, warm=False)
    for flags, tail in ((0, without_rd), (RD, with_rd)):
        reply = fresh.answer(with_header(query, 0x1234, flags), False)
        assert isinstance(reply, bytes)
        assert reply[: packet.ID_END] == b"\x12\x34" and reply[packet.ID_END :] == tail
    question_end = query.index(0, 12) + 5
    question, body = query[12:question_end], without_rd[10 + question_end - 12 :]
    assert b"WwW" in question, "the question bytes as the client sent them"
    assert cache[query[packet.KEY_START :]] == packet.entry(
        packet.heads(without_rd[:10]), question, body, stat
    )


@pytest.mark.parametrize(
    ("flags", "served"),
    [
        (0, True),
        (RD, True),
        (RD | CD, True),  # the second flags byte is not looked at
        (AA | TC, True),  # they mean nothing in a query
        (QR, False),  # a reply is not a query
        (QR | RD, False),
        (OPCODE_NOTIFY << 11, False),
        (OPCODE_UPDATE << 11, False),
        (OPCODE_MASK | RD, False),
    ],
)
def test_serve_applies_only_to_queries_and_copies_id_and_rd(
    snapshot: Snapshot, flags: int, served: bool
) -> None:
    query = cached_query(snapshot, "www.dyn.example.test.")
    cache, hits = snapshot.packet_cache()
    repeat = with_header(query, 0xBEEF, flags)
    before = sum(hits)
    reply = packet.serve(cache, hits, repeat)
    if not served:
        assert reply is None and sum(hits) == before
        return
    assert reply is not None and sum(hits) == before + 1
    assert reply == snapshot.answer(repeat, False), "Snapshot.answer inlines packet.serve"
    assert reply[: packet.ID_END] == b"\xbe\xef"
    assert reply[packet.FLAGS] & packet.RD_BIT == bool(flags & RD)
    assert not reply[3] & CD, "CD is never copied"


def test_serve_misses_what_is_not_cached(snapshot: Snapshot) -> None:
    cache, hits = snapshot.packet_cache()
    query = dns.message.make_query("nope.dyn.example.test.", "A").to_wire()
    assert packet.serve(cache, hits, query) is None


def test_heads_sets_only_rd() -> None:
    head = bytes((0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0))  # QR, AA; one question, one answer
    without_rd, with_rd = packet.heads(head)
    assert without_rd == head
    assert with_rd == bytes((0x85,)) + head[1:]
