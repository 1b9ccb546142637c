"""DO=1 answers from a signed zone: every RRset signed and valid (dnspython's validator),
every denial, wildcard and referral proven by NSEC3 as RFC 5155 8 checks it; DO=0 and
plain EDNS answers byte for byte what the unsigned zone gives."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from dynserver.dns.snapshot import Snapshot
from dynserver.dns.zone import Zone
from tests.dnssec.support import (
    closest_encloser_proof,
    covers,
    dnskeys,
    matches,
    query,
    signed_zones,
    types,
    validate_sections,
)
from tests.snapshots import ask

N = dns.name.from_text
T = dns.rdatatype


@pytest.fixture(scope="module")
def zones(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[bytes, ...], Zone]:
    return signed_zones(tmp_path_factory.mktemp("signed"))[0]


@pytest.fixture(scope="module")
def snapshot(zones: dict[tuple[bytes, ...], Zone]) -> Snapshot:
    return Snapshot(zones)


@pytest.fixture(scope="module")
def keys(snapshot: Snapshot) -> dict[dns.name.Name, dns.rrset.RRset]:
    return dnskeys(snapshot)


def answer_types(reply: dns.message.Message) -> list[tuple[str, str]]:
    return [(str(r.name), T.to_text(r.rdtype)) for r in reply.answer if r.rdtype != T.RRSIG]


@pytest.mark.parametrize(
    ("qname", "qtype", "expected"),
    [
        ("www.dyn.example.test.", "A", [("www.dyn.example.test.", "A")]),
        ("www.dyn.example.test.", "AAAA", [("www.dyn.example.test.", "AAAA")]),
        ("dyn.example.test.", "MX", [("dyn.example.test.", "MX")]),
        ("dyn.example.test.", "SOA", [("dyn.example.test.", "SOA")]),
        ("dyn.example.test.", "NS", [("dyn.example.test.", "NS")]),
        ("dyn.example.test.", "DNSKEY", [("dyn.example.test.", "DNSKEY")]),
        ("dyn.example.test.", "CDS", [("dyn.example.test.", "CDS")]),
        ("dyn.example.test.", "CDNSKEY", [("dyn.example.test.", "CDNSKEY")]),
        ("dyn.example.test.", "NSEC3PARAM", [("dyn.example.test.", "NSEC3PARAM")]),
        ("a.b.c.dyn.example.test.", "A", [("a.b.c.dyn.example.test.", "A")]),
        ("_https._tcp.dyn.example.test.", "SRV", [("_https._tcp.dyn.example.test.", "SRV")]),
        (
            "alias.dyn.example.test.",
            "A",
            [("alias.dyn.example.test.", "CNAME"), ("www.dyn.example.test.", "A")],
        ),
        (
            "chain1.dyn.example.test.",
            "A",
            [
                ("chain1.dyn.example.test.", "CNAME"),
                ("chain2.dyn.example.test.", "CNAME"),
                ("www.dyn.example.test.", "A"),
            ],
        ),
        ("cross.dyn.example.test.", "A", [("cross.dyn.example.test.", "CNAME"), ("host.other.test.", "A")]),
        ("deleg.dyn.example.test.", "DS", [("deleg.dyn.example.test.", "DS")]),
    ],
)
def test_positive_answers_are_signed(
    snapshot: Snapshot, keys: dict[dns.name.Name, dns.rrset.RRset], qname: str, qtype: str, expected: list
) -> None:
    reply = query(snapshot, qname, qtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert reply.ednsflags & dns.flags.DO
    assert answer_types(reply) == expected
    validate_sections(reply, keys)
    assert not [r for r in reply.authority if r.rdtype == T.NSEC3]  # no proof where none is due


def test_the_dnskey_rrset_is_the_csk_and_cds_its_digest(snapshot: Snapshot) -> None:
    reply = query(snapshot, "dyn.example.test.", "DNSKEY")
    (dnskey,) = reply.find_rrset(reply.answer, N("dyn.example.test."), 1, T.DNSKEY)
    assert (dnskey.flags, dnskey.protocol, dnskey.algorithm) == (257, 3, 13)
    cds = query(snapshot, "dyn.example.test.", "CDS")
    (ds,) = cds.find_rrset(cds.answer, N("dyn.example.test."), 1, T.CDS)
    expected = dns.dnssec.make_ds(N("dyn.example.test."), dnskey, "SHA256")
    assert ds.to_text() == expected.to_text()
    cdnskey = query(snapshot, "dyn.example.test.", "CDNSKEY")
    assert cdnskey.answer[0][0].to_text() == dnskey.to_text()


@pytest.mark.parametrize(
    "qname",
    [
        "nx.dyn.example.test.",
        "deeper.nx.dyn.example.test.",
        "x.a.b.c.dyn.example.test.",
        "zz.ent.wild.dyn.example.test.",
    ],
)
def test_nxdomain_is_proven(snapshot: Snapshot, keys: dict, qname: str) -> None:
    reply = query(snapshot, qname, "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    validate_sections(reply, keys)
    encloser = closest_encloser_proof(reply, N(qname))
    assert covers(reply, N("*", encloser)), "the wildcard at the closest encloser must be denied"


def test_nxdomain_at_the_end_of_a_cname_chain(snapshot: Snapshot, keys: dict) -> None:
    reply = query(snapshot, "tonx.dyn.example.test.", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert answer_types(reply) == [("tonx.dyn.example.test.", "CNAME")]
    validate_sections(reply, keys)
    encloser = closest_encloser_proof(reply, N("nothere.dyn.example.test."))
    assert covers(reply, N("*", encloser))


@pytest.mark.parametrize(
    ("qname", "qtype"),
    [
        ("www.dyn.example.test.", "MX"),
        ("dyn.example.test.", "A"),
        ("c.dyn.example.test.", "A"),  # an empty non-terminal
        ("b.c.dyn.example.test.", "TXT"),  # another
        ("ent.wild.dyn.example.test.", "A"),  # an ENT under a wildcard's parent
        ("nods.dyn.example.test.", "DS"),  # an insecure delegation: no DS
        ("dyn.example.test.", "DS"),  # the apex: no DS here (the parent is not ours)
    ],
)
def test_nodata_is_proven_by_the_names_own_nsec3(
    snapshot: Snapshot, keys: dict, qname: str, qtype: str
) -> None:
    reply = query(snapshot, qname, qtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.answer
    validate_sections(reply, keys)
    rdata = matches(reply, N(qname))
    assert rdata is not None, "the NSEC3 matching the name is required (RFC 5155 7.2.3, 7.2.4)"
    present = types(rdata)
    assert T.from_text(qtype) not in present and T.CNAME not in present


def test_wildcard_answer_proves_no_closer_match(snapshot: Snapshot, keys: dict) -> None:
    reply = query(snapshot, "x.y.wild.dyn.example.test.", "A")
    assert answer_types(reply) == [("x.y.wild.dyn.example.test.", "A")]
    validate_sections(reply, keys)  # the RRSIG's labels field (3 + 1) lets it validate
    sig = reply.find_rrset(reply.answer, N("x.y.wild.dyn.example.test."), 1, T.RRSIG, T.A)
    assert sig[0].labels == 4
    assert covers(reply, N("y.wild.dyn.example.test."))  # RFC 5155 7.2.6: the next closer name


def test_wildcard_cname(snapshot: Snapshot, keys: dict) -> None:
    reply = query(snapshot, "any.wc.dyn.example.test.", "A")
    assert answer_types(reply) == [("any.wc.dyn.example.test.", "CNAME"), ("www.dyn.example.test.", "A")]
    validate_sections(reply, keys)
    assert covers(reply, N("any.wc.dyn.example.test."))


def test_wildcard_nodata(snapshot: Snapshot, keys: dict) -> None:
    reply = query(snapshot, "x.wild.dyn.example.test.", "MX")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    validate_sections(reply, keys)
    encloser = closest_encloser_proof(reply, N("x.wild.dyn.example.test."))
    assert encloser == N("wild.dyn.example.test.")
    wildcard = matches(reply, N("*.wild.dyn.example.test."))
    assert wildcard is not None and T.MX not in types(wildcard)


def test_referral_with_ds(snapshot: Snapshot, keys: dict) -> None:
    reply = query(snapshot, "host.deleg.dyn.example.test.", "A")
    assert not reply.flags & dns.flags.AA
    assert reply.find_rrset(reply.authority, N("deleg.dyn.example.test."), 1, T.DS)
    validate_sections(reply, keys)
    glue = reply.find_rrset(reply.additional, N("ns1.deleg.dyn.example.test."), 1, T.A)
    assert glue and not [r for r in reply.additional if r.rdtype == T.RRSIG and r.name == glue.name]


def test_referral_without_ds_proves_there_is_none(snapshot: Snapshot, keys: dict) -> None:
    reply = query(snapshot, "host.nods.dyn.example.test.", "A")
    assert not reply.flags & dns.flags.AA
    validate_sections(reply, keys)
    rdata = matches(reply, N("nods.dyn.example.test."))
    assert rdata is not None
    assert types(rdata) == {T.NS}  # NS, no DS, no SOA: an insecure delegation


def test_cname_into_a_referral(snapshot: Snapshot, keys: dict) -> None:
    reply = query(snapshot, "todeleg.dyn.example.test.", "A")
    assert answer_types(reply) == [("todeleg.dyn.example.test.", "CNAME")]
    validate_sections(reply, keys)
    assert reply.find_rrset(reply.authority, N("deleg.dyn.example.test."), 1, T.DS)


QUESTIONS = [
    ("www.dyn.example.test.", "A"),
    ("nx.dyn.example.test.", "A"),
    ("www.dyn.example.test.", "MX"),
    ("x.y.wild.dyn.example.test.", "A"),
    ("host.deleg.dyn.example.test.", "A"),
    ("host.nods.dyn.example.test.", "A"),
    ("alias.dyn.example.test.", "A"),
    ("c.dyn.example.test.", "A"),
    ("dyn.example.test.", "MX"),
]


@pytest.mark.parametrize(("qname", "qtype"), QUESTIONS)
@pytest.mark.parametrize("edns", [False, True])
def test_do_0_answers_are_those_of_the_unsigned_zone(
    tmp_path: Path, snapshot: Snapshot, qname: str, qtype: str, edns: bool
) -> None:
    from tests.dns.zones import DYN, OTHER
    from tests.snapshots import load_snapshot

    unsigned = load_snapshot(tmp_path, {"dyn.example.test": DYN, "other.test": OTHER})
    message = dns.message.make_query(qname, qtype, use_edns=0 if edns else False)
    message.id = 4242
    for tcp in (False, True):
        assert snapshot.answer(message.to_wire(), tcp) == unsigned.answer(message.to_wire(), tcp)


def test_do_1_that_does_not_fit_is_truncated_and_tcp_has_it_all(snapshot: Snapshot, keys: dict) -> None:
    message = dns.message.make_query("nx.dyn.example.test.", "A", want_dnssec=True, payload=512)
    udp = ask(snapshot, message)
    assert udp.flags & dns.flags.TC
    tcp = ask(snapshot, message, tcp=True)
    assert not tcp.flags & dns.flags.TC and tcp.rcode() == dns.rcode.NXDOMAIN
    validate_sections(tcp, keys)


def test_ed25519(tmp_path: Path) -> None:
    zones, _ = signed_zones(tmp_path, algorithm=15)
    snapshot = Snapshot(zones)
    keys = dnskeys(snapshot)
    for qname, qtype in QUESTIONS:
        validate_sections(query(snapshot, qname, qtype), keys)
    assert query(snapshot, "dyn.example.test.", "DNSKEY").answer[0][0].algorithm == 15


def test_repeated_do_queries_come_from_the_tables(snapshot: Snapshot) -> None:
    """The second identical DO=1 query is the fast path's (the template memoised)."""
    first = query(snapshot, "nx2.dyn.example.test.", "A")
    key = b"\x03nx2\x03dyn\x07example\x04test\x00\x00\x01\x00\x01"
    assert key in snapshot._tables[2] and key not in snapshot._tables[1]
    again = query(snapshot, "nx2.dyn.example.test.", "A")
    assert first.to_wire()[2:] == again.to_wire()[2:]


def test_a_query_for_rrsig_gets_the_names_signatures(snapshot: Snapshot) -> None:
    for do in (False, True):
        message = dns.message.make_query("www.dyn.example.test.", "RRSIG", want_dnssec=do)
        reply = ask(snapshot, message)
        covered = sorted(T.to_text(rrset.covers) for rrset in reply.answer)
        assert covered == ["A", "AAAA"] and reply.flags & dns.flags.AA
