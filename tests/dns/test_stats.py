"""Query counters (dynserver.dns.stats): every reply is counted once, by transport,
question type and rcode, whether the fast path or the full path answered it, and a
snapshot swap loses no count."""

from __future__ import annotations

import collections

import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype

from dynserver.dns import stats, wire
from dynserver.dns.snapshot import Snapshot
from dynserver.dns.stats import QueryStats, question_type, reply_rcode
from tests.dns.test_snapshot_derive import ZONE_A, ZONE_B, A, B, zone


def counts(query_stats: QueryStats) -> dict[tuple[str, str, str], int]:
    return {(t, q, r): n for t, q, r, n in query_stats.totals()}


def query(name: str, rtype: str = "A", **kwargs: object) -> bytes:
    return dns.message.make_query(name, rtype, **kwargs).to_wire()  # type: ignore[arg-type]


def test_fast_and_full_path_replies_are_counted_by_transport_type_and_rcode() -> None:
    snapshot = Snapshot({A: ZONE_A, B: ZONE_B})
    asked = [
        (query("www.a.test"), False),  # warm template: fast path
        (query("www.a.test"), False),
        (query("www.a.test", use_edns=0), True),
        (query("nope.a.test", "AAAA"), False),  # a miss: full path, then memoised
        (query("nope.a.test", "AAAA"), False),  # ... fast path
        (query("elsewhere.example", "MX"), False),  # REFUSED
        (query("a.test", "TYPE65000"), False),  # NODATA of a type with no name: "other"
        (query("www.a.test", "AXFR"), True),  # no transfer service: REFUSED
    ]
    for data, tcp in asked:
        assert snapshot.answer(data, tcp) is not None
    assert counts(snapshot.stats) == {
        ("udp", "A", "NOERROR"): 2,
        ("tcp", "A", "NOERROR"): 1,
        ("udp", "AAAA", "NXDOMAIN"): 2,
        ("udp", "MX", "REFUSED"): 1,
        ("udp", "other", "NOERROR"): 1,
        ("tcp", "AXFR", "REFUSED"): 1,
    }


def test_every_rcode_the_full_path_gives_is_counted_and_drops_apart() -> None:
    snapshot = Snapshot({A: ZONE_A})
    bad_version = dns.message.make_query("www.a.test", "A", use_edns=1)  # BADVERS
    notify = dns.message.make_query("a.test", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)  # NOTIMP
    chaos = dns.message.make_query("version.bind", "TXT", "CH")  # REFUSED: not published
    signed_less = query("www.a.test")[:-3]  # a question cut short: FORMERR
    reply_to_us = bytearray(query("www.a.test"))
    reply_to_us[2] |= 0x80  # QR=1: dropped
    for data in (bad_version.to_wire(), notify.to_wire(), chaos.to_wire(), signed_less):
        assert snapshot.answer(data, False) is not None
    assert snapshot.answer(bytes(reply_to_us), False) is None
    assert snapshot.answer(b"\x00" * 5, True) is None  # shorter than a header: dropped
    assert counts(snapshot.stats) == {
        ("udp", "A", "BADVERS"): 1,
        ("udp", "SOA", "NOTIMP"): 1,
        ("udp", "TXT", "REFUSED"): 1,
        ("udp", "other", "FORMERR"): 1,
    }
    assert snapshot.stats.dropped == [1, 1]


def test_a_derived_snapshot_keeps_counting_into_the_same_counters() -> None:
    snapshot = Snapshot({A: ZONE_A, B: ZONE_B})
    snapshot.answer(query("www.a.test"), False)
    new_b = zone(B, [("app", wire.TYPE_A, ["198.51.100.2"])], serial=2)
    derived = snapshot.derive({A: ZONE_A, B: new_b}, {B: [(b"app", *B)]})
    assert derived.stats is snapshot.stats
    derived.answer(query("www.a.test"), False)  # a carried-over template
    derived.answer(query("app.b.test"), False)  # a re-rendered one
    assert counts(derived.stats) == {("udp", "A", "NOERROR"): 3}


def test_counts_agree_with_what_dnspython_reads_in_the_replies() -> None:
    """Whatever the path, the counted (qtype, rcode) is what the reply says."""
    snapshot = Snapshot({A: ZONE_A, B: ZONE_B})
    seen: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for name in ("www.a.test", "to-b.a.test", "nope.b.test", "b.test", "x.elsewhere.example"):
        for rtype in ("A", "MX", "SOA", "TXT", "ANY", "CAA"):
            for edns in (False, 0):
                for tcp in (False, True):
                    reply = snapshot.answer(query(name, rtype, use_edns=edns), tcp)
                    assert isinstance(reply, bytes)
                    message = dns.message.from_wire(reply)
                    transport = "tcp" if tcp else "udp"
                    rcode = dns.rcode.to_text(message.rcode())
                    seen[(transport, rtype, rcode)] += 1
    assert counts(snapshot.stats) == dict(seen)


def test_parsing_helpers() -> None:
    assert question_type(query("www.a.test", "MX")) == dns.rdatatype.MX
    assert question_type(b"\x00" * 12) is None  # no question
    assert question_type(query("www.a.test")[:-4]) is None  # cut inside the question
    compressed = query("www.a.test")[:12] + b"\xc0\x0c\x00\x01\x00\x01"
    assert question_type(compressed) is None
    badvers = dns.message.make_response(dns.message.make_query("a.test", "A", use_edns=0))
    badvers.set_rcode(dns.rcode.BADVERS)
    assert reply_rcode(badvers.to_wire()) == wire.BADVERS
    assert reply_rcode(wire.error_reply(query("a.test"), wire.SERVFAIL)) == wire.SERVFAIL
    # Label sets are bounded: unknown types and every rcode map into the table.
    assert stats.slot(65000, 3) == stats.slot(0, 3)
    assert len({stats.slot(t, r) for t in range(300) for r in range(32)}) <= stats.SIZE // 2
