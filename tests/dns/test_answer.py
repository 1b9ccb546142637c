"""What the answers say: the core's decisions, table by table, through Snapshot.answer.

Queries are built and replies read with dnspython, in-process (no sockets). The zones
are in tests/dns/zones.py; each row names the RFC rule it shows. Records are written
``owner ttl TYPE rdata`` with owners relative to dyn.example.test unless they end in a dot.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import pytest

from dynserver.config import load
from dynserver.dns.snapshot import Snapshot
from tests.dns.zones import BIG_ZONES, DYN, OTHER
from tests.snapshots import ask, load_snapshot, snapshot_of

ORIGIN = "dyn.example.test."
SOA_DYN = "@ 60 SOA ns1.dyn.example.test. hostmaster.dyn.example.test. 7 3600 600 1209600 60"
SOA_OTHER = "other.test. 20 SOA ns.other.test. hostmaster.other.test. 1 3600 600 1209600 30"
REFERRAL = ("deleg 300 NS ns1.deleg.dyn.example.test.", "deleg 300 NS ns.other.test.")
REFERRAL_GLUE = ("ns1.deleg 300 A 192.0.2.54", "ns.other.test. 600 A 192.0.2.60")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return load_snapshot(tmp_path_factory.mktemp("zones"), BIG_ZONES)


def absolute(owner: str) -> str:
    if owner == "@":
        return ORIGIN
    return owner if owner.endswith(".") else f"{owner}.{ORIGIN}"


def record(text: str) -> str:
    """'www 300 A 192.0.2.10' -> the line dnspython prints for that record."""
    owner, ttl, rtype, rdata = text.split(" ", 3)
    return f"{absolute(owner)} {ttl} IN {rtype} {rdata}"


def lines(section: list[dns.rrset.RRset]) -> list[str]:
    """Each record as one line, owner lower-cased (it may carry the question's 0x20 case)."""
    records = (line.split(" ", 1) for rrset in section for line in rrset.to_text().splitlines())
    return sorted(f"{owner.lower()} {rest}" for owner, rest in records)


def query(qname: str, qtype: str, **kwargs: object) -> dns.message.QueryMessage:
    return dns.message.make_query(absolute(qname), qtype, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    why: str
    rcode: str = "NOERROR"
    aa: bool = True
    answer: tuple[str, ...] = ()
    authority: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.qname}/{self.qtype}"


CASES = [
    # Plain answers; the additional section carries addresses of NS, MX and SRV targets.
    Case("www", "A", "an A RRset", answer=("www 300 A 192.0.2.10",)),
    Case("WwW", "AAAA", "matching ignores case", answer=("www 300 AAAA 2001:db8::10",)),
    Case(
        "@",
        "NS",
        "apex NS with the addresses of the name servers we know",
        answer=("@ 300 NS ns1.dyn.example.test.", "@ 300 NS ns.other.test."),
        additional=("ns1 300 A 192.0.2.53", "ns1 300 AAAA 2001:db8::53", "ns.other.test. 600 A 192.0.2.60"),
    ),
    Case(
        "@",
        "MX",
        "MX with its exchange's address",
        answer=("@ 300 MX 10 mail.dyn.example.test.",),
        additional=("mail 300 A 192.0.2.25",),
    ),
    Case(
        "@",
        "SOA",
        "the SOA with its own TTL (only negative answers use the RFC 2308 TTL)",
        answer=("@ 3600 SOA ns1.dyn.example.test. hostmaster.dyn.example.test. 7 3600 600 1209600 60",),
    ),
    Case(
        "_https._tcp",
        "SRV",
        "SRV with its target's addresses",
        answer=("_https._tcp 300 SRV 10 5 443 www.dyn.example.test.",),
        additional=("www 300 A 192.0.2.10", "www 300 AAAA 2001:db8::10"),
    ),
    # RFC 2308: NXDOMAIN and NODATA, the SOA in authority with TTL min(SOA TTL, MINIMUM).
    Case("nx", "A", "a name that does not exist", rcode="NXDOMAIN", authority=(SOA_DYN,)),
    Case("www", "MX", "NODATA: the name exists, the type does not", authority=(SOA_DYN,)),
    Case("b.c", "A", "NODATA at an empty non-terminal (RFC 8020)", authority=(SOA_DYN,)),
    Case("c", "TXT", "NODATA at an empty non-terminal two levels up", authority=(SOA_DYN,)),
    Case("x.c", "A", "NXDOMAIN below an empty non-terminal", rcode="NXDOMAIN", authority=(SOA_DYN,)),
    Case(
        "nx.other.test.",
        "A",
        "the negative TTL is the SOA TTL when it is lower than MINIMUM",
        rcode="NXDOMAIN",
        authority=(SOA_OTHER,),
    ),
    Case("host.other.test.", "TXT", "NODATA in the second zone", authority=(SOA_OTHER,)),
    # CNAME (RFC 1034 4.3.2 step 3a; RFC 6604: the rcode is that of the last name).
    Case(
        "alias",
        "A",
        "a CNAME is followed inside the zone",
        answer=("alias 300 CNAME www.dyn.example.test.", "www 300 A 192.0.2.10"),
    ),
    Case("alias", "CNAME", "asking for the CNAME itself", answer=("alias 300 CNAME www.dyn.example.test.",)),
    Case(
        "alias",
        "MX",
        "a chain that ends in NODATA keeps the CNAME and adds the SOA",
        answer=("alias 300 CNAME www.dyn.example.test.",),
        authority=(SOA_DYN,),
    ),
    Case(
        "chain1",
        "A",
        "a chain of two CNAMEs",
        answer=(
            "chain1 300 CNAME chain2.dyn.example.test.",
            "chain2 300 CNAME www.dyn.example.test.",
            "www 300 A 192.0.2.10",
        ),
    ),
    Case(
        "tonx",
        "A",
        "a chain that ends at a missing name is NXDOMAIN, with the CNAME",
        rcode="NXDOMAIN",
        answer=("tonx 300 CNAME nothere.dyn.example.test.",),
        authority=(SOA_DYN,),
    ),
    Case(
        "cross",
        "A",
        "a chain into another zone we serve is followed",
        answer=("cross 300 CNAME host.other.test.", "host.other.test. 600 A 192.0.2.61"),
    ),
    Case(
        "crossback",
        "A",
        "a chain that leaves the zone and comes back",
        answer=(
            "crossback 300 CNAME back.other.test.",
            "back.other.test. 600 CNAME www.dyn.example.test.",
            "www 300 A 192.0.2.10",
        ),
    ),
    Case(
        "away",
        "A",
        "a chain that leaves our zones stops there: the resolver continues it",
        answer=("away 300 CNAME www.elsewhere.example.",),
    ),
    Case(
        "loop1",
        "A",
        "a loop stops where it would repeat a name",
        answer=("loop1 300 CNAME loop2.dyn.example.test.", "loop2 300 CNAME loop1.dyn.example.test."),
    ),
    Case("self", "A", "a CNAME to itself", answer=("self 300 CNAME self.dyn.example.test.",)),
    # Wildcards (RFC 4592).
    Case(
        "x.wild", "A", "synthesised from *.wild, owner = the query name", answer=("x.wild 300 A 192.0.2.99",)
    ),
    Case("x.y.wild", "A", "a wildcard matches several labels (4.3.3)", answer=("x.y.wild 300 A 192.0.2.99",)),
    Case("x.wild", "TXT", "every type at the wildcard", answer=('x.wild 300 TXT "wild"',)),
    Case("x.wild", "MX", "NODATA from a wildcard that lacks the type", authority=(SOA_DYN,)),
    Case("*.wild", "A", "the wildcard's own name", answer=("*.wild 300 A 192.0.2.99",)),
    Case(
        "sub.wild",
        "A",
        "an existing name is answered from its own data",
        answer=("sub.wild 300 A 192.0.2.98",),
    ),
    Case("sub.wild", "TXT", "the wildcard does not apply at an existing name", authority=(SOA_DYN,)),
    Case(
        "x.sub.wild",
        "A",
        "nor below one: the closest encloser is sub.wild, which has no *",
        rcode="NXDOMAIN",
        authority=(SOA_DYN,),
    ),
    Case("ent.wild", "A", "nor at an empty non-terminal (2.2.2): NODATA", authority=(SOA_DYN,)),
    Case(
        "x.ent.wild",
        "A",
        "nor below an empty non-terminal",
        rcode="NXDOMAIN",
        authority=(SOA_DYN,),
    ),
    Case(
        "x.wc",
        "A",
        "a wildcard CNAME is synthesised and followed",
        answer=("x.wc 300 CNAME www.dyn.example.test.", "www 300 A 192.0.2.10"),
    ),
    # Delegations: referrals with glue, AA=0; DS belongs to the parent side (RFC 4035 3.1.4.1).
    Case(
        "deleg",
        "A",
        "a referral at the cut",
        aa=False,
        authority=REFERRAL,
        additional=REFERRAL_GLUE,
    ),
    Case("x.deleg", "A", "a referral below the cut", aa=False, authority=REFERRAL, additional=REFERRAL_GLUE),
    Case(
        "ns1.deleg",
        "A",
        "glue is not an answer: a referral",
        aa=False,
        authority=REFERRAL,
        additional=REFERRAL_GLUE,
    ),
    Case(
        "deleg",
        "NS",
        "NS at the cut is the child's: a referral",
        aa=False,
        authority=REFERRAL,
        additional=REFERRAL_GLUE,
    ),
    Case(
        "deleg",
        "DS",
        "DS at a cut is answered by the parent, authoritatively",
        answer=("deleg 300 DS 12345 13 2 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",),
    ),
    Case("nods", "DS", "no DS at a cut: NODATA from the parent", authority=(SOA_DYN,)),
    Case(
        "x.deleg",
        "DS",
        "DS below a cut is the child's: a referral",
        aa=False,
        authority=REFERRAL,
        additional=REFERRAL_GLUE,
    ),
    Case(
        "todeleg",
        "A",
        "a chain into a delegation: the CNAME (ours, AA) and the referral",
        answer=("todeleg 300 CNAME x.deleg.dyn.example.test.",),
        authority=REFERRAL,
        additional=REFERRAL_GLUE,
    ),
    # Names that are not ours: REFUSED, never a resolver.
    Case("example.test.", "A", "the parent of a zone we serve", rcode="REFUSED", aa=False),
    Case("www.elsewhere.example.", "A", "a name in no zone of ours", rcode="REFUSED", aa=False),
    Case(".", "NS", "the root", rcode="REFUSED", aa=False),
    # Zone transfers come later.
    Case("@", "AXFR", "AXFR is refused for now", rcode="REFUSED", aa=False),
    Case("@", "IXFR", "IXFR is refused for now", rcode="REFUSED", aa=False),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
def test_answer(snapshot: Snapshot, case: Case, edns: bool) -> None:
    reply = ask(snapshot, query(case.qname, case.qtype, use_edns=0 if edns else None), tcp=True)
    assert dns.rcode.to_text(reply.rcode()) == case.rcode, case.why
    assert bool(reply.flags & dns.flags.AA) == case.aa, case.why
    assert lines(reply.answer) == sorted(record(r) for r in case.answer), case.why
    assert lines(reply.authority) == sorted(record(r) for r in case.authority), case.why
    assert lines(reply.additional) == sorted(record(r) for r in case.additional), case.why
    assert (reply.edns == 0) == edns


@pytest.mark.parametrize(
    ("qname", "rrsets"),
    [
        ("www", [("www 300 A 192.0.2.10",), ("www 300 AAAA 2001:db8::10",)]),
        ("alias", [("alias 300 CNAME www.dyn.example.test.",)]),
        ("x.wild", [("x.wild 300 A 192.0.2.99",), ('x.wild 300 TXT "wild"',)]),
        (
            "@",
            [
                ("@ 300 NS ns1.dyn.example.test.", "@ 300 NS ns.other.test."),
                ("@ 300 MX 10 mail.dyn.example.test.",),
                ('@ 300 TXT "apex"',),
                ("@ 3600 SOA ns1.dyn.example.test. hostmaster.dyn.example.test. 7 3600 600 1209600 60",),
            ],
        ),
    ],
)
def test_any_is_minimal(snapshot: Snapshot, qname: str, rrsets: list[tuple[str, ...]]) -> None:
    """RFC 8482 4.1: ANY gets one RRset of those at the name, authoritatively."""
    reply = ask(snapshot, query(qname, "ANY"), tcp=True)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert lines(reply.answer) in [sorted(record(r) for r in rrset) for rrset in rrsets]


@pytest.mark.parametrize(("qname", "rcode"), [("nx", dns.rcode.NXDOMAIN), ("b.c", dns.rcode.NOERROR)])
def test_any_where_nothing_is(snapshot: Snapshot, qname: str, rcode: int) -> None:
    reply = ask(snapshot, query(qname, "ANY"))
    assert reply.rcode() == rcode
    assert not reply.answer
    assert lines(reply.authority) == [record(SOA_DYN)]


# -- CHAOS, opcodes, classes ---------------------------------------------------------


@pytest.mark.parametrize("qname", ["version.bind.", "hostname.bind.", "id.server.", "version.server."])
def test_chaos_is_refused_unless_configured(snapshot: Snapshot, qname: str) -> None:
    reply = ask(snapshot, query(qname, "TXT", rdclass="CH"))
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.answer


@pytest.mark.parametrize(
    ("qname", "qtype", "text"),
    [
        ("version.bind.", "TXT", '"dynserver test"'),
        ("VERSION.server.", "TXT", '"dynserver test"'),
        ("hostname.bind.", "TXT", '"ns-test-1"'),
        ("id.server.", "ANY", '"ns-test-1"'),
    ],
)
def test_chaos_when_configured(tmp_path: Path, qname: str, qtype: str, text: str) -> None:
    (tmp_path / "dyn.zone").write_text(DYN)
    config = tmp_path / "dynserver.toml"
    config.write_text(
        '[server]\nchaos_version = "dynserver test"\nchaos_hostname = "ns-test-1"\n'
        '[zones."dyn.example.test"]\nfile = "dyn.zone"\n'
    )
    configured = snapshot_of(load(config))
    reply = ask(configured, query(qname, qtype, rdclass="CH"))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert [rrset.rdclass for rrset in reply.answer] == [dns.rdataclass.CH]
    assert [rdata.to_text() for rdata in reply.answer[0]] == [text]
    # Other CHAOS names and types stay refused.
    assert ask(configured, query("version.bind.", "A", rdclass="CH")).rcode() == dns.rcode.REFUSED
    assert ask(configured, query("authors.bind.", "TXT", rdclass="CH")).rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("rdclass", ["HS", "NONE", "ANY", "CLASS42"])
def test_classes_other_than_in_are_refused(snapshot: Snapshot, rdclass: str) -> None:
    reply = ask(snapshot, query("www", "A", rdclass=rdclass))
    assert reply.rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize(
    ("opcode", "rcode"),
    [
        (dns.opcode.IQUERY, dns.rcode.NOTIMP),
        (dns.opcode.STATUS, dns.rcode.NOTIMP),
        (dns.opcode.NOTIFY, dns.rcode.NOTIMP),
        (dns.opcode.UPDATE, dns.rcode.NOTIMP),
        (15, dns.rcode.NOTIMP),
    ],
)
def test_unknown_opcodes_get_notimp_with_the_opcode_copied(
    snapshot: Snapshot, opcode: int, rcode: int
) -> None:
    message = query("www", "A")
    message.set_opcode(opcode)  # type: ignore[arg-type]
    data = message.to_wire()
    reply = snapshot.answer(data, False)
    assert reply is not None
    assert reply[:2] == data[:2]
    assert (reply[2] >> 3) & 0xF == opcode, "RFC 1035 4.1.1: the opcode is copied"
    assert reply[3] & 0xF == rcode


@pytest.mark.parametrize("qtype", ["MAILA", "MAILB"])
def test_obsolete_meta_types_get_notimp(snapshot: Snapshot, qtype: str) -> None:
    assert ask(snapshot, query("www", qtype)).rcode() == dns.rcode.NOTIMP


@pytest.mark.parametrize("qtype", ["OPT", "TSIG", "TKEY"])
def test_meta_types_in_the_question_are_formerr(snapshot: Snapshot, qtype: str) -> None:
    assert ask(snapshot, query("www", qtype)).rcode() == dns.rcode.FORMERR


# -- the header -------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [0, dns.flags.RD, dns.flags.CD, dns.flags.RD | dns.flags.CD, dns.flags.AD])
@pytest.mark.parametrize("qname", ["www", "nx", "deleg", "example.test."])
def test_rd_is_copied_and_ra_ad_cd_are_clear(snapshot: Snapshot, flags: int, qname: str) -> None:
    """RD is copied (RFC 1035 4.1.1); CD is cleared by an authoritative server (RFC 4035
    3.1.6, as NSD and Knot do); we set neither RA nor AD."""
    message = query(qname, "A")
    message.flags = flags
    reply = ask(snapshot, message)
    assert reply.id == message.id
    assert bool(reply.flags & dns.flags.RD) == bool(flags & dns.flags.RD)
    assert not reply.flags & (dns.flags.RA | dns.flags.AD | dns.flags.CD)


def test_a_response_is_dropped(snapshot: Snapshot) -> None:
    message = query("www", "A")
    message.flags |= dns.flags.QR
    assert snapshot.answer(message.to_wire(), False) is None
    assert snapshot.answer(message.to_wire(), True) is None


@pytest.mark.parametrize("qdcount", [0, 2])
def test_qdcount_other_than_one_is_formerr(snapshot: Snapshot, qdcount: int) -> None:
    data = bytearray(query("www", "A").to_wire())
    data[4:6] = struct.pack("!H", qdcount)
    if qdcount == 2:
        data += data[12:]
    reply = snapshot.answer(bytes(data), False)
    assert reply is not None
    assert reply[:2] == data[:2]
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize("data", [b"", b"\x12", b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00"])
def test_shorter_than_a_header_is_dropped(snapshot: Snapshot, data: bytes) -> None:
    assert snapshot.answer(data, False) is None


def test_case_of_the_question_is_kept(snapshot: Snapshot) -> None:
    """0x20: the question is echoed byte for byte; answers match case-insensitively."""
    for name in ["wWw.DyN.eXaMpLe.TeSt.", "X.WILD.dyn.example.TEST.", "ALIAS.dyn.example.test."]:
        for use_edns in (None, 0):
            message = dns.message.make_query(name, "A", use_edns=use_edns)
            data = message.to_wire()
            reply = snapshot.answer(data, False)
            assert reply is not None
            question_end = 12 + len(dns.name.from_text(name).to_wire()) + 4
            assert reply[12:question_end] == data[12:question_end]
            parsed = dns.message.from_wire(reply)
            assert parsed.question[0].name.to_text() == name, "dnspython sees the case as sent"
            assert parsed.answer[0].name == dns.name.from_text(name)


# -- EDNS(0) ----------------------------------------------------------------------------


def test_edns_reply_has_our_size_and_no_options(snapshot: Snapshot) -> None:
    options = [dns.edns.GenericOption(65001, b"unknown"), dns.edns.GenericOption(dns.edns.COOKIE, b"c" * 8)]
    reply = ask(snapshot, query("www", "A", use_edns=0, payload=4096, options=options))
    assert reply.edns == 0
    assert reply.payload == 1232
    assert reply.options == ()


@pytest.mark.parametrize("want_dnssec", [False, True])
def test_do_is_echoed(snapshot: Snapshot, want_dnssec: bool) -> None:
    reply = ask(snapshot, query("www", "A", use_edns=0, want_dnssec=want_dnssec))
    assert bool(reply.ednsflags & dns.flags.DO) == want_dnssec
    assert reply.ednsflags & 0xFFFF & ~dns.flags.DO == 0


def test_unknown_edns_flags_are_not_echoed(snapshot: Snapshot) -> None:
    reply = ask(snapshot, query("www", "A", use_edns=0, ednsflags=0x7FFF))
    assert reply.ednsflags & 0xFFFF == 0


def test_edns_version_above_zero_gets_badvers(snapshot: Snapshot) -> None:
    message = query("www", "A", use_edns=1)
    reply = ask(snapshot, message)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0, "RFC 6891 6.1.3: our OPT says the version we do speak"
    assert not reply.answer


def test_malformed_options_are_formerr_without_opt(snapshot: Snapshot) -> None:
    data = bytearray(query("www", "A", use_edns=0).to_wire())
    data[-2:] = b"\x00\x03"  # RDLEN 3: one option header cut short
    data += b"\x00\x0a\x00"
    reply = snapshot.answer(bytes(data), False)
    assert reply is not None
    parsed = dns.message.from_wire(reply)
    assert parsed.rcode() == dns.rcode.FORMERR
    assert parsed.edns < 0, "RFC 6891 7: no OPT in the reply to a malformed OPT"


OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # root, OPT, size 1232, no flags, no data


def _with_records(arcount: int, records: bytes, ancount: int = 0) -> bytes:
    data = bytearray(query("www", "A").to_wire())
    data[6:8] = struct.pack("!H", ancount)
    data[10:12] = struct.pack("!H", arcount)
    return bytes(data) + records


@pytest.mark.parametrize(
    ("data", "rcode"),
    [
        (_with_records(2, OPT + OPT), dns.rcode.FORMERR),  # RFC 6891 6.1.1: one OPT at most
        (_with_records(1, b"\xc0\x0c" + OPT[1:]), dns.rcode.FORMERR),  # OPT not owned by the root
        (_with_records(0, OPT, ancount=1), dns.rcode.FORMERR),  # OPT outside the additional section
        (_with_records(1, OPT + b"\x00"), dns.rcode.FORMERR),  # trailing garbage
        (_with_records(1, OPT[:-2] + b"\x00\x05\x00\x0a\x00\x08\x00"), dns.rcode.FORMERR),  # option cut
    ],
    ids=["two OPT", "OPT not at root", "OPT in answer", "trailing byte", "option cut short"],
)
def test_malformed_edns_is_formerr(snapshot: Snapshot, data: bytes, rcode: int) -> None:
    reply = snapshot.answer(data, False)
    assert reply is not None
    parsed = dns.message.from_wire(reply)
    assert parsed.rcode() == rcode
    assert parsed.id == struct.unpack_from("!H", data)[0]


def test_a_tsig_signed_query_is_notauth(snapshot: Snapshot) -> None:
    """No TSIG keys are configured for queries (RFC 8945 5.2)."""
    key = dns.tsig.Key("k.", "c2VjcmV0c2VjcmV0c2VjcmV0", dns.tsig.HMAC_SHA256)
    message = query("www", "A")
    message.use_tsig(key)
    reply = snapshot.answer(message.to_wire(), False)
    assert reply is not None
    assert reply[3] & 0xF == dns.rcode.NOTAUTH
    assert not reply[7]  # no answer


@pytest.mark.parametrize(
    ("qname", "qtype", "payload", "truncated"),
    [
        ("big", "A", None, True),  # 40 A records: more than 512
        ("big", "A", 512, True),
        ("big", "A", 1232, False),
        ("big", "A", 4096, False),
        ("huge", "TXT", 4096, True),  # 8 x 250 octets: more than 1232
        ("www", "A", None, False),
    ],
)
def test_udp_truncation(
    snapshot: Snapshot, qname: str, qtype: str, payload: int | None, truncated: bool
) -> None:
    message = query(qname, qtype, use_edns=0, payload=payload) if payload else query(qname, qtype)
    data = message.to_wire()
    reply = snapshot.answer(data, False)
    assert reply is not None
    parsed = dns.message.from_wire(reply)
    assert len(reply) <= (min(max(payload, 512), 1232) if payload else 512)
    assert bool(parsed.flags & dns.flags.TC) == truncated
    assert (parsed.edns == 0) == bool(payload), "TC keeps the OPT"
    over_tcp = ask(snapshot, message, tcp=True)
    assert not over_tcp.flags & dns.flags.TC
    if truncated:
        assert not parsed.answer
        assert over_tcp.answer, "the full answer comes over TCP"
    else:
        assert lines(parsed.answer) == lines(over_tcp.answer)


@pytest.mark.parametrize("use_edns", [None, 0])
def test_additional_is_shed_before_truncating(snapshot: Snapshot, use_edns: int | None) -> None:
    """The additional section is a courtesy: dropped before TC is set (RFC 2181 9)."""
    whole = ask(snapshot, query("bigmx", "MX", use_edns=use_edns), tcp=True)
    assert len(whole.additional) == 1 and len(whole.additional[0]) == 40
    small_query = query("bigmx", "MX", use_edns=0, payload=512) if use_edns == 0 else query("bigmx", "MX")
    reply = snapshot.answer(small_query.to_wire(), False)
    assert reply is not None and len(reply) <= 512
    small = dns.message.from_wire(reply)
    assert (small.edns == 0) == (use_edns == 0)
    assert not small.flags & dns.flags.TC
    assert lines(small.answer) == [record("bigmx 300 MX 10 big.dyn.example.test.")]
    assert not small.additional


# -- the fast path and the full path agree -------------------------------------------

SAME_QUESTIONS = [(case.qname, case.qtype) for case in CASES] + [
    ("big", "A"),
    ("huge", "TXT"),
    ("www", "ANY"),
    ("x.wild", "ANY"),
]


@pytest.mark.parametrize(("qname", "qtype"), SAME_QUESTIONS)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_fast_and_full_path_give_the_same_bytes(
    snapshot: Snapshot, qname: str, qtype: str, tcp: bool
) -> None:
    """An EDNS option sends a query down the full path; it must not change the reply."""
    for want_dnssec in (False, True):
        for payload in (512, 1232, 4096):
            plain = query(qname, qtype, use_edns=0, payload=payload, want_dnssec=want_dnssec)
            with_option = query(qname, qtype, use_edns=0, payload=payload, want_dnssec=want_dnssec)
            with_option.use_edns(0, plain.ednsflags, payload, options=[dns.edns.GenericOption(65001, b"x")])
            with_option.id = plain.id
            assert snapshot.answer(with_option.to_wire(), tcp) == snapshot.answer(plain.to_wire(), tcp)


@pytest.mark.parametrize(("qname", "qtype"), SAME_QUESTIONS)
def test_with_and_without_edns_differ_only_by_the_opt(snapshot: Snapshot, qname: str, qtype: str) -> None:
    """Over TCP (no size limit) the EDNS reply is the plain one plus our OPT record."""
    plain = query(qname, qtype)
    edns = query(qname, qtype, use_edns=0)
    edns.id = plain.id
    without = snapshot.answer(plain.to_wire(), True)
    with_opt = snapshot.answer(edns.to_wire(), True)
    assert without is not None and with_opt is not None
    our_opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # root, OPT, 1232, no flags, no data
    arcount = struct.unpack_from("!H", without, 10)[0]
    assert with_opt == without[:10] + struct.pack("!H", arcount + 1) + without[12:] + our_opt


@pytest.mark.parametrize(("qname", "qtype"), SAME_QUESTIONS)
def test_cold_snapshot_gives_the_same_bytes(snapshot: Snapshot, qname: str, qtype: str) -> None:
    """Replies built ahead of time (warm) equal replies built on first demand (cold)."""
    cold = Snapshot(snapshot.zones, chaos=snapshot.chaos, warm=False)
    for use_edns in (None, 0):
        data = query(qname, qtype, use_edns=use_edns).to_wire()
        for tcp in (False, True):
            assert cold.answer(data, tcp) == snapshot.answer(data, tcp)


# -- a parent and its child both served ------------------------------------------------

PARENT = """\
$ORIGIN example.test.
$TTL 300
@    IN SOA ns1 hostmaster 1 3600 600 1209600 120
     IN NS  ns1
ns1  IN A   192.0.2.1
dyn  IN NS  ns1.dyn
     IN DS  4711 13 2 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
ns1.dyn IN A 192.0.2.53
"""


def test_ds_at_a_child_apex_comes_from_the_parent(tmp_path: Path) -> None:
    snapshot = load_snapshot(tmp_path, {"example.test": PARENT, "dyn.example.test": DYN})
    reply = ask(snapshot, query("@", "DS"))
    assert reply.flags & dns.flags.AA
    assert lines(reply.answer) == [
        record("@ 300 DS 4711 13 2 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
    ]
    # Everything else at the child's apex comes from the child, not as a referral.
    soa = ask(snapshot, query("@", "SOA"))
    assert soa.flags & dns.flags.AA
    assert lines(soa.answer)[0].startswith(f"{ORIGIN} 3600 IN SOA ns1.dyn.example.test.")
    assert ask(snapshot, query("www", "A")).answer


def test_ds_at_an_apex_without_the_parent_is_nodata(tmp_path: Path) -> None:
    snapshot = load_snapshot(tmp_path, {"dyn.example.test": DYN, "other.test": OTHER})
    reply = ask(snapshot, query("@", "DS"))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert not reply.answer
    assert lines(reply.authority) == [record(SOA_DYN)]


def test_ds_at_a_child_apex_the_parent_does_not_delegate_is_not_nxdomain(tmp_path: Path) -> None:
    parent = "$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 1209600 120\n@ NS ns1\nns1 A 192.0.2.1\n"
    snapshot = load_snapshot(tmp_path, {"example.test": parent, "dyn.example.test": DYN})
    assert ask(snapshot, query("@", "A")).rcode() == dns.rcode.NOERROR
    reply = ask(snapshot, query("@", "DS"))
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.answer
