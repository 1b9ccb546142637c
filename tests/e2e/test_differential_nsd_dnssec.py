"""Differential test, signed: dynserver signing a zone against NSD serving the same zone
pre-signed by ``dnssec-signzone`` with the very same keys (dynserver keeps them as BIND
key files in its ``key_directory``; ``dnssec-signzone -S -K DIR`` reads them as they are).

Signatures are made at different instants, with random ECDSA nonces, so their bytes and
times differ; everything the RFCs fix must not. Every query of the corpus (the names of
tests/e2e/test_differential_nsd.py x the types a validator asks, DO=1, over TCP so that no
truncation hides a difference) is sent to both, and compared:

- rcode and the AA and TC bits;
- the answer and authority sections' records other than RRSIG, as sets of (owner, type,
  TTL, RDATA): the positive RRsets, the DNSKEY RRset, CDS/CDNSKEY, NSEC3PARAM, and which
  NSEC3 records prove a denial (RFC 5155 7.2 fixes them: closest encloser, next closer,
  wildcard, each a matching or covering NSEC3 of one chain, the same hash parameters);
- which RRSIGs there are: per (owner, type covered) the algorithm, labels, original TTL,
  key tag and signer, not the signature, its inception or its expiration.

Each allowed difference is a row of ALLOWED with the RFC text that allows it.
"""

from __future__ import annotations

import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.dnssec_support import nsd_serving, sign_zone
from tests.e2e.test_differential_nsd import NAMES
from tests.support import Server, dynserver, poll, require_program, tcp_read, tcp_send

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
ZONE = "diff.example.test"
TYPES = [
    "A",
    "AAAA",
    "MX",
    "TXT",
    "CNAME",
    "NS",
    "SOA",
    "DS",
    "DNSKEY",
    "NSEC3PARAM",
    "CDS",
    "CDNSKEY",
    "SRV",
]

ALLOWED: dict[str, str] = {
    "wildcard-owner-nodata": (
        "RFC 4592 4.4 / RFC 5155 7.2.3: a query for a wildcard's own name (*.wild) is an "
        "exact match, so its NODATA needs only the NSEC3 matching QNAME, which both give; NSD "
        "also adds one more NSEC3 (and its RRSIG), as for a wildcard NODATA (7.2.5). Allowed "
        "only when QNAME starts with '*', ours is a strict subset of NSD's, and the extra "
        "records are NSEC3 and their RRSIGs."
    ),
}

Record = tuple[str, str, int, str]  # owner, type, TTL, RDATA (or the RRSIG's fixed fields)


@dataclass(frozen=True)
class Shape:
    rcode: int
    flags: frozenset[str]
    answer: frozenset[Record]
    authority: frozenset[Record]

    @classmethod
    def of(cls, wire: bytes) -> Shape:
        message = dns.message.from_wire(wire)
        flags = frozenset(f for f, bit in (("AA", dns.flags.AA), ("TC", dns.flags.TC)) if message.flags & bit)
        return cls(message.rcode(), flags, _records(message.answer), _records(message.authority))


def _records(section: list[dns.rrset.RRset]) -> frozenset[Record]:
    found = set()
    for rrset in section:
        owner = rrset.name.to_text().lower()
        for rdata in rrset:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                covered = dns.rdatatype.to_text(rdata.type_covered)
                fixed = (
                    f"{rdata.algorithm} {rdata.labels} {rdata.original_ttl} {rdata.key_tag} {rdata.signer}"
                )
                found.add((owner, f"RRSIG({covered})", rrset.ttl, fixed.lower()))
            else:
                found.add((owner, dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, rdata.to_text().lower()))
    return frozenset(found)


