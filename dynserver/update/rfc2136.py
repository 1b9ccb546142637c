"""RFC 2136 UPDATE, signed with TSIG (RFC 8945): `nsupdate` sets a target's address,
and ACME clients (certbot's dns-rfc2136, lego's rfc2136) add and delete challenges.

This module decides; it does no I/O. It verifies the signature (dynserver.xfr.tsig,
shared with transfers and NOTIFY), checks the zone, the prerequisites and the
key's scope, and returns either a finished reply or a plan of target values to apply;
the application applies the plan durably, then asks for the reply. Only the A/AAAA of
``<target>.<record>.<zone>`` can be updated: SOA, NS, the apex and every other name are
refused, whatever the key; and the TXT of ``_acme-challenge.<name>`` only by a key whose
``acme`` scope covers the name (dynserver.update.acme).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.update

from dynserver.dns import wire
from dynserver.dns.names import name_from_dnspython
from dynserver.dns.zone import Zone
from dynserver.model import DynamicRecord, TsigKey
from dynserver.types import Name, RecordKey, TargetKey
from dynserver.update import acme
from dynserver.xfr import tsig

_ADDRESS = {dns.rdatatype.A: "A", dns.rdatatype.AAAA: "AAAA"}


@dataclass(frozen=True, slots=True)
class Plan:
    """Verified and allowed: set these target values, apply these challenge changes (in
    order, in ``zone``), then send ``reply(rcode)``."""

    changes: tuple[tuple[TargetKey, str], ...]
    key: str
    reply: Callable[[int], bytes] = field(compare=False)
    challenges: tuple[acme.Change, ...] = ()
    zone: Name = ()


Outcome = bytes | Plan | None  # a reply at once, a plan to apply, or nothing (drop)


def handle(
    data: bytes,
    *,
    keys: Mapping[str, TsigKey],
    zones: Mapping[Name, Zone],
    records: Mapping[RecordKey, DynamicRecord],
    now: int,
) -> Outcome:
    request = tsig.read(data, tsig.keyring(keys.values()), now)
    if not isinstance(request, tsig.Request):
        return request  # NOTAUTH with the TSIG error, FORMERR, or nothing
    message = request.message
    if not isinstance(message, dns.update.UpdateMessage):
        return wire.error_reply(data, wire.FORMERR)

    def reply(rcode: int) -> bytes:
        response = dns.message.make_response(message)
        response.set_rcode(dns.rcode.Rcode(rcode))
        return bytes(response.to_wire())  # signed with the request's key when it had one

    if request.key is None:
        return reply(wire.REFUSED)  # updates must be signed
    key = request.key_name or ""
    if len(message.zone) != 1 or message.zone[0].rdtype != dns.rdatatype.SOA:
        return reply(wire.FORMERR)
    origin = name_from_dnspython(message.zone[0].name)
    zone = zones.get(origin)
    if zone is None:
        return reply(wire.NOTAUTH)  # RFC 2136 3.1.1: not a zone we are authoritative for
    rcode = _prerequisites(message, zone)
    if rcode != wire.NOERROR:
        return reply(rcode)
    challenges, rest, rcode = _challenges(message, origin, keys.get(key))
    if rcode != wire.NOERROR:
        return reply(rcode)
    changes, rcode = _changes(rest, origin, records, keys.get(key))
    if rcode != wire.NOERROR:
        return reply(rcode)
    return Plan(changes=tuple(changes), key=key, reply=reply, challenges=tuple(challenges), zone=origin)


def _prerequisites(message: dns.update.UpdateMessage, zone: Zone) -> int:
    """RFC 2136 3.2: every prerequisite must hold in the zone as it is now."""
    required: dict[tuple[Name, int], set[str]] = {}
    for rrset in message.prerequisite:
        name = name_from_dnspython(rrset.name)
        if name[len(name) - len(zone.origin) :] != zone.origin:
            return 10  # NOTZONE
        node = zone.nodes.get(name) or {}
        # dnspython keeps the zone's class on the RRset and puts ANY/NONE in `deleting`.
        if rrset.deleting == dns.rdataclass.ANY:
            if rrset.rdtype == dns.rdatatype.ANY:
                if not node:
                    return wire.NXDOMAIN  # name is in use
            elif int(rrset.rdtype) not in node:
                return 8  # NXRRSET: RRset exists (value independent)
        elif rrset.deleting == dns.rdataclass.NONE:
            if rrset.rdtype == dns.rdatatype.ANY:
                if node:
                    return 6  # YXDOMAIN: name is not in use
            elif int(rrset.rdtype) in node:
                return 7  # YXRRSET: RRset does not exist
        else:
            required.setdefault((name, int(rrset.rdtype)), set()).update(r.to_text() for r in rrset)
    for (name, rtype), texts in required.items():  # RRset exists (value dependent)
        present = (zone.nodes.get(name) or {}).get(rtype)
        if present is None or set(present.texts()) != texts:
            return 8  # NXRRSET
    return wire.NOERROR


def _challenges(
    message: dns.update.UpdateMessage, origin: Name, key: TsigKey | None
) -> tuple[list[acme.Change], list[dns.rrset.RRset], int]:
    """The challenge changes of the update section (in order), the other RRsets, or the
    rcode that refuses the message. certbot adds one value and deletes it by value (class
    NONE); lego first deletes the RRset (class ANY), then adds."""
    changes: list[acme.Change] = []
    rest: list[dns.rrset.RRset] = []
    for rrset in message.update:
        name = name_from_dnspython(rrset.name)
        if not acme.is_challenge(name):
            rest.append(rrset)
            continue
        if name[len(name) - len(origin) :] != origin:
            return [], [], 10  # NOTZONE
        if key is None or not acme.in_scope(key.acme, name):
            return [], [], wire.REFUSED
        if rrset.deleting == dns.rdataclass.ANY and rrset.rdtype in (dns.rdatatype.TXT, dns.rdatatype.ANY):
            changes.append(acme.Change("clear", name))
            continue
        if rrset.rdtype != dns.rdatatype.TXT or rrset.deleting not in (None, dns.rdataclass.NONE):
            return [], [], wire.REFUSED  # a challenge name holds TXT records only
        for rdata in rrset:
            if len(rdata.strings) != 1:
                return [], [], wire.REFUSED
            try:
                value = acme.check_value(rdata.strings[0].decode("ascii"))
            except (UnicodeDecodeError, acme.InvalidChallenge):
                return [], [], wire.REFUSED
            changes.append(acme.Change("add" if rrset.deleting is None else "delete", name, value))
    return changes, rest, wire.NOERROR


def _changes(
    rrsets: list[dns.rrset.RRset],
    origin: Name,
    records: Mapping[RecordKey, DynamicRecord],
    key: TsigKey | None,
) -> tuple[list[tuple[TargetKey, str]], int]:
    """The target values the update section sets, or the rcode that refuses it."""
    adds: dict[TargetKey, str] = {}
    deletes: set[tuple[Name, int | None]] = set()
    for rrset in rrsets:
        name = name_from_dnspython(rrset.name)
        if name[len(name) - len(origin) :] != origin:
            return [], 10  # NOTZONE
        if rrset.deleting is not None:
            # A delete is only the first half of nsupdate's replace idiom: allowed when
            # the same name gets its new address in this message (checked below).
            kind = None if rrset.rdtype == dns.rdatatype.ANY else int(rrset.rdtype)
            deletes.add((name, kind))
            continue
        target = _target(name, rrset, records)
        if target is None or len(rrset) != 1 or target in adds:
            return [], wire.REFUSED  # not an updatable name, or not one address per target
        if key is None or not key.may_update(target):
            return [], wire.REFUSED
        adds[target] = rrset[0].to_text()
    for name, kind in deletes:
        if not any((t[2].encode(), *t[0]) == name and kind in (None, _rtype(t[1])) for t in adds):
            return [], wire.REFUSED  # a target's address can be replaced, never removed
    return list(adds.items()), wire.NOERROR


def _rtype(text: str) -> int:
    return wire.TYPE_A if text == "A" else wire.TYPE_AAAA


def _target(
    name: Name, rrset: dns.rrset.RRset, records: Mapping[RecordKey, DynamicRecord]
) -> TargetKey | None:
    """``<target>.<record>`` with the record's own address type, or None."""
    kind = _ADDRESS.get(rrset.rdtype)
    if kind is None or len(name) < 2:
        return None
    record = records.get((name[1:], kind))
    if record is None:
        return None
    label = name[0].decode("ascii", "replace")
    if label not in record.by_name:
        return None
    return record.name, kind, label
