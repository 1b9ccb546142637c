"""Resource records as wire bytes: what transfers send and the journal keeps.

A transfer copies records, not answers, so each record is rendered once, whole and on
its own: the owner name and every name in the RDATA written in full (no compression
pointers), so the same bytes can go into any message at any offset and be stored as they
are. Owner names come lower-cased from the zone (as the answers give them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from dynserver.dns import wire
from dynserver.dns.zone import RRset, Zone, rdata_wire

_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDATA length


def rrset_wire(rrset: RRset) -> list[bytes]:
    """One wire record per RDATA of the RRset."""
    owner = wire.name_to_wire(rrset.name)
    out = []
    for rd in rrset.rdatas:
        data = rdata_wire(rd)
        out.append(owner + _FIXED.pack(rrset.rtype, wire.CLASS_IN, rrset.ttl, len(data)) + data)
    return out


def soa_wire(zone: Zone) -> bytes:
    return rrset_wire(zone.soa)[0]


def zone_body(zone: Zone) -> Iterator[bytes]:
    """Every record of the zone but its SOA (which opens and closes a transfer); a signed
    zone's RRSIG and NSEC3 records too."""
    for rrset in zone.rrsets():
        if rrset.rtype != wire.TYPE_SOA:
            yield from rrset_wire(rrset)
    if zone.signed is not None:
        for rrset in zone.signed.rrsets():
            yield from rrset_wire(rrset)


def record_count(zone: Zone) -> int:
    count = sum(len(rrset.rdatas) for rrset in zone.rrsets())
    if zone.signed is not None:
        count += sum(len(rrset.rdatas) for rrset in zone.signed.rrsets())
    return count
