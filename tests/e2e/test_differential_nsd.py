"""Differential test: dynserver and NSD serve the same master file and must agree.

NSD is the reference for "what an authoritative server answers". Both servers get the
same corpus of queries (names x types x header flags x EDNS x transport, with 0x20
case randomisation) and their replies are compared field by field: rcode, the AA TC RD
RA CD AD bits, EDNS presence / version / DO, the question, and the answer and authority
sections as sets of (owner, class, type, TTL, RDATA). The additional section is compared
only where its content is required (in-domain glue of a referral).

A difference fails the test unless the RFCs let the two servers differ there; each such
case is a row of ALLOWED below, with its justification, and the summary printed at the
end says how often each one happened.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support import (
    Server,
    dynserver,
    free_port,
    loopback,
    require_program,
    server_process,
    tcp_read,
    tcp_send,
    write_config,
)

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
ZONE = "diff.example.test"
# The main zone, a child zone delegated from it that the same server also serves, and an
# unrelated zone (CNAMEs between zones).
ZONES = (ZONE, f"child.{ZONE}", "second.test")
NSD_EDNS_SIZE = 1232  # the same advertised size as ours, so OPT differences are real ones

# Every way the replies may legitimately differ, and why the RFCs allow it.
ALLOWED: dict[str, str] = {
    "any-minimal": (
        "RFC 8482 4.1: an ANY query may be answered with any one RRset (or a subset) of the "
        "name; NSD and we both give one but pick differently (NSD the SOA at the apex, we "
        "the lowest type). Each RRset we give must be one NSD serves whole for that type."
    ),
    "truncated-contents": (
        "RFC 2181 9 / RFC 1035 4.2.1: when TC is set the client must ignore the contents "
        "and retry over TCP, so what a truncated reply carries is up to the server."
    ),
    "additional-courtesy": (
        "RFC 1034 4.3.2 step 6 / RFC 2181 5.4.1: addresses of NS/MX/SRV targets that are not "
        "required glue are optional additional data; only in-domain glue of a referral is "
        "required (RFC 9471)."
    ),
    "referral-glue-tc": (
        "RFC 9471 3.1: when the in-domain glue of a referral does not all fit, the server "
        "MUST set TC (we do); NSD 4.6 predates RFC 9471 and sends part of the glue without "
        "TC. Allowed only when NSD's glue is a strict subset of its own glue over TCP."
    ),
    "ede-option": (
        "RFC 8914 3: an Extended DNS Error option is optional extra information; NSD adds "
        "one (code 20, Not Authoritative) to REFUSED, we add none."
    ),
    "meta-qtype": (
        "No RFC defines an answer to a question for a meta-TYPE or obsolete QTYPE (RFC 6895 "
        "3.1: meta-TYPEs are transient per-message data, never zone data). NSD and Knot say "
        "NODATA; we answer as BIND does: FORMERR for OPT, TSIG and TKEY (they only exist in "
        "the additional section), NOTIMP for MAILA/MAILB (RFC 1035 4.1.1: a kind of query "
        "the server does not support)."
    ),
    "opt-udp-size": (
        "RFC 6891 6.2.3: the OPT UDP size in a reply is the responder's own receive limit, a local choice."
    ),
}


# -- the corpus --------------------------------------------------------------------------

NAMES = [
    "",  # the apex
    "www",
    "ns1",
    "mail",
    "alias",
    "chain1",
    "chain3",
    "out",
    "loop1",
    "self",
    "dangling",
    "tosub",
    "towild",
    "foo.wild",
    "a.b.wild",
    "exists.wild",
    "x.exists.wild",
    "wild",
    "*.wild",
    "x.wc",
    "x.y.wc",
    "x.wcout",
    "a.b.c.ent",
    "b.c.ent",
    "c.ent",
    "d.c.ent",
    "sub",
    "host.sub",
    "ns1.sub",
    "ext",
    "x.ext",
    "sib",
    "_sip._udp",
    "_https._tcp",
    "_ldap._tcp",
    "_tcp",
    "10.2.0.192.rev",
    "rev",
    "caa",
    "unknown",
    "longtxt",
    "big",
    "huge",
    "bigtxt",
    "hugetxt",
    "nxname",
    "deep.nx.name",
    "child",
    "www.child",
    "back.child",
    "nx.child",
    "many",
    "ns1.many",
    "tochild",
    "cross",
    "tobig",
    # Below names that exist, odd wildcard positions, and labels with escaped octets
    "x.alias",
    "x.www",
    "a.b.c.d.wild",
    "x.*.wild",
    "*.wc",
    "x.unknown",
    "x.10.2.0.192.rev",
    "\\000.wild",
    "a\\.b.wild",
    "\\065BC.wild",
    "\\195\\129.wild",
    "\\000\\255.nxname",
]
# Names of the other zones we serve.
OTHER = ["second.test.", "host.second.test.", "back.second.test.", "nx.second.test."]
# Outside every zone we serve: both must refuse (never act as a resolver).
FOREIGN = ["example.test.", "outside.test.", "www.outside.test.", "xdiff.example.test.", "."]
TYPES = [
    "A",
    "AAAA",
    "NS",
    "SOA",
    "MX",
    "TXT",
    "CNAME",
    "SRV",
    "CAA",
    "PTR",
    "DS",
    "ANY",
    "TYPE65280",
    "DNSKEY",
]
# (UDP size, DO, an unknown option) or None for no EDNS. 100 is below the RFC 6891
# minimum (treated as 512). An option sends our server down its full path.
EDNS_MODES: list[tuple[int, bool, bool] | None] = [
    None,
    (512, False, False),
    (1232, False, False),
    (4096, True, False),
    (1232, True, False),
    (100, False, False),
    (1232, False, True),
    (4096, True, True),
]
UNKNOWN_OPTION = dns.edns.GenericOption(65001, b"dynserver")  # RFC 6891 6.1.2: ignored
# Pseudo-types that are never zone data, and the rcode we answer them with (see ALLOWED).
META_QTYPES = {"OPT": dns.rcode.FORMERR, "TSIG": dns.rcode.FORMERR, "TKEY": dns.rcode.FORMERR}
META_QTYPES |= {"MAILA": dns.rcode.NOTIMP, "MAILB": dns.rcode.NOTIMP}
# Names whose answers are large: every EDNS mode on both transports.
LARGE = ["big", "huge", "bigtxt", "hugetxt", "longtxt", "", "sub", "x.ext", "many", "tobig"]


@dataclass(frozen=True)
class Probe:
    """One query of the corpus."""

    qname: str  # absolute, with the case it is sent in
    qtype: str
    rd: bool
    cd: bool
    edns: tuple[int, bool, bool] | None
    tcp: bool

    def message(self) -> dns.message.Message:
        query = dns.message.make_query(self.qname, self.qtype, use_edns=False)
        if self.edns is not None:
            size, do, option = self.edns
            options = [UNKNOWN_OPTION] if option else []
            query.use_edns(0, dns.flags.DO if do else 0, payload=size, options=options)
        query.flags = (dns.flags.RD if self.rd else 0) | (dns.flags.CD if self.cd else 0)
        return query

    def __str__(self) -> str:
        flags = "".join(f for f, on in (("+rd", self.rd), ("+cd", self.cd)) if on)
        edns = "noedns"
        if self.edns is not None:
            size, do, option = self.edns
            edns = f"edns{size}{'+do' if do else ''}{'+option' if option else ''}"
        return f"{self.qname} {self.qtype} {flags or '-'} {edns} {'tcp' if self.tcp else 'udp'}"


def mixed_case(name: str, rng: random.Random) -> str:
    """0x20 randomisation (draft-vixie-dnsext-dns0x20): the reply must echo it."""
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def corpus() -> list[Probe]:
    """A deterministic corpus: every name x type, with header flags, EDNS and transport
    rotated through all combinations, plus every EDNS mode on both transports for the
    names whose answers need truncation."""
    rng = random.Random(20)  # fixed seed: a failure is reproducible
    variants = list(itertools.product((False, True), (False, True), EDNS_MODES, (False, True)))
    probes: list[Probe] = []
    absolute = [f"{name}.{ZONE}." if name else f"{ZONE}." for name in NAMES]
    for i, (qname, qtype) in enumerate(itertools.product(absolute + OTHER + FOREIGN, TYPES)):
        rd, cd, edns, tcp = variants[(i * 7) % len(variants)]
        if i % 3 == 0:
            qname = mixed_case(qname, rng)
        probes.append(Probe(qname, qtype, rd, cd, edns, tcp))
    for name, qtype, edns, tcp in itertools.product(
        LARGE, ("A", "TXT", "ANY", "NS"), EDNS_MODES, (False, True)
    ):
        qname = f"{name}.{ZONE}." if name else f"{ZONE}."
        probes.append(Probe(qname, qtype, True, False, edns, tcp))
    for label, qtype, tcp in itertools.product(("", "www", "nxname", "host.sub"), META_QTYPES, (False, True)):
        probes.append(
            Probe(f"{label}.{ZONE}." if label else f"{ZONE}.", qtype, False, False, (1232, False, False), tcp)
        )
    return probes


# -- talking to a server ------------------------------------------------------------------


class Client:
    """Raw UDP and one persistent TCP connection (RFC 7766 reuse) to one server."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.settimeout(2.0)
        self.udp.connect(self.address)
        self.tcp: socket.socket | None = None

    def ask(self, wire: bytes, tcp: bool) -> bytes | None:
        if not tcp:
            self.udp.send(wire)
            try:
                return self.udp.recv(65535)
            except TimeoutError:
                return None
        for attempt in range(2):  # the server may have closed an idle connection
            try:
                if self.tcp is None:
                    self.tcp = socket.create_connection(self.address, timeout=2.0)
                tcp_send(self.tcp, wire)
                return tcp_read(self.tcp)
            except (ConnectionError, EOFError):
                self.close_tcp()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close_tcp(self) -> None:
        if self.tcp is not None:
            self.tcp.close()
            self.tcp = None

    def close(self) -> None:
        self.udp.close()
        self.close_tcp()


