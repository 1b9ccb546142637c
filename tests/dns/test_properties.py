"""Property tests of the answering core: no packet makes it raise or break the rules.

Random bytes, well-formed queries, and well-formed queries damaged on purpose (bits
flipped, cut short, bytes inserted or removed, counts rewritten, compression pointers
and pointer loops planted) go straight into ``Snapshot.answer``; dnspython judges the
replies. Hypothesis runs derandomized with no example database, so every run is the same.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dynserver.dns.snapshot import Snapshot
from tests.dns.zones import BIG_ZONES
from tests.snapshots import load_snapshot

PROFILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_HEADER = struct.Struct("!HHHHHH")
QR, AA, TC, RD, RA, Z, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return load_snapshot(tmp_path_factory.mktemp("zones"), BIG_ZONES)


# -- building queries by hand (dnspython refuses to build most of what we need) ---------

KNOWN_NAMES = [
    "dyn.example.test",
    "www.dyn.example.test",
    "alias.dyn.example.test",
    "loop1.dyn.example.test",
    "crossback.dyn.example.test",
    "b.c.dyn.example.test",
    "nx.dyn.example.test",
    "x.y.wild.dyn.example.test",
    "x.sub.wild.dyn.example.test",
    "x.wc.dyn.example.test",
    "deleg.dyn.example.test",
    "ns1.deleg.dyn.example.test",
    "big.dyn.example.test",
    "huge.dyn.example.test",
    "_https._tcp.dyn.example.test",
    "other.test",
    "back.other.test",
    "example.test",
    "version.bind",
    "hostname.bind",
    "",
]
COMMON_QTYPES = [1, 2, 5, 6, 15, 16, 28, 33, 43, 255]
ODD_QTYPES = [0, 12, 41, 249, 250, 251, 252, 253, 254, 65535]
ODD_QCLASSES = [3, 254, 255, 0, 4]


def name_wire(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


@st.composite
def qnames(draw: st.DrawFn) -> bytes:
    base = [label.encode() for label in draw(st.sampled_from(KNOWN_NAMES)).split(".") if label]
    # Now and then, names below the known ones: NXDOMAIN, wildcards, referrals, odd bytes.
    extra = (
        draw(st.lists(st.binary(min_size=1, max_size=63), max_size=3)) if draw(st.integers(0, 3)) == 0 else []
    )
    labels = [*extra, *base]
    # 0x20: flip the case of some letters; the server must echo them as sent.
    mask = draw(st.integers(0, 2**64 - 1))
    mixed = []
    for i, label in enumerate(labels):
        flip = (mask >> (i * 7)) & 0x7F
        mixed.append(
            bytes(c ^ 0x20 if chr(c).isalpha() and (flip >> (j % 7)) & 1 else c for j, c in enumerate(label))
        )
    wire_name = name_wire(mixed)
    if len(wire_name) > 255:
        wire_name = name_wire(base)
    return wire_name


@dataclass(frozen=True)
class Edns:
    payload: int
    ext_rcode: int
    version: int
    flags: int
    options: tuple[tuple[int, bytes], ...]

    def wire(self) -> bytes:
        rdata = b"".join(struct.pack("!HH", code, len(value)) + value for code, value in self.options)
        ttl = (self.ext_rcode << 24) | (self.version << 16) | self.flags
        return b"\x00" + struct.pack("!HHIH", 41, self.payload, ttl, len(rdata)) + rdata


# Not COOKIE (10): since issue 15 one of a wrong length is FORMERR (RFC 7873 5.2.2), and a
# well-formed one is answered by the transports' guard; tests/dns/test_cookies.py has both.
edns_options = st.lists(
    st.tuples(
        st.sampled_from([3, 8, 11, 12, 15, 65001]) | st.integers(0, 65535).filter(lambda code: code != 10),
        st.binary(max_size=40),
    ),
    max_size=3,
).map(tuple)
payloads = st.sampled_from([0, 1, 511, 512, 513, 1000, 1232, 1233, 4096, 65535]) | st.integers(0, 65535)
edns_flags = st.sampled_from([0, 0x8000, 0x7FFF, 0xFFFF]) | st.integers(0, 0xFFFF)
edns_records = st.builds(
    Edns,
    payload=payloads,
    ext_rcode=st.sampled_from([0, 0, 0, 1, 255]),
    version=st.sampled_from([0, 0, 0, 0, 1, 255]),
    flags=edns_flags,
    options=st.one_of(st.just(()), edns_options),
)
any_edns = st.none() | edns_records
# Version 0 with at least one well-formed option: the query that must take the full path.
edns_with_options = st.builds(
    Edns,
    payload=payloads,
    ext_rcode=st.just(0),
    version=st.just(0),
    flags=edns_flags,
    options=edns_options.filter(bool),
)


@dataclass(frozen=True)
class Query:
    """A query as the strategies build it, with what the checks need to know."""

    data: bytes
    qname: bytes
    edns: Edns | None


@st.composite
def queries(
    draw: st.DrawFn,
    flags: st.SearchStrategy[int] | None = None,
    edns: st.SearchStrategy[Edns | None] = any_edns,
) -> Query:
    ident = draw(st.integers(0, 0xFFFF))
    if flags is None:
        opcode = draw(st.integers(0, 15)) if draw(st.integers(0, 7)) == 0 else 0
        bits = draw(st.integers(0, 0x07FF)) if draw(st.booleans()) else draw(st.sampled_from([0, RD]))
        header_flags = (opcode << 11) | bits
    else:
        header_flags = draw(flags)
    qname = draw(qnames())
    odd = draw(st.integers(0, 7))  # one query in eight asks something unusual
    qtype = draw(
        st.sampled_from(COMMON_QTYPES) if odd else st.sampled_from(ODD_QTYPES) | st.integers(0, 65535)
    )
    qclass = 1 if odd else draw(st.sampled_from(ODD_QCLASSES) | st.integers(0, 65535))
    opt = draw(edns)
    question = qname + struct.pack("!HH", qtype, qclass)
    data = _HEADER.pack(ident, header_flags, 1, 0, 0, 1 if opt else 0) + question
    if opt is not None:
        data += opt.wire()
    return Query(data=data, qname=qname, edns=opt)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A well-formed query with one to four kinds of damage done to it."""
    data = bytearray(draw(queries()).data)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4]))):
        kind = draw(
            st.sampled_from(["flip", "cut", "insert", "remove", "count", "pointer", "loop", "append"])
        )
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "remove":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "count" and len(data) >= 12:
            field = 4 + 2 * draw(st.integers(0, 3))
            data[field : field + 2] = struct.pack(
                "!H", draw(st.sampled_from([0, 1, 2, 0xFFFF]) | st.integers(0, 0xFFFF))
            )
        elif kind == "pointer":
            target = draw(st.integers(0, 0x3FFF))
            data[at : at + 2] = struct.pack("!H", 0xC000 | target)
        elif kind == "loop":
            data[at : at + 2] = struct.pack("!H", 0xC000 | at)  # a pointer to itself
        elif kind == "append":
            # A record in the additional section whose owner is a pointer (maybe a loop).
            owner = struct.pack("!H", 0xC000 | draw(st.sampled_from([12, len(data), 0x3FFF])))
            rtype = draw(st.sampled_from([1, 41, 250, 255]))
            rdata = draw(st.binary(max_size=12))
            data += owner + struct.pack("!HHIH", rtype, 1, 0, len(rdata)) + rdata
            if len(data) >= 12:
                data[10:12] = struct.pack("!H", (int.from_bytes(data[10:12], "big") + 1) & 0xFFFF)
    return bytes(data)


