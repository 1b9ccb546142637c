"""The verdicts (pure): each server's replies as an Observation, in sync / stale / error and
why, the rows of a report, and where the delegation and the zone's NS set disagree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dns.flags
import dns.rcode
import dns.rdatatype

from dynserver.dns.serial import serial_gt
from dynserver.propagation.model import (
    ERROR,
    IN_SYNC,
    STALE,
    Delegation,
    DelegationSource,
    Endpoint,
    Expected,
    Nameserver,
    NameserverSource,
    Observation,
    Plan,
    PropagationStatus,
    Reply,
    Row,
)
from dynserver.propagation.replies import answer_values, rcode_text, soa_serial


def observe_authoritative(record: Reply, soa: Reply, name: str, rtype: str, zone: str) -> Observation:
    """One server's record and SOA replies as an Observation."""
    if record.message is None:
        return Observation(error=record.error or "no reply", latency=record.latency)
    message = record.message
    values, ttl = answer_values(message, name, rtype)
    serial = None
    serial_error = None
    if soa.message is None:
        serial_error = f"SOA query: {soa.error or 'no reply'}"
    elif soa.message.rcode() != dns.rcode.NOERROR:
        serial_error = f"SOA query: {rcode_text(soa.message)}"
    elif not soa.message.flags & dns.flags.AA:
        serial_error = "SOA query: not authoritative (AA=0)"
    else:
        serial = soa_serial(soa.message, zone)
        if serial is None:
            serial_error = f"SOA query: no SOA for {zone} in the answer"
    return Observation(
        rcode=rcode_text(message),
        aa=bool(message.flags & dns.flags.AA),
        values=values,
        ttl=ttl,
        serial=serial,
        serial_error=serial_error,
        latency=record.latency,
    )


def observe_resolver(reply: Reply, name: str, rtype: str) -> Observation:
    if reply.message is None:
        return Observation(error=reply.error or "no reply", latency=reply.latency)
    values, ttl = answer_values(reply.message, name, rtype)
    if ttl is None and reply.message.rcode() == dns.rcode.NXDOMAIN:
        soa = next((r for r in reply.message.authority if r.rdtype == dns.rdatatype.SOA), None)
        ttl = soa.ttl if soa is not None else None  # how long the negative answer stays cached
    return Observation(
        rcode=rcode_text(reply.message),
        aa=bool(reply.message.flags & dns.flags.AA),
        values=values,
        ttl=ttl,
        latency=reply.latency,
    )