# -- comparing replies --------------------------------------------------------------------

RR = tuple[dns.name.Name, int, int, int, dns.rdata.Rdata]
EDE = 15  # RFC 8914 Extended DNS Error option code
FLAG_BITS = {"AA": dns.flags.AA, "TC": dns.flags.TC, "RD": dns.flags.RD, "RA": dns.flags.RA}
FLAG_BITS |= {"CD": dns.flags.CD, "AD": dns.flags.AD}


@dataclass(frozen=True)
class Shape:
    """What we compare of a reply (names compare case-insensitively, as in DNS)."""

    rcode: int
    flags: frozenset[str]
    edns: tuple[int, bool, tuple[int, ...]] | None  # (version, DO, option codes)
    udp_size: int | None
    question: bytes
    answer: frozenset[RR]
    authority: frozenset[RR]
    additional: frozenset[RR]
    size: int

    @classmethod
    def of(cls, wire: bytes) -> Shape:
        message = dns.message.from_wire(wire, ignore_trailing=True)
        qdcount = struct.unpack_from("!H", wire, 4)[0]
        question_end = 12 + sum(len(q.name.to_wire()) + 4 for q in message.question[:qdcount])
        edns = None
        if message.edns >= 0:
            options = tuple(sorted(int(option.otype) for option in message.options))
            edns = (message.edns, bool(message.ednsflags & dns.flags.DO), options)
        return cls(
            rcode=message.rcode(),
            flags=frozenset(name for name, bit in FLAG_BITS.items() if message.flags & bit),
            edns=edns,
            udp_size=message.payload if message.edns >= 0 else None,
            question=wire[12:question_end],
            answer=_records(message.answer),
            authority=_records(message.authority),
            additional=_records(message.additional),
            size=len(wire),
        )

    def glue(self, cut: dns.name.Name) -> frozenset[RR]:
        return frozenset(rr for rr in self.additional if rr[0].is_subdomain(cut))

    def referral_cut(self) -> dns.name.Name | None:
        """The delegated name when this reply is a referral, maybe after a CNAME chain.

        Neither server puts NS records in the authority section of other replies.
        """
        owners = {rr[0] for rr in self.authority if rr[2] == dns.rdatatype.NS}
        return owners.pop() if len(owners) == 1 else None