# -- what every reply must satisfy -------------------------------------------------------


def question_length(data: bytes) -> int | None:
    """Length of an uncompressed question at offset 12, or None if there is none."""
    offset = 12
    while offset < len(data):
        length = data[offset]
        if length == 0:
            return offset + 5 - 12 if offset + 5 <= len(data) else None
        if length > 63:
            return None
        offset += 1 + length
    return None


def query_udp_limit(data: bytes) -> int:
    """The largest UDP reply the query allows, as dnspython reads the query."""
    try:
        message = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError, struct.error):
        return 1232  # dnspython is stricter than a server need be: check the outer bound
    if message.edns < 0:
        return 512
    return min(max(message.payload, 512), 1232)


def parse(reply: bytes) -> dns.message.Message:
    """Parse with dnspython, which reads opcode UPDATE as RFC 2136 (zone section of SOA):
    our NOTIMP reply to an UPDATE echoes its question, so read that one as a plain message."""
    if (reply[2] >> 3) & 0xF == 5:
        reply = reply[:2] + bytes([reply[2] & 0x87]) + reply[3:]
    return dns.message.from_wire(reply)


def check_reply(data: bytes, reply: bytes | None, tcp: bool) -> dns.message.Message | None:
    """The rules every reply keeps, whatever the query; returns the parsed reply."""
    if len(data) >= 3 and data[2] & 0x80:
        assert reply is None, "a packet with QR=1 must be dropped"
    if reply is None:
        event("dropped")
        return None
    assert len(data) >= 12, "a packet without a full header must be dropped"
    assert len(reply) >= 12
    _, flags, qdcount, _, _, _ = _HEADER.unpack_from(reply)
    assert reply[:2] == data[:2], "the reply ID must be the query ID"
    assert flags & QR
    assert not flags & RA, "RA is never set"
    assert not flags & (Z | AD | CD), "Z, AD and CD are clear (RFC 4035 3.1.6: CD is not copied)"
    assert (flags & RD) == (int.from_bytes(data[2:4], "big") & RD), "RD is copied"
    assert (flags >> 11) & 0xF == (data[2] >> 3) & 0xF, "the opcode is copied (RFC 1035 4.1.1)"
    if tcp:
        assert len(reply) <= 65535
    else:
        assert len(reply) <= query_udp_limit(data)
    message = parse(reply)
    event(f"rcode {message.rcode()}{' TC' if flags & TC else ''}{'' if qdcount else ' header only'}")
    if qdcount:
        assert qdcount == 1
        length = question_length(reply)
        assert length is not None
        assert reply[12 : 12 + length] == data[12 : 12 + length], "the question is echoed byte for byte"
    else:
        assert len(reply) == 12, "only header-only errors leave the question out"
        assert message.rcode() in (1, 4, 5), "a header-only reply is an error"
    return message


