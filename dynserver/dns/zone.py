"""Zone data as the answering core reads it: RRsets per name, cuts, the SOA.

A Zone is immutable. Building one computes what lookups need (empty non-terminals,
delegation points) once, so that answering is dictionary reads only.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dnslib import CNAME, MX, NS, PTR, RD, RR, SOA, DNSBuffer, DNSLabel

from dynserver.dns import wire
from dynserver.dns.names import name_from_dnslib, name_from_dnspython
from dynserver.types import Name

K = TypeVar("K")
V = TypeVar("V")

# RFC 3597 4: only the RFC 1035 types may have names compressed in their RDATA; every
# other type is carried as opaque bytes, which also keeps them exact on the wire.
_COMPRESSIBLE = {wire.TYPE_NS, wire.TYPE_CNAME, wire.TYPE_SOA, wire.TYPE_PTR, wire.TYPE_MX}


@dataclass(frozen=True, slots=True)
class RRset:
    """All records of one name and type. ``rdatas`` are dnslib RDATA objects."""

    name: Name
    rtype: int
    ttl: int
    rdatas: tuple[RD, ...]
    # Names whose addresses belong in the additional section (NS, MX, SRV targets).
    targets: tuple[Name, ...] = ()
    # A rotating RRset (a dynamic record's, health/policy.py rotation): answer after
    # answer, the index of the record that comes first, the others following in cyclic
    # order. Empty: always in the order of ``rdatas``.
    turns: tuple[int, ...] = ()

    def records(self, owner: Name | None = None) -> list[RR]:
        """dnslib records for rendering; ``owner`` replaces the name (wildcards)."""
        label = DNSLabel(list(self.name if owner is None else owner))
        return [
            RR(rname=label, rtype=self.rtype, rclass=wire.CLASS_IN, ttl=self.ttl, rdata=rd)
            for rd in self.rdatas
        ]

    def with_ttl(self, ttl: int) -> RRset:
        return replace(self, ttl=ttl)

    def texts(self) -> list[str]:
        """Presentation form of each RDATA (for the web UI, logs and tests)."""
        return [_rdata_text(self.rtype, rd) for rd in self.rdatas]


def _rdata_text(rtype: int, rd: RD) -> str:
    data = _rd_wire(rd)
    rdata = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.RdataType(rtype), data, 0, len(data))
    return str(rdata.to_text())


class _Uncompressed(DNSBuffer):  # type: ignore[misc]
    """A buffer that writes every name in full: RDATA that stands on its own."""

    def encode_name(self, name: DNSLabel) -> None:
        self.encode_name_nocompress(name)


def rdata_wire(rd: RD) -> bytes:
    """An RDATA's wire form with every name written in full (no compression pointer):
    what transfers copy and signatures cover."""
    buffer = _Uncompressed()
    rd.pack(buffer)
    return bytes(buffer.data)


def _rd_wire(rd: RD) -> bytes:
    buffer = DNSBuffer()
    rd.pack(buffer)  # a fresh buffer: no compression pointers can appear
    return bytes(buffer.data)


def rd_from_rdata(rdata: Any) -> RD:
    """Convert a dnspython RDATA (our text parser) to a dnslib one (our wire writer)."""
    data = rdata.to_wire()
    rtype = int(rdata.rdtype)
    if rtype not in _COMPRESSIBLE:
        return RD(data)
    if rtype == wire.TYPE_SOA:
        return SOA(
            _label(rdata.mname),
            _label(rdata.rname),
            (rdata.serial, rdata.refresh, rdata.retry, rdata.expire, rdata.minimum),
        )
    if rtype == wire.TYPE_MX:
        return MX(_label(rdata.exchange), rdata.preference)
    cls = {wire.TYPE_NS: NS, wire.TYPE_CNAME: CNAME, wire.TYPE_PTR: PTR}[rtype]
    return cls(_label(rdata.target))


def _label(name: dns.name.Name) -> DNSLabel:
    return DNSLabel(list(name.labels[:-1]))


def additional_targets(rdata: Any) -> Name | None:
    rtype = int(rdata.rdtype)
    if rtype == wire.TYPE_NS:
        return name_from_dnspython(rdata.target)
    if rtype == wire.TYPE_MX:
        return name_from_dnspython(rdata.exchange)
    if rtype == wire.TYPE_SRV:
        return name_from_dnspython(rdata.target)
    return None


def make_rrset(name: Name, rtype: int, ttl: int, rdatas: Iterable[dns.rdata.Rdata]) -> RRset:
    """Build an RRset from parsed RDATA, dropping duplicates (RFC 2181 5: a set)."""
    seen: set[bytes] = set()
    rds: list[RD] = []
    targets: list[Name] = []
    for rdata in rdatas:
        key = rdata.to_digestable()
        if key in seen:
            continue
        seen.add(key)
        rds.append(rd_from_rdata(rdata))
        target = additional_targets(rdata)
        if target is not None and target not in targets:
            targets.append(target)
    return RRset(name=name, rtype=rtype, ttl=ttl, rdatas=tuple(rds), targets=tuple(targets))


def rrset_from_texts(name: Name, rtype: int, ttl: int, texts: Iterable[str]) -> RRset:
    """Build an RRset from presentation-form RDATA (absolute names)."""
    origin = dns.name.root
    kind = dns.rdatatype.RdataType(rtype)
    rdatas = [
        dns.rdata.from_text(dns.rdataclass.IN, kind, text, origin=origin, relativize=False) for text in texts
    ]
    return make_rrset(name, rtype, ttl, rdatas)


@dataclass(frozen=True, slots=True)
class SoaFields:
    mname: Name
    rname: Name
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


def soa_fields(rrset: RRset) -> SoaFields:
    rd = rrset.rdatas[0]
    assert isinstance(rd, SOA)
    serial, refresh, retry, expire, minimum = rd.times
    return SoaFields(
        mname=name_from_dnslib(rd.mname),
        rname=name_from_dnslib(rd.rname),
        serial=serial,
        refresh=refresh,
        retry=retry,
        expire=expire,
        minimum=minimum,
    )


def soa_rrset(origin: Name, ttl: int, fields: SoaFields) -> RRset:
    rd = SOA(
        DNSLabel(list(fields.mname)),
        DNSLabel(list(fields.rname)),
        (fields.serial, fields.refresh, fields.retry, fields.expire, fields.minimum),
    )
    return RRset(name=origin, rtype=wire.TYPE_SOA, ttl=ttl, rdatas=(rd,))


# -- DNSSEC: what a signed zone carries (dynserver/dnssec/signer.py builds it) ------------
#
# One RRSIG RRset per (owner, type) of authoritative data, with the RRset it covers (so a
# later change can tell whether the signature still fits); the NSEC3 chain (RFC 5155 with
# RFC 9276's parameters: SHA-1, no extra iteration, no salt, no opt-out): every
# authoritative name's hash, the sorted hashes, and each NSEC3 RRset with its RRSIG.
# Proofs need a hash only for a name that does not exist (NXDOMAIN's next closer name and
# wildcard): one SHA-1 and a bisection. Everything else is a dictionary read.

TYPE_RRSIG = 46
TYPE_NSEC3 = 50
TYPE_NSEC3PARAM = 51
TYPE_DNSKEY = 48
TYPE_CDS = 59
TYPE_CDNSKEY = 60
# The apex RRsets the signer adds from the keys (not from the master file).
APEX_TYPES = frozenset({TYPE_DNSKEY, TYPE_CDS, TYPE_CDNSKEY, TYPE_NSEC3PARAM})
NSEC3_SHA1 = 1
# RFC 9276 3.1: no extra iteration, no salt.
NSEC3_ITERATIONS = 0
NSEC3_SALT = b""
NSEC3PARAM_RDATA = bytes((NSEC3_SHA1, 0)) + NSEC3_ITERATIONS.to_bytes(2, "big") + b"\x00"

_B32_STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_HEX = b"0123456789abcdefghijklmnopqrstuv"
_TO_HEX = bytes.maketrans(_B32_STD, _B32_HEX)

Signature = tuple[RRset, RRset]  # (the RRset covered, its RRSIG RRset)


def nsec3_hash(name: Name) -> bytes:
    """RFC 5155 5 with no salt and no extra iteration: SHA-1 of the canonical wire name."""
    return hashlib.sha1(wire.name_to_wire(name).lower() + NSEC3_SALT).digest()


def hashed_owner(digest: bytes, origin: Name) -> Name:
    """The NSEC3 owner name of a hash: its base32hex form (lower case) under the apex."""
    return (base64.b32encode(digest).translate(_TO_HEX), *origin)


@dataclass(frozen=True, slots=True)
class Signed:
    """A zone's signatures and NSEC3 chain (see the comment above)."""

    sigs: Mapping[Name, Mapping[int, Signature]]
    hashes: Mapping[Name, bytes]  # every name in the chain -> its hash
    chain: tuple[bytes, ...]  # the hashes, sorted
    nsec3: Mapping[Name, Signature]  # NSEC3 owner name -> (NSEC3 RRset, its RRSIG)
    origin: Name

    def rrsig(self, name: Name, rtype: int) -> RRset | None:
        found = self.sigs.get(name, {}).get(rtype)
        return found[1] if found is not None else None

    def matching(self, name: Name) -> Signature | None:
        """The NSEC3 of a name of the zone (an empty non-terminal too), if it has one."""
        digest = self.hashes.get(name)
        if digest is None:
            return None
        return self.nsec3.get(hashed_owner(digest, self.origin))

    def covering(self, name: Name) -> Signature:
        """The NSEC3 whose interval holds the hash of ``name`` (a name that is not in the
        chain): the previous hash in the sorted chain, the last one for a hash below the first."""
        digest = nsec3_hash(name)
        index = bisect.bisect_right(self.chain, digest) - 1
        return self.nsec3[hashed_owner(self.chain[index], self.origin)]

    def rrsets(self) -> Iterator[RRset]:
        """Every RRSIG and NSEC3 RRset (zone transfers)."""
        for node in self.sigs.values():
            for _, sig in node.values():
                yield sig
        for nsec3, sig in self.nsec3.values():
            yield nsec3
            yield sig

    def at(self, name: Name) -> list[RRset]:
        """The RRSIG RRsets of a name, or its NSEC3 and RRSIG if it is an NSEC3 owner."""
        found = [sig for _, sig in self.sigs.get(name, {}).values()]
        pair = self.nsec3.get(name)
        if pair is not None:
            found += list(pair)
        return found


