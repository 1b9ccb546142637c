"""Signing a zone when it changes: RRSIGs per (owner, type) and the NSEC3 chain.

Nothing here runs per query. ``ZoneSigner.sign`` signs a whole zone (start, reload, a new
key set); ``ZoneSigner.update`` renews what a change made stale (the changed names, the
apex's SOA, the NSEC3 records whose interval or type bitmap moved) and returns the names
whose DNSSEC records changed, so the snapshot drops exactly the replies that showed them
and the journal carries them to the secondaries; ``ZoneSigner.refresh`` re-signs the
signatures that come near their expiry, a slice at a time.

Signatures are made by ``cryptography`` over the RFC 4034 3.1.8.1 signing data, which
this module lays out itself: ~4x faster per RRSIG than ``dns.dnssec.sign`` (measured in
docs/dnssec.md). Each signature's validity is shortened by a random part of up to a tenth
of it, so that a zone signed at once is not due for re-signing at once.
"""

from __future__ import annotations

import bisect
import random
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dnslib import CNAME, MX, NS, PTR, RD, SOA, DNSLabel

from dynserver.dns import wire
from dynserver.dns.zone import (
    NSEC3_SHA1,
    NSEC3PARAM_RDATA,
    TYPE_CDNSKEY,
    TYPE_CDS,
    TYPE_DNSKEY,
    TYPE_NSEC3,
    TYPE_NSEC3PARAM,
    TYPE_RRSIG,
    RRset,
    Signature,
    Signed,
    Zone,
    copy_mapping,
    hashed_owner,
    nsec3_hash,
    rdata_wire,
)
from dynserver.dnssec.keys import Key
from dynserver.types import Name

DAY = 86400.0
_RRSIG_FIXED = struct.Struct("!HBBIIIH")
_RR_FIXED = struct.Struct("!HHIH")
# Types whose RDATA holds names that the canonical form lower-cases (RFC 4034 6.2, as
# RFC 6840 5.1 and RFC 3597 7 leave the list); dnspython knows each one's layout.
_NAME_TYPES = frozenset({2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 15, 17, 18, 21, 24, 26, 30, 33, 35, 36, 39})


@dataclass(frozen=True, slots=True)
class Policy:
    """How long signatures are valid, when they are renewed, how far inception is backdated."""

    validity: float = 14 * DAY
    refresh: float = 7 * DAY
    inception_offset: float = 3600.0


def canonical_rdata(rtype: int, rd: RD) -> bytes:
    """RFC 4034 6.2: names in the RDATA of the listed types in lower case, uncompressed.

    SOA, NS, CNAME, PTR and MX (what a failover re-signs: the SOA every time) are laid out
    here from dnslib's fields; the other types with names go through dnspython."""
    if isinstance(rd, SOA):
        return _lower_name(rd.mname) + _lower_name(rd.rname) + struct.pack("!IIIII", *rd.times)
    if isinstance(rd, MX):
        return bytes(rd.preference.to_bytes(2, "big")) + _lower_name(rd.label)
    if isinstance(rd, CNAME | NS | PTR):
        return _lower_name(rd.label)
    data = rdata_wire(rd)
    if rtype not in _NAME_TYPES:
        return data
    rdata = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.RdataType(rtype), data, 0, len(data))
    return bytes(rdata.to_digestable())


def _lower_name(label: DNSLabel) -> bytes:
    return wire.name_to_wire(tuple(part.lower() for part in label.label))