# -- the properties ----------------------------------------------------------------------


@settings(PROFILE, max_examples=800)
@given(data=st.binary(max_size=600), tcp=st.booleans())
def test_random_bytes(snapshot: Snapshot, data: bytes, tcp: bool) -> None:
    check_reply(data, snapshot.answer(data, tcp), tcp)


@settings(PROFILE, max_examples=600)
@given(
    query=queries(edns=st.none()),
    counts=st.tuples(*[st.sampled_from([0, 0, 1, 2, 0xFFFF]) | st.integers(0, 0xFFFF)] * 3),
    rest=st.binary(max_size=200),
    tcp=st.booleans(),
)
def test_random_records_after_the_question(
    snapshot: Snapshot, query: Query, counts: tuple[int, int, int], rest: bytes, tcp: bool
) -> None:
    """Garbage where the answer, authority and additional sections go."""
    data = query.data[:6] + struct.pack("!HHH", *counts) + query.data[12:] + rest
    check_reply(data, snapshot.answer(data, tcp), tcp)


LARGE = {b"big": 40, b"huge": 8}  # records in each large RRset (tests/dns/zones.py)


@settings(PROFILE, max_examples=300)
@given(
    owner=st.sampled_from([b"big", b"BiG", b"huge", b"hUGe"]),
    any_type=st.booleans(),
    edns=st.none() | st.builds(Edns, payloads, st.just(0), st.just(0), edns_flags, st.just(())),
    rd=st.booleans(),
    tcp=st.booleans(),
)
def test_large_answers_fit_or_truncate(
    snapshot: Snapshot, owner: bytes, any_type: bool, edns: Edns | None, rd: bool, tcp: bool
) -> None:
    """An RRset that does not fit sets TC (keeping OPT) and carries no part of it; TCP gets it whole."""
    size = LARGE[owner.lower()]
    qtype = 255 if any_type else (1 if owner.lower() == b"big" else 16)
    question = name_wire([owner, b"dyn", b"example", b"test"]) + struct.pack("!HH", qtype, 1)
    data = _HEADER.pack(0x1234, RD if rd else 0, 1, 0, 0, 1 if edns else 0) + question
    data += edns.wire() if edns else b""
    reply = snapshot.answer(data, tcp)
    message = check_reply(data, reply, tcp)
    assert message is not None and reply is not None
    assert message.rcode() == 0
    assert (message.edns == 0) == (edns is not None), "TC or not, the OPT stays"
    if message.flags & TC:
        event("truncated")
        assert not tcp
        assert not message.answer, "no partial RRset"
        limit = 512 if edns is None else min(max(edns.payload, 512), 1232)
        whole = snapshot.answer(data, True)
        assert whole is not None and len(whole) > limit, "TC only when the answer does not fit"
    else:
        event("whole")
        assert sum(len(rrset) for rrset in message.answer) == size