def ask(server: Server, wire: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        tcp_send(sock, wire)
        return tcp_read(sock)


@dataclass
class Pair:
    ours: Server
    nsd: Server
    keys: Path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("signed-diff")
    text = (DATA / f"{ZONE}.zone").read_text()
    (folder / f"{ZONE}.zone").write_text(text)
    (folder / "keys").mkdir()
    config = folder / "dynserver.toml"
    config.write_text(
        f'[server]\ndns = ["127.0.0.1:0"]\n\n[server.rrl]\nexempt = ["127.0.0.0/8"]\n\n'
        f'[zones."{ZONE}"]\nfile = "{ZONE}.zone"\n\n'
        f'[zones."{ZONE}".dnssec]\nenabled = true\nkey_directory = "keys"\n'
    )
    with dynserver(config, zone=ZONE) as ours:
        query = dns.message.make_query(ZONE, "DNSKEY", want_dnssec=True)
        poll(
            lambda: dns.message.from_wire(ask(ours, query.to_wire())),
            lambda r: any(x.rdtype == dns.rdatatype.DNSKEY for x in r.answer),
            "dynserver to publish its DNSKEY",
        )
        # NSD gets the same zone with the same serial (dynserver may have moved it on).
        soa = dns.message.from_wire(ask(ours, dns.message.make_query(ZONE, "SOA").to_wire())).answer[0][0]
        same_serial = text.replace("2026010101 ; serial", f"{soa.serial} ; serial")
        signed = sign_zone(folder, ZONE, same_serial, folder / "keys")
        with nsd_serving(folder, ZONE, signed) as nsd:
            yield Pair(ours, nsd, folder / "keys")


def corpus() -> list[tuple[str, str]]:
    names = [f"{name}.{ZONE}" if name else ZONE for name in NAMES]
    return [(name, rdtype) for name in names for rdtype in TYPES]


def differences(qname: str, ours: Shape, theirs: Shape) -> tuple[list[str], list[str]]:
    """(allowed categories, unexplained differences)."""
    allowed: list[str] = []
    wrong: list[str] = []
    extra = theirs.authority - ours.authority
    if (
        qname.startswith("*.")
        and ours.authority < theirs.authority
        and all(r[1] in ("NSEC3", "RRSIG(NSEC3)") for r in extra)
    ):
        allowed.append("wildcard-owner-nodata")
        theirs = Shape(theirs.rcode, theirs.flags, theirs.answer, ours.authority)
    if ours.rcode != theirs.rcode:
        wrong.append(f"rcode: ours {dns.rcode.to_text(ours.rcode)}, NSD {dns.rcode.to_text(theirs.rcode)}")
    if ours.flags != theirs.flags:
        wrong.append(f"flags: ours {sorted(ours.flags)}, NSD {sorted(theirs.flags)}")
    for section in ("answer", "authority"):
        mine, other = getattr(ours, section), getattr(theirs, section)
        if mine != other:
            wrong.append(f"{section}: only ours {sorted(mine - other)}, only NSD {sorted(other - mine)}")
    return allowed, wrong


def test_the_same_keys_sign_both(pair: Pair) -> None:
    """The premise: NSD's DNSKEY RRset is dynserver's, key for key."""
    query = dns.message.make_query(ZONE, "DNSKEY", want_dnssec=True).to_wire()
    ours, theirs = Shape.of(ask(pair.ours, query)), Shape.of(ask(pair.nsd, query))
    assert {r for r in ours.answer if r[1] == "DNSKEY"} == {r for r in theirs.answer if r[1] == "DNSKEY"}
    assert any(r[1] == "DNSKEY" for r in ours.answer)


def test_same_signed_answers_as_nsd(pair: Pair) -> None:
    seen: Counter[str] = Counter()
    failures: list[str] = []
    probes = corpus()
    for name, rdtype in probes:
        query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
        query.flags &= ~dns.flags.RD
        wire = query.to_wire()
        allowed, wrong = differences(name, Shape.of(ask(pair.ours, wire)), Shape.of(ask(pair.nsd, wire)))
        seen.update(allowed)
        failures.extend(f"{name} {rdtype}: {w}" for w in wrong)
    print(f"\ncompared {len(probes)} signed answers with NSD; allowed differences: {dict(seen)}")
    assert len(probes) >= 800
    assert not failures, f"{len(failures)} unexplained differences:\n" + "\n".join(failures[:40])


def test_nsd_check_of_the_presigned_zone_is_clean(pair: Pair) -> None:
    """NSD's own checker accepts the zone it serves (the reference is sane)."""
    checker = require_program("nsd-checkzone", "nsd")
    signed = pair.keys.parent / f"{ZONE}.zone"
    done = subprocess.run(
        [checker, ZONE, str(signed)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