def _shown(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "no data"


def classify_authoritative(
    observation: Observation, expected: Sequence[Expected]
) -> tuple[PropagationStatus, str]:
    """In sync, stale or error, and why, for an authoritative server.

    ``expected`` is what we answered at the start and at the end of the check (a change
    in between must not mark a quick secondary stale). In sync: the same answer at one of
    our serials. Stale: it answers for the zone, but an older serial or another answer
    (it has not caught up, or serves a copy that is not ours). Error: no reply, an error
    rcode, or no AA (lame: it does not serve the zone). A serial ahead of ours is called
    out: such a server will not copy our changes until our serial passes it.
    """
    seen = observation
    current = expected[-1]
    if seen.error is not None:
        return ERROR, seen.error
    if seen.rcode not in ("NOERROR", "NXDOMAIN"):
        hint = " (it does not serve the zone: lame)" if seen.rcode in ("REFUSED", "NOTAUTH") else ""
        return ERROR, f"{seen.rcode}{hint}"
    if not seen.aa:
        return ERROR, "lame: answers without AA, it is not authoritative for the zone"
    if seen.serial is None:
        return ERROR, seen.serial_error or "no SOA serial"
    serial = seen.serial
    for ours in expected:
        if serial == ours.serial and seen.values == ours.values:
            return IN_SYNC, f"same answer, serial {serial}"
    if all(serial_gt(serial, ours.serial) for ours in expected):
        ahead = f"serial {serial} is ahead of ours ({current.serial})"
        if seen.values == current.values:
            return IN_SYNC, f"same answer, but {ahead}: it will not copy our changes until ours passes it"
        return ERROR, f"{ahead} and the answer differs: it does not copy this zone from us"
    if seen.values == current.values:
        return STALE, f"same answer, older serial {serial} (ours {current.serial})"
    if serial == current.serial:
        return STALE, f"serial {serial} is ours but the answer differs ({_shown(seen.values)}): not our copy"
    what = "NXDOMAIN" if seen.rcode == "NXDOMAIN" else _shown(seen.values)
    return STALE, f"serial {serial} (ours {current.serial}) answers {what}: not caught up"


def classify_resolver(
    observation: Observation, expected: Sequence[Expected]
) -> tuple[PropagationStatus, str]:
    """In sync, stale or error, and why, for a resolver (no serial: the answer decides)."""
    seen = observation
    if seen.error is not None:
        return ERROR, seen.error
    if seen.rcode not in ("NOERROR", "NXDOMAIN"):
        return ERROR, str(seen.rcode)
    if any(seen.values == ours.values for ours in expected):
        left = f"; cached for {seen.ttl} s more" if seen.ttl is not None else ""
        return IN_SYNC, f"same answer{left}"
    what = "NXDOMAIN" if seen.rcode == "NXDOMAIN" else _shown(seen.values)
    until = f"; it may keep it {seen.ttl} s more" if seen.ttl is not None else ""
    return STALE, f"answers {what}{until}"


def nameserver_warnings(delegation: Delegation, zone: Sequence[Nameserver], zone_name: str) -> list[str]:
    """Where the parent's delegation and the zone's own NS set disagree."""
    if delegation.error and not delegation.nameservers:
        return [f"the delegation of {zone_name} could not be checked: {delegation.error}"]
    warnings = []
    if delegation.error:
        warnings.append(delegation.error)
    delegated = {ns.name: ns for ns in delegation.nameservers}
    ours = {ns.name: ns for ns in zone}
    from_parent = delegation.source == DelegationSource.PARENT
    where = f"the parent ({delegation.parent})" if from_parent else "the resolver"
    for name in sorted(delegated.keys() - ours.keys()):
        warnings.append(
            f"{name} is delegated to by {where} but is not in the zone's NS set: "
            "lame if it does not serve the zone, and a copy nobody updates if it does"
        )
    for name in sorted(ours.keys() - delegated.keys()):
        warnings.append(
            f"{name} is in the zone's NS set but {where} does not delegate to it: missing at the parent"
        )
    for name in sorted(delegated.keys() & ours.keys()):
        glue, mine = set(delegated[name].addresses), set(ours[name].addresses)
        if from_parent and glue and mine and glue != mine:
            warnings.append(
                f"the parent's glue for {name} ({', '.join(sorted(glue))}) differs from "
                f"the zone's address ({', '.join(sorted(mine))})"
            )
    return warnings


# A row names its sources, and the rows are sorted, in NameserverSource's order.
_SOURCE_RANK = {source: rank for rank, source in enumerate(NameserverSource)}


def build_rows(
    plan: Plan,
    zone_nameservers: Sequence[Nameserver],
    delegation: Delegation,
    observations: Mapping[Endpoint, Observation],
    expected: Sequence[Expected],
) -> list[Row]:
    """One row per address asked (names and sources merged), plus one error row per
    name that has no address."""
    listed: dict[Endpoint, tuple[list[str], set[NameserverSource]]] = {}
    nameless: dict[str, tuple[set[NameserverSource], str]] = {}

    def add(ns: Nameserver, source: NameserverSource) -> None:
        if not ns.addresses:
            sources, _ = nameless.get(ns.name, (set(), ""))
            nameless[ns.name] = (sources | {source}, ns.error or "no A or AAAA record")
        for address in ns.addresses:
            names, sources = listed.setdefault(Endpoint(address), ([], set()))
            if ns.name not in names:
                names.append(ns.name)
            sources.add(source)

    for ns in delegation.nameservers:
        add(ns, NameserverSource.DELEGATION)
    for ns in zone_nameservers:
        add(ns, NameserverSource.ZONE)
    for endpoint in plan.secondaries:
        listed.setdefault(endpoint, ([], set()))[1].add(NameserverSource.SECONDARY)

    rows = []
    for endpoint, (names, sources) in listed.items():
        seen = observations.get(endpoint, Observation(error="not asked: too many addresses"))
        status, reason = classify_authoritative(seen, expected)
        ordered = tuple(s for s in NameserverSource if s in sources)
        rows.append(Row(endpoint.host, endpoint.port, tuple(names), ordered, status, reason, seen))
    for name, (sources, error) in nameless.items():
        ordered = tuple(s for s in NameserverSource if s in sources)
        reason = f"no address for {name}: {error}"
        rows.append(Row(None, 53, (name,), ordered, ERROR, reason, Observation(error=error)))

    def order(row: Row) -> tuple[Any, ...]:
        return (_SOURCE_RANK[row.sources[0]], row.names[:1], row.host is None, row.host or "", row.port)

    return sorted(rows, key=order)