def _records(section: list[dns.rrset.RRset]) -> frozenset[RR]:
    return frozenset(
        (rrset.name, rrset.rdclass, rrset.rdtype, rrset.ttl, rdata) for rrset in section for rdata in rrset
    )


def differences(
    probe: Probe, ours: Shape, theirs: Shape, oracle: Callable[[int], Shape]
) -> tuple[list[str], list[str]]:
    """(allowed categories, unexplained differences) between our reply and NSD's.

    ``oracle(rdtype)`` is NSD's reply to the same name with another type, over TCP.
    """
    allowed: list[str] = []
    wrong: list[str] = []
    if ours.udp_size != theirs.udp_size and ours.edns is not None and theirs.edns is not None:
        allowed.append("opt-udp-size")
    if ours.edns is not None and theirs.edns is not None and ours.edns != theirs.edns:
        without_ede = (*theirs.edns[:2], tuple(o for o in theirs.edns[2] if o != EDE))
        if without_ede == ours.edns:
            allowed.append("ede-option")
            theirs = dataclasses.replace(theirs, edns=ours.edns)
    meta = (
        probe.qtype in META_QTYPES
        and ours.rcode == META_QTYPES[probe.qtype]
        and not ours.answer
        and "AA" not in ours.flags
        and theirs.rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
        and not theirs.answer
    )
    for field in ("edns", "question") if meta else ("rcode", "edns", "question"):
        if getattr(ours, field) != getattr(theirs, field):
            wrong.append(f"{field}: ours {getattr(ours, field)!r}, NSD {getattr(theirs, field)!r}")
    if meta:
        allowed.append("meta-qtype")
        return allowed, wrong
    if "TC" in ours.flags and "TC" in theirs.flags:
        if ours.flags != theirs.flags:
            wrong.append(f"flags: ours {sorted(ours.flags)}, NSD {sorted(theirs.flags)}")
        if (ours.answer, ours.authority, ours.additional) != (
            theirs.answer,
            theirs.authority,
            theirs.additional,
        ):
            allowed.append("truncated-contents")
        return allowed, wrong
    cut = theirs.referral_cut()
    if (
        "TC" in ours.flags
        and "TC" not in theirs.flags
        and cut is not None
        and theirs.glue(cut) < oracle(dns.rdatatype.from_text(probe.qtype)).glue(cut)
    ):
        allowed.append("referral-glue-tc")
        return allowed, wrong
    if probe.qtype == "ANY" and ours.answer != theirs.answer and ours.flags == theirs.flags:
        # Both may pick any RRsets of the name: each of ours must be one NSD serves whole.
        for (owner, rdtype), records in _rrsets(ours.answer).items():
            if (
                owner != dns.name.from_text(probe.qname)
                or _rrsets(oracle(rdtype).answer).get((owner, rdtype)) != records
            ):
                wrong.append(f"ANY: {owner} {dns.rdatatype.to_text(rdtype)} is not a whole RRset of NSD's")
        allowed.append("any-minimal")
        ours = dataclasses.replace(ours, answer=theirs.answer)
    if ours.flags != theirs.flags:
        wrong.append(f"flags: ours {sorted(ours.flags)}, NSD {sorted(theirs.flags)}")
    for section in ("answer", "authority"):
        mine, other = getattr(ours, section), getattr(theirs, section)
        if mine != other:
            wrong.append(f"{section}: only ours {_show(mine - other)}, only NSD {_show(other - mine)}")
    cut = ours.referral_cut()
    if cut is not None and ours.glue(cut) != theirs.glue(cut):
        wrong.append(f"glue: ours {_show(ours.glue(cut))}, NSD {_show(theirs.glue(cut))}")
    elif ours.additional != theirs.additional:
        allowed.append("additional-courtesy")
    return allowed, wrong