@settings(PROFILE, max_examples=1200)
@given(data=mutated(), tcp=st.booleans())
def test_mutated_queries(snapshot: Snapshot, data: bytes, tcp: bool) -> None:
    check_reply(data, snapshot.answer(data, tcp), tcp)


@settings(PROFILE, max_examples=800)
@given(query=queries(), tcp=st.booleans())
def test_well_formed_queries(snapshot: Snapshot, query: Query, tcp: bool) -> None:
    data = query.data
    opcode = (data[2] >> 3) & 0xF
    reply = snapshot.answer(data, tcp)
    message = check_reply(data, reply, tcp)
    assert message is not None and reply is not None, "a well-formed query always gets a reply"
    assert reply[12 : 12 + len(query.qname)] == query.qname
    flags = message.flags
    if query.edns is None:
        assert message.edns < 0, "no OPT in the reply to a query without one"
        assert tcp or len(reply) <= 512
        return
    assert message.edns == 0, "OPT in the reply, version 0 (RFC 6891 6.1.3)"
    assert message.payload == 1232
    assert not message.options, "options are ignored and not echoed"
    assert message.ednsflags & 0x7FFF == 0, "only DO may be set"
    assert bool(message.ednsflags & 0x8000) == bool(query.edns.flags & 0x8000), "DO is echoed"
    if query.edns.version:
        assert message.rcode() == 16, "EDNS version > 0 gets BADVERS"
    elif opcode != 0:
        assert message.rcode() == 4, "an unknown opcode gets NOTIMP"
    if not tcp:
        limit = min(max(query.edns.payload, 512), 1232)
        assert len(reply) <= limit
        if flags & TC:
            assert message.edns == 0, "TC keeps the OPT"
    else:
        assert not flags & TC, "nothing in these zones is too large for TCP"


def _without_options(query: Query) -> bytes:
    assert query.edns is not None
    plain = Edns(query.edns.payload, query.edns.ext_rcode, 0, query.edns.flags, ())
    return query.data[: 12 + len(query.qname) + 4] + plain.wire()


