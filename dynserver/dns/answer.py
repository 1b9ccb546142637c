"""The answering core: which records answer a question, and how they go on the wire.

Pure functions over immutable zones (RFC 1034 4.3.2 for an authoritative-only server):
no sockets, no clock, no randomness. ``resolve`` decides the content of a reply,
``render`` lays it out within a size limit, truncating per RFC 2181 9 when it must.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from dnslib import RR, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from dynserver.dns import wire
from dynserver.dns.names import name_from_dnslib
from dynserver.dns.zone import TYPE_RRSIG, RRset, Signature, Signed, Zone
from dynserver.types import Name

# A CNAME chain longer than this inside our own data is a loop or a misconfiguration;
# resolvers give up long before (unbound: 11 steps).
MAX_CHAIN = 12
_ADDRESS_TYPES = (wire.TYPE_A, wire.TYPE_AAAA)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a reply says, before it is laid out on the wire.

    ``additional`` holds optional RRsets (dropped first when space runs out);
    ``glue`` holds the in-domain glue a referral cannot do without (RFC 9471).
    """

    rcode: int
    aa: bool
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    glue: tuple[tuple[RR, ...], ...] = ()
    additional: tuple[tuple[RR, ...], ...] = ()
    rotation: Rotation | None = None  # a rotating RRset in ``answer`` (see ``rotations``)


REFUSED = Resolution(rcode=wire.REFUSED, aa=False)


@dataclass(frozen=True, slots=True)
class Rotation:
    """A rotating RRset in a resolution's answer: its records are ``answer[start:start +
    size]``, and ``turns`` (from RRset.turns) says which comes first, answer after answer."""

    start: int
    size: int
    turns: tuple[int, ...]


def rotation_of(answer: tuple[RR, ...], rrset: RRset, start: int) -> Rotation | None:
    """The rotation of ``rrset`` written at ``answer[start:]``, or None if it is fixed."""
    size = len(rrset.rdatas)
    if not rrset.turns or size < 2 or len(answer) < start + size:
        return None
    return Rotation(start, size, rrset.turns)


def rotations(res: Resolution, rotation: Rotation) -> list[Resolution]:
    """The resolution once per first record of the rotating RRset: variant ``i`` starts
    with its record ``i``, the others following in cyclic order. Only the order of those
    records changes; every other record of the reply stays where it was."""
    start, size = rotation.start, rotation.size
    members = res.answer[start : start + size]
    head, tail = res.answer[:start], res.answer[start + size :]
    return [replace(res, answer=head + members[i:] + members[:i] + tail) for i in range(size)]


def find_zone(zones: Mapping[Name, Zone], qname: Name, qtype: int = wire.TYPE_A) -> Zone | None:
    """The most specific zone we serve that holds the answer to (``qname``, ``qtype``).

    That is the zone closest to ``qname``, except for DS: a DS RRset lives on the parent
    side of a cut (RFC 4035 3.1.4.1), so at the apex of a zone we serve, DS is answered
    from the parent zone when we serve it and it delegates the child, and from the child
    (NODATA) otherwise: a parent without the cut would wrongly say NXDOMAIN.
    """
    for i in range(len(qname) + 1):
        zone = zones.get(qname[i:])
        if zone is None:
            continue
        if i == 0 and qtype == wire.TYPE_DS and qname:
            parent = find_zone(zones, qname[1:])
            if parent is not None and qname in parent.cuts:
                return parent
        return zone
    return None