def _rrsets(records: frozenset[RR]) -> dict[tuple[dns.name.Name, int], frozenset[RR]]:
    grouped: dict[tuple[dns.name.Name, int], set[RR]] = {}
    for rr in records:
        grouped.setdefault((rr[0], rr[2]), set()).add(rr)
    return {key: frozenset(value) for key, value in grouped.items()}


def _show(records: frozenset[RR]) -> str:
    return (
        "{"
        + ", ".join(
            sorted(f"{n} {t} {dns.rdatatype.to_text(rt)} {rd.to_text()[:40]}" for n, _, rt, t, rd in records)
        )
        + "}"
    )


def check_size(probe: Probe, wire: bytes) -> str | None:
    """RFC 1035 4.2.1 / RFC 6891 6.2.5 / flag day 2020: our UDP replies stay within limits."""
    if probe.tcp:
        return None
    limit = 512 if probe.edns is None else min(max(probe.edns[0], 512), 1232)
    return None if len(wire) <= limit else f"UDP reply of {len(wire)} bytes exceeds {limit}"


# -- the servers --------------------------------------------------------------------------

NSD_CONF = """\
server:
    ip-address: {host}@{port}
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{run}"
    database: ""
    zonelistfile: "{run}/zone.list"
    xfrdfile: "{run}/xfrd.state"
    xfrdir: "{run}"
    pidfile: "{run}/nsd.pid"
    logfile: "{run}/nsd.log"
    verbosity: 1
    # Comparable replies: no courtesy additional data or authority NS in positive
    # answers (we add neither), the same EDNS size, no RRL dropping a burst of queries,
    # no ANY refusal (RFC 8482 minimal answers are compared separately).
    minimal-responses: yes
    ipv4-edns-size: {edns_size}
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    refuse-any: no
    hide-version: yes
remote-control:
    control-enable: no
"""
NSD_ZONE = """\
zone:
    name: {zone}
    zonefile: {zone}.zone
"""


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    program = require_program("nsd", "nsd")
    run = tmp_path_factory.mktemp("nsd")
    for zone in ZONES:
        (run / f"{zone}.zone").write_text((DATA / f"{zone}.zone").read_text())
    host = loopback()
    port = free_port(host)
    conf = run / "nsd.conf"
    conf.write_text(
        NSD_CONF.format(host=host, port=port, run=run, edns_size=NSD_EDNS_SIZE)
        + "".join(NSD_ZONE.format(zone=zone) for zone in ZONES)
    )
    with server_process([program, "-d", "-c", str(conf)], host, port, ZONE, run / "nsd.out") as server:
        yield server


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("dynserver")
    config = write_config(folder, {zone: (DATA / f"{zone}.zone").read_text() for zone in ZONES})
    with dynserver(config, zone=ZONE) as server:
        yield server