@dataclass(frozen=True)
class Zone:
    """One authoritative zone, ready for lookups.

    ``nodes`` holds every name that exists, including empty non-terminals (an empty
    mapping), so "does this name exist" is one dictionary read.
    """

    origin: Name
    nodes: Mapping[Name, Mapping[int, RRset]]
    cuts: frozenset[Name]
    soa: RRset
    # Signatures and the NSEC3 chain (dynserver/dns/signed.py) when the zone is signed;
    # copies made by with_nodes, without and with_serial keep them: the signer
    # (dynserver/dnssec/signer.py) then renews what the change made stale.
    signed: Signed | None = None
    negative_ttl: int = field(init=False)

    def __post_init__(self) -> None:
        # RFC 2308 5: the TTL of a negative answer is min(SOA TTL, SOA MINIMUM).
        object.__setattr__(self, "negative_ttl", min(self.soa.ttl, soa_fields(self.soa).minimum))

    @property
    def serial(self) -> int:
        return soa_fields(self.soa).serial

    @property
    def negative_soa(self) -> RRset:
        return self.soa.with_ttl(self.negative_ttl)

    def rrsets(self) -> Iterable[RRset]:
        for node in self.nodes.values():
            yield from node.values()

    @classmethod
    def build(cls, origin: Name, rrsets: Iterable[RRset], empty_names: Iterable[Name] = ()) -> Zone:
        """Index RRsets (all at or below ``origin``; one SOA at the apex).

        ``empty_names`` exist without data (a dynamic record whose fallback is "none"
        answers NODATA, not NXDOMAIN)."""
        nodes: dict[Name, dict[int, RRset]] = {origin: {}}
        depth = len(origin)
        for name in empty_names:
            for i in range(len(name) - depth):
                nodes.setdefault(name[i:], {})
        for rrset in rrsets:
            assert rrset.name[len(rrset.name) - depth :] == origin, "out-of-zone data"
            nodes.setdefault(rrset.name, {})[rrset.rtype] = rrset
            # Every ancestor up to the apex exists (RFC 4592 2.2.2 empty non-terminals).
            for i in range(1, len(rrset.name) - depth):
                nodes.setdefault(rrset.name[i:], {})
        soa = nodes[origin].get(wire.TYPE_SOA)
        if soa is None:
            raise ValueError("zone has no SOA at its apex")
        cuts = frozenset(name for name, node in nodes.items() if name != origin and wire.TYPE_NS in node)
        frozen = {name: MappingProxyType(node) for name, node in nodes.items()}
        return cls(origin=origin, nodes=MappingProxyType(frozen), cuts=cuts, soa=soa)

    def with_nodes(self, nodes: Mapping[Name, Mapping[int, RRset]], serial: int | None = None) -> Zone:
        """A copy with these names' data replaced (dynamic records: never NS, never SOA),
        and with ``serial`` the new serial, as ``with_serial`` gives it.

        Copying the name index is a C-level dict copy; no other name is rebuilt. With the
        serial it is one copy, not two: at 20,000 targets a copy is ~0.6 ms, and a
        health change's publish made two."""
        index = _copy_index(self.nodes)
        depth = len(self.origin)
        for name, node in nodes.items():
            index[name] = MappingProxyType(dict(node))
            for i in range(1, len(name) - depth):
                if name[i:] not in index:
                    index[name[i:]] = MappingProxyType({})
        if serial is None:
            return replace(self, nodes=MappingProxyType(index))
        soa = self._soa_with(serial)
        apex = dict(index[self.origin])
        apex[wire.TYPE_SOA] = soa
        index[self.origin] = MappingProxyType(apex)
        return Zone(
            origin=self.origin, nodes=MappingProxyType(index), cuts=self.cuts, soa=soa, signed=self.signed
        )

    def without(self, names: Iterable[Name]) -> Zone:
        """A copy without these names, each where it holds no data and no name lies below
        it (a removed ACME challenge: NXDOMAIN again, as before it was added). Their
        ancestors stay: one may be a dynamic record's name answering NODATA on purpose."""
        index = _copy_index(self.nodes)
        for name in names:
            if name == self.origin or index.get(name, True):
                continue  # not there, the apex, or still holding data
            if any(len(other) > len(name) and other[-len(name) :] == name for other in index):
                continue  # an empty non-terminal: names below it keep it
            del index[name]
        return replace(self, nodes=MappingProxyType(index))

    def with_serial(self, serial: int) -> Zone:
        soa = self._soa_with(serial)
        apex = dict(self.nodes[self.origin])
        apex[wire.TYPE_SOA] = soa
        nodes = _copy_index(self.nodes)
        nodes[self.origin] = MappingProxyType(apex)
        return Zone(
            origin=self.origin, nodes=MappingProxyType(nodes), cuts=self.cuts, soa=soa, signed=self.signed
        )

    def _soa_with(self, serial: int) -> RRset:
        return soa_rrset(self.origin, self.soa.ttl, replace(soa_fields(self.soa), serial=serial))


def copy_mapping(mapping: Mapping[K, V]) -> dict[K, V]:
    """A mutable copy of a mapping a Zone keeps (a MappingProxyType over a dict) at C speed:
    ``dict(proxy)`` goes key by key through the mapping protocol (see ``_copy_index``)."""
    if isinstance(mapping, MappingProxyType | dict):
        return mapping.copy()
    return dict(mapping)


def _copy_index(nodes: Mapping[Name, Mapping[int, RRset]]) -> dict[Name, Mapping[int, RRset]]:
    """A mutable copy of a zone's name index, the fast way.

    ``dict(proxy)`` of a MappingProxyType goes key by key through the mapping protocol:
    1.5 ms for 6,000 names, twice per publish, which made thousands of start-up
    transitions saturate the event loop. ``proxy.copy()`` copies the dict inside in C
    (~50 µs)."""
    if isinstance(nodes, MappingProxyType | dict):
        return nodes.copy()  # the proxy holds a dict: its copy is one
    return dict(nodes)