def resolve(zones: Mapping[Name, Zone], qname: Name, qtype: int, dnssec: bool = False) -> Resolution:
    """Answer a class IN question from our zones, following CNAMEs within them.

    ``dnssec`` (the query's DO bit): from signed zones, add the RRSIGs of the answer and
    authority RRsets and the NSEC3 records that prove a denial, a wildcard expansion or a
    delegation without DS (RFC 4035 3.1, RFC 5155 7.2). Unsigned zones answer as without."""
    zone = find_zone(zones, qname, qtype)
    if zone is None:
        return REFUSED  # never a resolver: names outside our zones are not ours to answer
    answer: list[RR] = []
    proofs: list[RR] = []  # NSEC3 proofs of wildcard expansions met along a CNAME chain
    extra_names: list[Name] = []
    seen = {qname}
    while True:
        signed = zone.signed if dnssec else None
        cut, node, owner, closest = _find_closest(zone, qname, qtype)
        if cut is not None:
            ns = zone.nodes[cut][wire.TYPE_NS]
            glue, additional = _glue(zones, zone, cut, ns, dnssec)
            authority = ns.records()
            if signed is not None:
                authority += _delegation_proof(zone, signed, cut)
            # A referral is not authoritative; a CNAME chain that runs into one is,
            # for the part we own (the first owner name decides AA, RFC 1034 4.3.2).
            return Resolution(
                rcode=wire.NOERROR,
                aa=bool(answer),
                answer=tuple(answer),
                authority=tuple(authority + proofs),
                glue=glue,
                additional=additional,
            )
        if node is None:
            if signed is not None:
                proofs += _nxdomain_proof(signed, qname, closest)
            return _negative(zone, wire.NXDOMAIN, answer, signed, proofs)
        source = qname if owner is None else (b"*", *closest)  # the name the data is at
        if signed is not None and owner is not None:
            proofs += _next_closer_proof(signed, qname, closest)
        rrsets = _select(node, qtype)
        if not rrsets and qtype == TYPE_RRSIG and owner is None and zone.signed is not None:
            # The RRSIGs at the name, as BIND and NSD answer them (not signed themselves).
            rrsets = [sig for _, sig in zone.signed.sigs.get(qname, {}).values()]
            signed = None
        if rrsets:
            rotating: tuple[RRset, int] | None = None
            for rrset in rrsets:
                if rrset.turns and rotating is None:
                    rotating = rrset, len(answer)
                answer.extend(rrset.records(owner))
                if signed is not None:
                    answer.extend(_rrsig(signed, source, rrset.rtype, owner))
                extra_names.extend(rrset.targets)
            return Resolution(
                rcode=wire.NOERROR,
                aa=True,
                answer=tuple(answer),
                authority=tuple(_unique(proofs)),
                additional=_addresses(zones, extra_names, dnssec),
                rotation=rotation_of(tuple(answer), *rotating) if rotating else None,
            )
        cname = node.get(wire.TYPE_CNAME)
        if cname is None:
            if signed is not None:
                if owner is None:
                    proofs += _nsec3_records(signed.matching(qname))
                else:  # RFC 5155 7.2.5: no such type at the wildcard
                    proofs += _nsec3_records(signed.matching(closest))
                    proofs += _nsec3_records(signed.matching(source))
            return _negative(zone, wire.NOERROR, answer, signed, proofs)
        answer.extend(cname.records(owner))
        if signed is not None:
            answer.extend(_rrsig(signed, source, wire.TYPE_CNAME, owner))
        target = name_from_dnslib(cname.rdatas[0].label)
        next_zone = find_zone(zones, target, qtype)
        if next_zone is None or target in seen or len(seen) > MAX_CHAIN:
            # The chain leaves our data (the resolver continues it) or loops.
            return Resolution(
                rcode=wire.NOERROR, aa=True, answer=tuple(answer), authority=tuple(_unique(proofs))
            )
        seen.add(target)
        zone, qname = next_zone, target


def _find(zone: Zone, qname: Name, qtype: int) -> tuple[Name | None, Mapping[int, RRset] | None, Name | None]:
    """Walk down from the apex: (delegation cut, node, owner to write for wildcards)."""
    cut, node, owner, _ = _find_closest(zone, qname, qtype)
    return cut, node, owner


