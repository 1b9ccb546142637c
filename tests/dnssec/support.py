"""Signed zones for the tests, and an independent check of what a DO=1 reply proves.

The signatures are checked by dnspython's ``dns.dnssec.validate`` and the NSEC3 proofs by
the rules of RFC 5155 8 written here from the RFC, with dnspython's ``nsec3_hash``: the
signer's own code judges nothing.
"""

from __future__ import annotations

import base64
import time
import warnings
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset

from dynserver import config
from dynserver.dns.snapshot import Snapshot
from dynserver.dns.zone import Zone
from dynserver.dnssec.keys import Key, generate
from dynserver.dnssec.signer import Policy, ZoneSigner
from tests.dns.zones import DYN, OTHER
from tests.snapshots import ask
from tests.support import write_config

with warnings.catch_warnings():  # dnspython's DSA support warns on import
    warnings.simplefilter("ignore")
    import dns.dnssec

DYN_ORIGIN = dns.name.from_text("dyn.example.test.")
OTHER_ORIGIN = dns.name.from_text("other.test.")
RRSIG = dns.rdatatype.RRSIG
NSEC3 = dns.rdatatype.NSEC3


def signed_zones(
    folder: Path, zone_files: dict[str, str] | None = None, algorithm: int = 13, now: float | None = None
) -> tuple[dict[tuple[bytes, ...], Zone], dict[tuple[bytes, ...], ZoneSigner]]:
    loaded = config.load(write_config(folder, zone_files or {"dyn.example.test": DYN, "other.test": OTHER}))
    now = time.time() if now is None else now
    zones = {}
    signers = {}
    for zone_config in loaded.zones:
        key = generate(zone_config.name, algorithm, now)
        signer = ZoneSigner(zone_config.name, [key], Policy())
        soa_ttl = next(r.ttl for r in zone_config.rrsets if r.rtype == 6)
        zone = Zone.build(zone_config.name, [*zone_config.rrsets, *signer.apex_rrsets(soa_ttl, now)])
        zones[zone_config.name] = signer.sign(zone, now)
        signers[zone_config.name] = signer
    return zones, signers


def dnskeys(snapshot: Snapshot) -> dict[dns.name.Name, dns.rrset.RRset]:
    keys = {}
    for origin in (DYN_ORIGIN, OTHER_ORIGIN):
        reply = ask(snapshot, dns.message.make_query(origin, "DNSKEY", want_dnssec=True))
        keys[origin] = reply.find_rrset(reply.answer, origin, 1, dns.rdatatype.DNSKEY)
    return keys


def query(snapshot: Snapshot, qname: str, qtype: str, *, tcp: bool = False) -> dns.message.Message:
    return ask(snapshot, dns.message.make_query(qname, qtype, want_dnssec=True, payload=1232), tcp=tcp)


def validate_sections(reply: dns.message.Message, keys: dict[dns.name.Name, dns.rrset.RRset]) -> None:
    """Every RRset of the answer and authority sections has an RRSIG that validates, but
    a delegation's NS (which must have none); in the additional section, what is signed
    validates (glue below a cut is not signed)."""
    for section in (reply.answer, reply.authority, reply.additional):
        for rrset in section:
            if rrset.rdtype in (RRSIG, dns.rdatatype.OPT):
                continue
            sigs = [
                s for s in section if s.rdtype == RRSIG and s.name == rrset.name and s.covers == rrset.rdtype
            ]
            if rrset.rdtype == dns.rdatatype.NS and section is reply.authority and rrset.name not in keys:
                assert not sigs, f"a delegation's NS must not be signed: {rrset}"
                continue
            if section is reply.additional and not sigs:
                continue  # glue below a cut is not signed
            assert sigs, f"no RRSIG for {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"
            dns.dnssec.validate(rrset, sigs[0], keys)


def _hash(name: dns.name.Name) -> str:
    return dns.dnssec.nsec3_hash(name, salt=None, iterations=0, algorithm=1).lower()


def _nsec3s(reply: dns.message.Message) -> list[tuple[str, str, dns.rdata.Rdata]]:
    found = []
    for rrset in reply.authority:
        if rrset.rdtype == NSEC3:
            rdata = rrset[0]
            assert rdata.iterations == 0 and rdata.salt == b"" and rdata.algorithm == 1 and rdata.flags == 0
            owner = rrset.name.labels[0].decode().lower()
            following = (
                base64.b32encode(rdata.next)
                .decode()
                .translate(
                    str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789abcdefghijklmnopqrstuv")
                )
            )
            found.append((owner, following, rdata))
    return found


def matches(reply: dns.message.Message, name: dns.name.Name) -> dns.rdata.Rdata | None:
    digest = _hash(name)
    for owner, _, rdata in _nsec3s(reply):
        if owner == digest:
            return rdata
    return None


def covers(reply: dns.message.Message, name: dns.name.Name) -> bool:
    digest = _hash(name)
    for owner, following, _ in _nsec3s(reply):
        if owner < following and owner < digest < following:
            return True
        if owner >= following and (digest > owner or digest < following):  # the last wraps
            return True
    return False


def types(rdata: dns.rdata.Rdata) -> set[int]:
    found = set()
    for window, bitmap in rdata.windows:
        for i, byte in enumerate(bitmap):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    found.add(window * 256 + i * 8 + bit)
    return found


def closest_encloser_proof(reply: dns.message.Message, qname: dns.name.Name) -> dns.name.Name:
    """RFC 5155 8.3: an ancestor matched, the next closer name covered; returns the encloser."""
    name = qname
    while len(name) > 1:
        parent = name.parent()
        if matches(reply, parent) is not None:
            assert covers(reply, name), f"next closer {name} not covered"
            return parent
        name = parent
    raise AssertionError(f"no closest encloser proof for {qname}")


def key_of(signers: dict[tuple[bytes, ...], ZoneSigner], origin: tuple[bytes, ...]) -> Key:
    return signers[origin].keys[0]