@settings(PROFILE, max_examples=400)
@given(
    query=queries(flags=st.sampled_from([0, RD, CD, RD | CD]), edns=edns_with_options),
    tcp=st.booleans(),
)
def test_options_do_not_change_the_reply(snapshot: Snapshot, query: Query, tcp: bool) -> None:
    """A query with EDNS options (full path) gets the same bytes as one without (fast path)."""
    plain = _without_options(query)
    assert snapshot.answer(query.data, tcp) == snapshot.answer(plain, tcp)


@settings(PROFILE, max_examples=400)
@given(query=queries(flags=st.sampled_from([0, RD, CD, RD | CD, AA, TC])), tcp=st.booleans())
def test_cold_and_warm_snapshots_agree(snapshot: Snapshot, query: Query, tcp: bool) -> None:
    """Templates built ahead (warm) and on demand (cold, first query) give the same bytes."""
    cold = Snapshot(snapshot.zones, chaos=snapshot.chaos, warm=False)
    first = cold.answer(query.data, tcp)
    assert first == snapshot.answer(query.data, tcp)
    assert cold.answer(query.data, tcp) == first, "the memoized template gives the same bytes"


# Header flags a repeat of a query may carry: RD and the bits answers ignore, and
# the ones that must keep it off the cache (QR set: dropped; opcodes NOTIFY, UPDATE).
REPEAT_FLAGS = st.sampled_from([0, RD, CD, AD, AA, TC, RD | CD, QR, QR | RD, 0x2000, 0x2800 | RD, 0x7800])


@settings(PROFILE, max_examples=600)
@given(query=queries(), ident=st.integers(0, 0xFFFF), flags=REPEAT_FLAGS)
def test_packet_cache_agrees_with_a_snapshot_that_never_saw_the_query(
    snapshot: Snapshot, query: Query, ident: int, flags: int
) -> None:
    """A UDP query, then the same bytes with another ID and flags: the second reply is
    what a snapshot without a cache gives (whether or not the first was cached)."""
    seen = Snapshot(snapshot.zones, chaos=snapshot.chaos, warm=False)
    seen.answer(query.data, False)  # may build a template (full path)
    seen.answer(query.data, False)  # then the fast path caches the packet
    again = struct.pack("!HH", ident, flags) + query.data[4:]
    event(f"cached: {query.data[4:] in seen._packets}")
    fresh = Snapshot(snapshot.zones, chaos=snapshot.chaos, warm=False)
    assert seen.answer(again, False) == fresh.answer(again, False)


def test_packet_cache_serves_repeats_and_stays_bounded(
    snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = Snapshot(snapshot.zones, chaos=snapshot.chaos, warm=False)
    query = dns.message.make_query("www.dyn.example.test.", "A", use_edns=0, payload=1232)
    first = cold.answer(query.to_wire(), False)  # full path: builds the template
    assert not cold._packets
    assert cold.answer(query.to_wire(), False) == first  # fast path: caches the packet
    assert first is not None and len(cold._packets) == 1

    def no_full_path(*args: object) -> None:
        raise AssertionError("a repeat must be answered from the packet cache")

    monkeypatch.setattr(cold, "_splice", no_full_path)
    query.id ^= 0x5555
    query.flags ^= dns.flags.RD
    repeat = cold.answer(query.to_wire(), False)
    assert repeat is not None and first[2] & 1 and not repeat[2] & 1, "RD copied"
    assert repeat[:2] == query.to_wire()[:2], "ID copied"
    assert repeat[2] == first[2] ^ 1 and repeat[3:] == first[3:]
    monkeypatch.undo()
    assert cold.answer(query.to_wire(), True) is not None, "TCP never reads the packet cache"
    monkeypatch.setattr("dynserver.dns.snapshot.PACKET_LIMIT", 3)
    for n in range(10):
        name = dns.message.make_query(f"WwW{n}.dyn.example.test.", "A").to_wire()
        cold.answer(name, False)
        cold.answer(name, False)  # the second time from a template, then cached
        assert 1 <= len(cold._packets) <= 3