def _find_closest(
    zone: Zone, qname: Name, qtype: int
) -> tuple[Name | None, Mapping[int, RRset] | None, Name | None, Name]:
    """``_find``, and the closest encloser of ``qname`` (RFC 5155 7.2.1)."""
    nodes = zone.nodes
    closest = zone.origin
    for depth in range(len(zone.origin) + 1, len(qname) + 1):
        name = qname[len(qname) - depth :]
        if name not in nodes:
            break
        closest = name
        # DS lives on the parent side of a cut (RFC 4035 3.1.4.1).
        if name in zone.cuts and not (name == qname and qtype == wire.TYPE_DS):
            return name, None, None, closest
    node = nodes.get(qname)
    if node is not None:
        return None, node, None, closest
    wildcard = nodes.get((b"*", *closest))  # RFC 4592: the source of synthesis
    if wildcard is not None:
        return None, wildcard, qname, closest
    return None, None, None, closest


# -- DNSSEC: signatures and proofs from the precomputed Signed (dns/zone.py) -------------


def _rrsig(signed: Signed, name: Name, rtype: int, owner: Name | None = None) -> list[RR]:
    sig = signed.rrsig(name, rtype)
    return sig.records(owner) if sig is not None else []


def _nsec3_records(pair: Signature | None) -> list[RR]:
    if pair is None:
        return []
    return pair[0].records() + pair[1].records()


def _next_closer_proof(signed: Signed, qname: Name, closest: Name) -> list[RR]:
    """The NSEC3 covering the next closer name: no closer match than the closest
    encloser exists (RFC 5155 7.2.6: a wildcard answer needs just this)."""
    return _nsec3_records(signed.covering(qname[len(qname) - len(closest) - 1 :]))


def _nxdomain_proof(signed: Signed, qname: Name, closest: Name) -> list[RR]:
    """RFC 5155 7.2.2: the closest encloser exists, the next closer name and the
    wildcard at the closest encloser do not."""
    return _unique(
        _nsec3_records(signed.matching(closest))
        + _next_closer_proof(signed, qname, closest)
        + _nsec3_records(signed.covering((b"*", *closest)))
    )


def _delegation_proof(zone: Zone, signed: Signed, cut: Name) -> list[RR]:
    """A referral's DS and its RRSIG, or the NSEC3 of the cut proving there is none
    (RFC 5155 7.2.7: no opt-out, every delegation has its NSEC3)."""
    ds = zone.nodes[cut].get(wire.TYPE_DS)
    if ds is not None:
        return ds.records() + _rrsig(signed, cut, wire.TYPE_DS)
    return _nsec3_records(signed.matching(cut))