def type_bitmap(types: Iterable[int]) -> bytes:
    """The NSEC3 type bit maps field (RFC 4034 4.1.2): windows of up to 32 octets."""
    windows: dict[int, bytearray] = {}
    for rtype in sorted(set(types)):
        window, bit = divmod(rtype, 256)
        bits = windows.setdefault(window, bytearray(32))
        bits[bit // 8] |= 0x80 >> (bit % 8)
    out = bytearray()
    for window, bits in sorted(windows.items()):
        length = max(i for i, byte in enumerate(bits) if byte) + 1
        out += bytes((window, length)) + bits[:length]
    return bytes(out)


class ZoneSigner:
    """Signs one zone with its keys (keys.py says which key does what, and when)."""

    def __init__(self, origin: Name, keys: Sequence[Key], policy: Policy, rng: random.Random | None = None):
        self.origin = origin
        self.keys = tuple(keys)
        self.policy = policy
        self._random = rng or random.Random()
        self._origin_wire = wire.name_to_wire(origin)

    # -- what the keys say ---------------------------------------------------------------

    def state(self, now: float) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Which keys are published, sign, and are announced to the parent, at ``now``:
        when this changes, the zone is signed again (a rollover's step)."""
        return (
            tuple(sorted(k.tag for k in self.keys if k.published(now))),
            tuple(sorted(k.tag for k in self.keys if k.signing(now))),
            tuple(sorted(k.tag for k in self.keys if k.for_parent(now))),
        )

    def apex_rrsets(self, ttl: int, now: float) -> list[RRset]:
        """DNSKEY (published keys), CDS and CDNSKEY (keys for the parent, RFC 7344 and
        RFC 8078: SHA-256 digests), and NSEC3PARAM (RFC 9276: SHA-1, no iteration, no salt)."""
        origin = self.origin
        published = [k for k in self.keys if k.published(now)]
        parent = [k for k in published if k.for_parent(now)]
        found = [RRset(origin, TYPE_NSEC3PARAM, 0, (RD(NSEC3PARAM_RDATA),))]
        if published:
            found.append(RRset(origin, TYPE_DNSKEY, ttl, tuple(RD(k.rdata) for k in published)))
        if parent:
            found.append(RRset(origin, TYPE_CDS, ttl, tuple(RD(k.ds_rdata()) for k in parent)))
            found.append(RRset(origin, TYPE_CDNSKEY, ttl, tuple(RD(k.rdata) for k in parent)))
        return found

    # -- one signature ------------------------------------------------------------------

    def sign_rrset(self, rrset: RRset, now: float) -> RRset:
        """The RRSIG RRset of an RRset: one RRSIG per signing key (RFC 4034 3)."""
        signers = [k for k in self.keys if k.signing(now)]
        owner = rrset.name
        labels = len(owner) - 1 if owner and owner[0] == b"*" else len(owner)
        inception = int(now - self.policy.inception_offset)
        validity = self.policy.validity
        expiration = int(now + validity - self._random.uniform(0, validity / 10))
        owner_wire = wire.name_to_wire(owner).lower()
        head = owner_wire + _RR_FIXED.pack(rrset.rtype, wire.CLASS_IN, rrset.ttl, 0)[:-2]
        rdatas = sorted(canonical_rdata(rrset.rtype, rd) for rd in rrset.rdatas)
        records = b"".join(head + len(data).to_bytes(2, "big") + data for data in rdatas)
        sigs = []
        for key in signers:
            fixed = _RRSIG_FIXED.pack(
                rrset.rtype, key.algorithm, labels, rrset.ttl, expiration & 0xFFFFFFFF, inception, key.tag
            )
            rdata = fixed + self._origin_wire
            sigs.append(RD(rdata + key.sign(rdata + records)))
        return RRset(owner, TYPE_RRSIG, rrset.ttl, tuple(sigs))

    # -- a whole zone, and changes to it ------------------------------------------------

    def sign(self, zone: Zone, now: float) -> Zone:
        """The zone with every authoritative RRset signed and a new NSEC3 chain."""
        empty = Signed(sigs={}, hashes={}, chain=(), nsec3={}, origin=self.origin)
        signed, _ = self._update(zone, empty, list(zone.nodes), now, full=True)
        return _with_signed(zone, signed)

    def update(self, zone: Zone, names: Iterable[Name], now: float) -> tuple[Zone, set[Name]]:
        """Renew what changed at ``names`` (and the apex: the SOA serial moved) in a zone
        that carries its previous signatures; returns the zone and every name whose
        records changed (the names given, and NSEC3 owner names)."""
        previous = zone.signed
        if previous is None or _nsec3_ttl(previous) not in (None, zone.negative_ttl):
            signed = self.sign(zone, now).signed
            assert signed is not None
            return _with_signed(zone, signed), set(zone.nodes) | set(signed.nsec3) | _owners(previous)
        affected: set[Name] = {self.origin}
        depth = len(self.origin)
        for name in names:
            for i in range(len(name) - depth + 1):
                affected.add(name[i:])  # its ancestors may have appeared or gone
        signed, changed = self._update(zone, previous, sorted(affected), now, full=False)
        return _with_signed(zone, signed), changed

    def due(self, zone: Zone, now: float, limit: int) -> list[Name]:
        """Up to ``limit`` names (data and NSEC3 owners) with a signature expiring within
        the refresh period, soonest first."""
        signed = zone.signed
        if signed is None:
            return []
        horizon = now + self.policy.refresh
        found: list[tuple[int, Name]] = []
        for name, node in signed.sigs.items():
            soonest = min(_expiration(sig) for _, sig in node.values())
            if soonest < horizon:
                found.append((soonest, name))
        for owner, (_, sig) in signed.nsec3.items():
            if _expiration(sig) < horizon:
                found.append((_expiration(sig), owner))
        found.sort()
        return [name for _, name in found[:limit]]

    def refresh(self, zone: Zone, names: Iterable[Name], now: float) -> tuple[Zone, set[Name]]:
        """Sign these names' RRsets (and NSEC3 records, for NSEC3 owners) anew."""
        signed = zone.signed
        assert signed is not None
        sigs = copy_mapping(signed.sigs)
        nsec3 = copy_mapping(signed.nsec3)
        changed: set[Name] = set()
        for name in names:
            if name in nsec3:
                record, _ = nsec3[name]
                nsec3[name] = (record, self.sign_rrset(record, now))
                changed.add(name)
            elif name in sigs:
                sigs[name] = MappingProxyType(
                    {rtype: (rrset, self.sign_rrset(rrset, now)) for rtype, (rrset, _) in sigs[name].items()}
                )
                changed.add(name)
        new = Signed(
            sigs=MappingProxyType(sigs),
            hashes=signed.hashes,
            chain=signed.chain,
            nsec3=MappingProxyType(nsec3),
            origin=self.origin,
        )
        return _with_signed(zone, new), changed

    def _update(
        self, zone: Zone, previous: Signed, names: list[Name], now: float, *, full: bool
    ) -> tuple[Signed, set[Name]]:
        origin = self.origin
        cuts = zone.cuts
        sigs = {} if full else copy_mapping(previous.sigs)
        hashes = {} if full else copy_mapping(previous.hashes)
        nsec3 = {} if full else copy_mapping(previous.nsec3)
        chain = [] if full else list(previous.chain)
        changed: set[Name] = set(names)
        members: list[Name] = []
        inserted: list[bytes] = []
        removed: list[bytes] = []
        horizon = now + self.policy.refresh
        for name in names:
            node = zone.nodes.get(name)
            in_chain = node is not None and not _occluded(name, cuts, len(origin))
            if in_chain:
                assert node is not None
                old = previous.sigs.get(name, {})
                fresh: dict[int, Signature] = {}
                for rtype, rrset in node.items():
                    if name in cuts and rtype != wire.TYPE_DS:
                        continue  # the delegation's NS is the child's: not signed here
                    kept = old.get(rtype)
                    if kept is not None and kept[0] is rrset and _expiration(kept[1]) >= horizon:
                        fresh[rtype] = kept
                    else:
                        fresh[rtype] = (rrset, self.sign_rrset(rrset, now))
                if fresh:
                    sigs[name] = MappingProxyType(fresh)
                else:
                    sigs.pop(name, None)
                members.append(name)
                if name not in hashes:
                    digest = nsec3_hash(name)
                    hashes[name] = digest
                    inserted.append(digest)
            else:
                sigs.pop(name, None)
                digest_gone = hashes.pop(name, None)
                if digest_gone is not None:
                    removed.append(digest_gone)
        if full:
            chain = sorted(hashes.values())
        else:
            for digest in removed:
                index = bisect.bisect_left(chain, digest)
                del chain[index]
                nsec3.pop(hashed_owner(digest, origin), None)
                changed.add(hashed_owner(digest, origin))
            for digest in inserted:
                bisect.insort(chain, digest)
        if not chain:
            return Signed(
                MappingProxyType(sigs), MappingProxyType(hashes), (), MappingProxyType({}), origin
            ), changed
        # NSEC3 records to (re)make: the members' own (bitmap), and the predecessors of
        # every hash inserted or removed (their "next hashed owner" moved).
        dirty: dict[bytes, Name | None] = {hashes[name]: name for name in members}
        count = len(chain)
        for digest in [*inserted, *removed]:
            index = bisect.bisect_left(chain, digest)
            if index < count and chain[index] == digest:
                dirty.setdefault(digest, None)
            dirty.setdefault(chain[index - 1], None)  # index 0 - 1: the last wraps around
        ttl = zone.negative_ttl  # RFC 9077: min(SOA TTL, SOA MINIMUM)
        for digest, member in dirty.items():
            index = bisect.bisect_left(chain, digest)
            following = chain[(index + 1) % count]
            owner = hashed_owner(digest, origin)
            current = nsec3.get(owner)
            if member is not None:
                bitmap = type_bitmap(self._types(zone, member, sigs))
            elif current is not None:
                bitmap = rdata_wire(current[0].rdatas[0])[26:]
            else:  # pragma: no cover - a dirty hash is a member or was in the chain
                continue
            rdata = bytes((NSEC3_SHA1, 0, 0, 0, 0, 20)) + following + bitmap
            if current is not None and current[0].ttl == ttl and rdata_wire(current[0].rdatas[0]) == rdata:
                continue
            record = RRset(owner, TYPE_NSEC3, ttl, (RD(rdata),))
            nsec3[owner] = (record, self.sign_rrset(record, now))
            changed.add(owner)
        signed = Signed(
            sigs=MappingProxyType(sigs),
            hashes=MappingProxyType(hashes),
            chain=tuple(chain),
            nsec3=MappingProxyType(nsec3),
            origin=origin,
        )
        return signed, changed

    def _types(self, zone: Zone, name: Name, sigs: Mapping[Name, Mapping[int, Signature]]) -> list[int]:
        types = list(zone.nodes[name])
        if name in sigs:
            types.append(TYPE_RRSIG)
        return types


def _occluded(name: Name, cuts: frozenset[Name], depth: int) -> bool:
    """Below a delegation: glue or occluded data, neither signed nor in the chain."""
    return any(name[i:] in cuts for i in range(1, len(name) - depth))


def _expiration(sig: RRset) -> int:
    return min(int.from_bytes(rd.data[8:12], "big") for rd in sig.rdatas)


def _nsec3_ttl(signed: Signed) -> int | None:
    for record, _ in signed.nsec3.values():
        return record.ttl
    return None


def _owners(signed: Signed | None) -> set[Name]:
    return set() if signed is None else set(signed.nsec3) | set(signed.sigs)


def _with_signed(zone: Zone, signed: Signed) -> Zone:
    return Zone(origin=zone.origin, nodes=zone.nodes, cuts=zone.cuts, soa=zone.soa, signed=signed)