def test_corpus_is_large_enough() -> None:
    probes = corpus()
    assert len(probes) >= 300
    assert any(p.tcp for p in probes) and any(not p.tcp for p in probes)
    assert any(p.qname != p.qname.lower() for p in probes)


def test_same_answers_as_nsd(ours: Server, nsd: Server) -> None:
    probes = corpus()
    mine, reference = Client(ours.host, ours.port), Client(nsd.host, nsd.port)
    seen: Counter[str] = Counter()
    failures: list[str] = []
    examples: dict[str, str] = {}
    started = time.monotonic()
    try:
        for probe in probes:
            query = probe.message().to_wire()
            our_wire, their_wire = mine.ask(query, probe.tcp), reference.ask(query, probe.tcp)
            if our_wire is None or their_wire is None:
                if our_wire is not their_wire:
                    failures.append(f"{probe}: reply from only one (ours {our_wire is not None})")
                continue
            if our_wire[:2] != query[:2] or their_wire[:2] != query[:2]:
                failures.append(f"{probe}: a reply does not carry the query's ID")
                continue
            problem = check_size(probe, our_wire)
            if problem:
                failures.append(f"{probe}: {problem}")

            def oracle(rdtype: int, qname: str = probe.qname) -> Shape:
                query = dns.message.make_query(qname, rdtype, use_edns=False)
                reply = reference.ask(query.to_wire(), tcp=True)
                assert reply is not None
                return Shape.of(reply)

            allowed, wrong = differences(probe, Shape.of(our_wire), Shape.of(their_wire), oracle)
            seen.update(allowed)
            for category in allowed:
                examples.setdefault(category, str(probe))
            failures.extend(f"{probe}: {w}" for w in wrong)
    finally:
        mine.close()
        reference.close()
    elapsed = time.monotonic() - started
    print(f"\ncompared {len(probes)} queries with NSD in {elapsed:.1f}s; allowed differences:")
    for category in ALLOWED:
        print(f"  {category:22} {seen[category]:4}  e.g. {examples.get(category, '-')}")
    assert not failures, f"{len(failures)} unexplained differences:\n" + "\n".join(failures[:60])