def _unique(records: list[RR]) -> list[RR]:
    """Records in order, each once (two proofs may name the same NSEC3)."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for record in records:
        key = (
            str(record.rname).lower(),
            record.rtype,
            bytes(record.rdata.data) if hasattr(record.rdata, "data") else id(record),
        )
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


def _select(node: Mapping[int, RRset], qtype: int) -> list[RRset]:
    if qtype == wire.TYPE_ANY:
        # RFC 8482 4.1: answer with one RRset rather than everything at the name.
        if not node:
            return []
        if wire.TYPE_CNAME in node:
            return [node[wire.TYPE_CNAME]]
        return [node[min(node)]]
    rrset = node.get(qtype)
    return [rrset] if rrset is not None else []


def _negative(
    zone: Zone, rcode: int, answer: list[RR], signed: Signed | None = None, proofs: list[RR] | None = None
) -> Resolution:
    """NXDOMAIN or NODATA: the SOA in authority, with the RFC 2308 negative TTL (and,
    signed, its RRSIG at that TTL and the NSEC3 proofs)."""
    authority = zone.negative_soa.records()
    if signed is not None:
        sig = signed.rrsig(zone.origin, wire.TYPE_SOA)
        if sig is not None:
            authority += sig.with_ttl(zone.negative_ttl).records()
        authority += _unique(proofs or [])
    return Resolution(rcode=rcode, aa=True, answer=tuple(answer), authority=tuple(authority))


def _address_rrsets(zone: Zone, name: Name) -> list[tuple[RR, ...]]:
    node = zone.nodes.get(name, {})
    return [tuple(node[t].records()) for t in _ADDRESS_TYPES if t in node]


def _glue(
    zones: Mapping[Name, Zone], zone: Zone, cut: Name, ns: RRset, dnssec: bool = False
) -> tuple[tuple[tuple[RR, ...], ...], tuple[tuple[RR, ...], ...]]:
    required: list[tuple[RR, ...]] = []
    optional: list[Name] = []
    for target in ns.targets:
        if target[len(target) - len(cut) :] == cut:
            required.extend(_address_rrsets(zone, target))  # in-domain glue
        else:
            optional.append(target)  # sibling glue or out-of-bailiwick
    return tuple(required), _addresses(zones, optional, dnssec)


def _addresses(
    zones: Mapping[Name, Zone], names: list[Name], dnssec: bool = False
) -> tuple[tuple[RR, ...], ...]:
    """A/AAAA of names we are authoritative for (not below a cut); with ``dnssec``, each
    RRset of a signed zone with its RRSIG (RFC 4035 3.1.1: both, or neither)."""
    found: list[tuple[RR, ...]] = []
    for name in names:
        zone = find_zone(zones, name)
        if zone is None:
            continue
        cut, node, owner = _find(zone, name, wire.TYPE_A)
        if cut is None and node is not None:
            signed = zone.signed if dnssec and owner is None else None
            for rtype in _ADDRESS_TYPES:
                if rtype in node:
                    records = node[rtype].records()
                    if signed is not None:
                        records += _rrsig(signed, name, rtype)
                    found.append(tuple(records))
    return tuple(found)


def opt_record(do: bool, ext_rcode: int = 0) -> RR:
    """Our OPT: UDP size 1232, version 0, DO echoed, no options (RFC 6891, RFC 3225)."""
    ttl = (ext_rcode << 24) | (wire.EDNS_DO if do else 0)
    return RR(rname=DNSLabel([]), rtype=wire.TYPE_OPT, rclass=wire.OUR_UDP_SIZE, ttl=ttl, rdata=[])


def render(
    qname: Name,
    qtype: int,
    qclass: int,
    res: Resolution,
    edns: wire.Edns | None,
    limit: int,
) -> bytes:
    """Lay a resolution out on the wire (ID 0, RD clear, lower-case question).

    Names compress against the lower-case question, so the caller can splice the
    client's question bytes (same length, 0x20 case kept) and header bits in.
    """
    rcode = res.rcode
    opt = [opt_record(edns.do, rcode >> 4)] if edns is not None else []
    header_rcode = rcode & 0xF
    glue = [rr for rrset in res.glue for rr in rrset]
    optional = list(res.additional)
    while True:
        record = _record(qname, qtype, qclass, res.aa, header_rcode, False)
        record.rr = list(res.answer)
        record.auth = list(res.authority)
        record.ar = glue + [rr for rrset in optional for rr in rrset] + opt
        data = bytes(record.pack())
        if len(data) <= limit:
            return data
        if not optional:
            break
        optional.pop()  # the additional section is a courtesy: shed it RRset by RRset
    # The required part does not fit: say so and let the client retry over TCP.
    record = _record(qname, qtype, qclass, res.aa, header_rcode, True)
    record.ar = list(opt)
    return bytes(record.pack())


def _record(qname: Name, qtype: int, qclass: int, aa: bool, rcode: int, tc: bool) -> DNSRecord:
    header = DNSHeader(id=0, qr=1, aa=int(aa), tc=int(tc), rd=0, ra=0, rcode=rcode)
    return DNSRecord(header, q=DNSQuestion(DNSLabel(list(qname)), qtype, qclass))
