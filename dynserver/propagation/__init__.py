"""Propagation: who already answers what dynserver answers now.

For one dynamic record this gathers

- the **expected** answer: what our live snapshot answers, and the zone's SOA serial;
- every **authoritative server**: those the parent zone delegates to (NS + glue, found
  through the first configured resolver and then asked of the parent's own servers),
  those of the zone's own NS set, and the configured secondaries; each is asked
  directly (RD=0) for the record and for the zone's SOA;
- every configured **resolver**, asked with recursion (RD=1): its answer and the TTL it
  has left;
- on request, a user's static **hostname** followed through its CNAME chain.

The rules are pure functions over parsed replies (``classify_authoritative``,
``classify_resolver``, ``nameserver_warnings``, ``referral``, ``chain_step``,
``parse_hostname``...), tested without sockets. ``gather`` asks everything concurrently
through an injected ``Ask`` (``dns_asker``: dnspython's asyncquery), each query bounded
by a short timeout, so a dead server is an error row and never a stuck page.
``Checker`` caches results briefly and budgets new work, so a public page cannot be
used to make dynserver spray queries at the world.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dynserver.dns import wire
from dynserver.dns.snapshot import Snapshot
from dynserver.model import DynamicRecord, ZoneConfig

IN_SYNC = "in_sync"
STALE = "stale"
ERROR = "error"
STATUSES = (IN_SYNC, STALE, ERROR)

DEFAULT_TIMEOUT = 1.5  # seconds per query; [web] propagation_timeout
CACHE_SECONDS = 2.0  # a result is reused this long (per record, per hostname)
BUDGET_RATE = 2.0  # new (uncached) checks per second, over all records and hostnames...
BUDGET_BURST = 20  # ... with this many at once
CHAIN_CACHE_LIMIT = 256  # hostnames remembered
MAX_HOPS = 16  # CNAME hops followed (resolvers stop near 8-16 too)
MAX_HOSTNAME = 253  # RFC 1035 2.3.4, in presentation form
MAX_PARENT_ASKED = 3  # parent servers asked for the referral at once
MAX_NAMESERVER_ADDRESSES = 32  # addresses asked per check (a bound on one page's queries)

SOURCES = ("delegation", "zone", "secondary")

# A hostname as the CNAME box accepts it: LDH labels (underscore allowed, as in
# _acme-challenge), at least two labels, an optional final dot; ASCII only (punycode for
# IDN). The OpenAPI document carries the same pattern.
HOSTNAME_PATTERN = (
    r"^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)+[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$"
)
_HOSTNAME = re.compile(HOSTNAME_PATTERN)


# -- what is asked, and what came back -------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """An address to ask, on port 53 unless told."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 53 else f"{host}:{self.port}"


def parse_endpoint(value: str) -> Endpoint:
    """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"2001:db8::1"`` or ``"[2001:db8::1]:53"``."""
    if value.startswith("["):
        host, _, port = value[1:].partition("]:")
        return Endpoint(str(ipaddress.ip_address(host.rstrip("]"))), int(port or 53))
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return Endpoint(str(ipaddress.ip_address(host)), int(port))
    return Endpoint(str(ipaddress.ip_address(value)))


@dataclass(frozen=True, slots=True)
class Reply:
    """One query's outcome: a message, or why there is none."""

    message: dns.message.Message | None
    error: str | None = None
    latency: float | None = None  # seconds


# (where, qname, qtype, recursion desired) -> the reply; never raises for network trouble
Ask = Callable[[Endpoint, str, str, bool], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Nameserver:
    """A nameserver's name and the addresses found for it (or why none were)."""

    name: str  # absolute, lower case, no final dot
    addresses: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Expected:
    """What dynserver answers for the record, at one serial of its zone."""

    serial: int
    values: tuple[str, ...]
    ttl: int | None
    rcode: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a check needs from the configuration and the snapshot (no I/O)."""

    name: str  # the record, absolute, lower case, no final dot
    type: str  # A | AAAA | CNAME
    zone: str  # no final dot
    expected: Expected
    zone_nameservers: tuple[Nameserver, ...]  # the apex NS set, with addresses we serve
    secondaries: tuple[Endpoint, ...]
    resolvers: tuple[Endpoint, ...]
    timeout: float


@dataclass(frozen=True, slots=True)
class Observation:
    """What one server said about the record (and, when authoritative, the SOA serial)."""

    error: str | None = None  # the query got no usable reply
    rcode: str | None = None
    aa: bool = False
    values: tuple[str, ...] = ()
    ttl: int | None = None
    serial: int | None = None
    serial_error: str | None = None  # the SOA query failed, or had no SOA
    latency: float | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One authoritative server: who lists it, what it said, and the verdict."""

    host: str | None  # None: the name has no address
    port: int
    names: tuple[str, ...]
    sources: tuple[str, ...]  # delegation | zone | secondary
    status: str
    reason: str
    observation: Observation

    def to_json(self) -> dict[str, Any]:
        seen = self.observation
        return {
            "address": self.host,
            "port": self.port,
            "names": list(self.names),
            "sources": list(self.sources),
            "status": self.status,
            "reason": self.reason,
            "rcode": seen.rcode,
            "aa": seen.aa if seen.rcode is not None else None,
            "answer": list(seen.values),
            "ttl": seen.ttl,
            "serial": seen.serial,
            "latency": seen.latency,
        }


@dataclass(frozen=True, slots=True)
class ResolverRow:
    endpoint: Endpoint
    status: str
    reason: str
    observation: Observation

    def to_json(self) -> dict[str, Any]:
        seen = self.observation
        return {
            "address": self.endpoint.host,
            "port": self.endpoint.port,
            "status": self.status,
            "reason": self.reason,
            "rcode": seen.rcode,
            "answer": list(seen.values),
            "ttl": seen.ttl,
            "latency": seen.latency,
        }


@dataclass(frozen=True, slots=True)
class Delegation:
    """The parent's NS set for the zone, with glue, and how it was found."""

    parent: str | None  # the parent zone, no final dot
    nameservers: tuple[Nameserver, ...] = ()
    source: str = "none"  # parent: a parent server's referral | resolver: the resolver's NS answer
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "parent": self.parent,
            "source": self.source,
            "nameservers": [_nameserver_json(ns) for ns in self.nameservers],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """One finished check of a record."""

    plan: Plan
    expected: Expected  # as of the end of the check
    checked_at: float  # Unix time
    duration: float
    delegation: Delegation
    zone_nameservers: tuple[Nameserver, ...]
    nameservers: tuple[Row, ...]
    resolvers: tuple[ResolverRow, ...]
    warnings: tuple[str, ...]

    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        rows: list[Row | ResolverRow] = [*self.nameservers, *self.resolvers]
        for row in rows:
            counts[row.status] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        expected = self.expected
        return {
            "record": self.plan.name,
            "type": self.plan.type,
            "zone": self.plan.zone,
            "checked_at": self.checked_at,
            "duration": round(self.duration, 3),
            "timeout": self.plan.timeout,
            "expected": {
                "answer": list(expected.values),
                "ttl": expected.ttl,
                "serial": expected.serial,
                "rcode": expected.rcode,
            },
            "summary": self.summary(),
            "warnings": list(self.warnings),
            "delegation": self.delegation.to_json(),
            "zone_nameservers": [_nameserver_json(ns) for ns in self.zone_nameservers],
            "nameservers": [row.to_json() for row in self.nameservers],
            "resolvers": [row.to_json() for row in self.resolvers],
        }


def _nameserver_json(ns: Nameserver) -> dict[str, Any]:
    return {"name": ns.name, "addresses": list(ns.addresses), "error": ns.error}


# -- pure: names, values, replies -------------------------------------------------------


def text(name: dns.name.Name | str) -> str:
    """Absolute, lower case, no final dot (the root is "")."""
    return str(name).lower().rstrip(".") if isinstance(name, str) else name.to_text().lower().rstrip(".")


def _absolute(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


def value_text(rdata: Any) -> str:
    """One record's value as we compare and show it: addresses in canonical form, names
    lower case with their final dot, anything else in presentation form."""
    if rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(ipaddress.ip_address(rdata.address))
    if rdata.rdtype == dns.rdatatype.CNAME:
        return str(rdata.target.to_text().lower())
    return str(rdata.to_text())


def _sorted_values(values: Iterable[str]) -> tuple[str, ...]:
    def key(value: str) -> tuple[int, Any]:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return (2, value)
        return (address.version, int(address))

    return tuple(sorted(set(values), key=key))


def _find(section: Sequence[dns.rrset.RRset], name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    return next((r for r in section if r.name == name and r.rdtype == rdtype), None)


def answer_values(message: dns.message.Message, qname: str, qtype: str) -> tuple[tuple[str, ...], int | None]:
    """The values (and TTL) ``message`` gives for ``qname``/``qtype``; a CNAME where an
    address was asked shows as ``CNAME target.``, so it never looks like the right answer."""
    name = _absolute(qname)
    rdtype = dns.rdatatype.from_text(qtype)
    found = _find(message.answer, name, rdtype)
    if found is not None:
        return _sorted_values(value_text(rd) for rd in found), found.ttl
    if rdtype != dns.rdatatype.CNAME:
        alias = _find(message.answer, name, dns.rdatatype.CNAME)
        if alias is not None:
            return tuple(f"CNAME {value_text(rd)}" for rd in alias), alias.ttl
    return (), None


def soa_serial(message: dns.message.Message, zone: str) -> int | None:
    found = _find(message.answer, _absolute(zone), dns.rdatatype.SOA)
    return int(found[0].serial) if found is not None and len(found) else None


def rcode_text(message: dns.message.Message) -> str:
    return str(dns.rcode.to_text(message.rcode()))


def expected_from(snapshot: Snapshot, origin: tuple[bytes, ...], name: str, rtype: str) -> Expected:
    """What our snapshot answers for ``name``/``rtype`` right now, and the zone's serial:
    the same bytes a client gets (the DNS core is a pure function)."""
    query = dns.message.make_query(_absolute(name), rtype, use_edns=0, payload=wire.OUR_UDP_SIZE)
    query.flags &= ~dns.flags.RD
    reply = snapshot.answer(query.to_wire(), True)
    if not isinstance(reply, bytes):  # never for a plain query; be explicit all the same
        raise RuntimeError(f"the snapshot did not answer {name} {rtype}")
    message = dns.message.from_wire(reply)
    values, ttl = answer_values(message, name, rtype)
    return Expected(snapshot.zones[origin].serial, values, ttl, rcode_text(message))


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


# -- pure: the verdicts -----------------------------------------------------------------


def serial_newer(a: int, b: int) -> bool:
    """RFC 1982 serial number arithmetic: is ``a`` after ``b``?"""
    return a != b and ((a - b) % 2**32) < 2**31


def _shown(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "no data"


def classify_authoritative(observation: Observation, expected: Sequence[Expected]) -> tuple[str, str]:
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
    if all(serial_newer(serial, ours.serial) for ours in expected):
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


def classify_resolver(observation: Observation, expected: Sequence[Expected]) -> tuple[str, str]:
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
    where = f"the parent ({delegation.parent})" if delegation.source == "parent" else "the resolver"
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
        if delegation.source == "parent" and glue and mine and glue != mine:
            warnings.append(
                f"the parent's glue for {name} ({', '.join(sorted(glue))}) differs from "
                f"the zone's address ({', '.join(sorted(mine))})"
            )
    return warnings


def build_rows(
    plan: Plan,
    zone_nameservers: Sequence[Nameserver],
    delegation: Delegation,
    observations: Mapping[Endpoint, Observation],
    expected: Sequence[Expected],
) -> list[Row]:
    """One row per address asked (names and sources merged), plus one error row per
    name that has no address."""
    listed: dict[Endpoint, tuple[list[str], set[str]]] = {}
    nameless: dict[str, tuple[set[str], str]] = {}

    def add(ns: Nameserver, source: str) -> None:
        if not ns.addresses:
            sources, _ = nameless.get(ns.name, (set(), ""))
            nameless[ns.name] = (sources | {source}, ns.error or "no A or AAAA record")
        for address in ns.addresses:
            names, sources = listed.setdefault(Endpoint(address), ([], set()))
            if ns.name not in names:
                names.append(ns.name)
            sources.add(source)

    for ns in delegation.nameservers:
        add(ns, "delegation")
    for ns in zone_nameservers:
        add(ns, "zone")
    for endpoint in plan.secondaries:
        listed.setdefault(endpoint, ([], set()))[1].add("secondary")

    rows = []
    for endpoint, (names, sources) in listed.items():
        seen = observations.get(endpoint, Observation(error="not asked: too many addresses"))
        status, reason = classify_authoritative(seen, expected)
        ordered = tuple(s for s in SOURCES if s in sources)
        rows.append(Row(endpoint.host, endpoint.port, tuple(names), ordered, status, reason, seen))
    for name, (sources, error) in nameless.items():
        ordered = tuple(s for s in SOURCES if s in sources)
        reason = f"no address for {name}: {error}"
        rows.append(Row(None, 53, (name,), ordered, ERROR, reason, Observation(error=error)))

    def order(row: Row) -> tuple[Any, ...]:
        return (SOURCES.index(row.sources[0]), row.names[:1], row.host is None, row.host or "", row.port)

    return sorted(rows, key=order)


# -- pure: the delegation ---------------------------------------------------------------


def enclosing_zone(message: dns.message.Message, qname: str) -> str | None:
    """The zone holding ``qname``, from an SOA in the answer (``qname`` is an apex) or in
    the authority section (a negative answer names the zone)."""
    name = _absolute(qname)
    for rrset in (*message.answer, *message.authority):
        if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
            return text(rrset.name)
    return None


def ns_names(message: dns.message.Message, zone: str) -> tuple[str, ...]:
    found = _find(message.answer, _absolute(zone), dns.rdatatype.NS)
    return tuple(sorted({text(rd.target) for rd in found})) if found is not None else ()


def referral(message: dns.message.Message, zone: str) -> tuple[Nameserver, ...] | None:
    """The NS set (with glue) a parent server gives for ``zone``: a referral's authority
    section, or the answer if that server also serves the zone. None: not a referral."""
    name = _absolute(zone)
    found = _find(message.authority, name, dns.rdatatype.NS) or _find(message.answer, name, dns.rdatatype.NS)
    if found is None:
        return None
    glue: dict[str, list[str]] = {}
    for rrset in message.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(text(rrset.name), []).extend(value_text(rd) for rd in rrset)
    names = sorted({text(rd.target) for rd in found})
    return tuple(Nameserver(n, _sorted_values(glue.get(n, ()))) for n in names)


def address_values(message: dns.message.Message, name: str, rtype: str) -> tuple[str, ...]:
    values, _ = answer_values(message, name, rtype)
    return tuple(v for v in values if not v.startswith("CNAME "))


# -- pure: the CNAME box ----------------------------------------------------------------


def parse_hostname(value: str) -> str:
    """A hostname for the CNAME box, lower case without the final dot; ValueError with
    what is expected otherwise. Exactly HOSTNAME_PATTERN and MAX_HOSTNAME, which the
    OpenAPI document states (no trimming here: the page trims what a user typed)."""
    if not value:
        raise ValueError("enter a hostname, e.g. www.example.com")
    if len(value) > MAX_HOSTNAME:
        raise ValueError(f"a hostname has at most {MAX_HOSTNAME} characters")
    if not _HOSTNAME.fullmatch(value):
        raise ValueError(
            f"{value[:80]!r} is not a hostname: expected labels of letters, digits, '-' and '_' "
            "(1 to 63 each, no '-' at either end) separated by dots, e.g. www.example.com"
        )
    return value.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class Hop:
    name: str
    cname: str
    ttl: int


@dataclass(frozen=True, slots=True)
class Step:
    """What one resolver reply says about a chain that starts at a name."""

    hops: tuple[Hop, ...]
    end: str  # the last name reached
    values: tuple[str, ...]  # its data of the asked type
    done: bool  # the reply answers for ``end`` (data, NODATA or NXDOMAIN)
    loop: bool = False


def chain_step(message: dns.message.Message, start: str, qtype: str) -> Step:
    """Follow the CNAMEs of a resolver's answer section from ``start``."""
    rdtype = dns.rdatatype.from_text(qtype)
    by_name = {(text(r.name), r.rdtype): r for r in message.answer}
    name, seen = start, {start}
    hops: list[Hop] = []
    while (name, dns.rdatatype.CNAME) in by_name and len(hops) < MAX_HOPS:
        rrset = by_name[(name, dns.rdatatype.CNAME)]
        target = text(rrset[0].target)
        hops.append(Hop(name, target, rrset.ttl))
        if target in seen:
            return Step(tuple(hops), target, (), True, loop=True)
        seen.add(target)
        name = target
    data = by_name.get((name, rdtype))
    values = _sorted_values(value_text(rd) for rd in data) if data is not None else ()
    negative = message.rcode() == dns.rcode.NXDOMAIN or any(
        r.rdtype == dns.rdatatype.SOA for r in message.authority
    )
    done = data is not None or negative or name == start or len(hops) >= MAX_HOPS
    return Step(tuple(hops), name, values, done)


@dataclass(frozen=True, slots=True)
class Chain:
    """A hostname followed through its CNAMEs by the first resolver."""

    hostname: str
    resolver: Endpoint | None
    hops: tuple[Hop, ...] = ()
    end: str = ""
    values: tuple[str, ...] = ()
    rcode: str | None = None
    error: str | None = None
    loop: bool = False

    def verdict(self, record: str) -> tuple[bool, str]:
        """Does the chain reach ``record``, and why (or why not)."""
        names = [self.hostname, *(h.cname for h in self.hops)]
        if self.error is not None:
            return record in names, f"{self.hostname}: {self.error}"
        if self.loop:
            return False, f"the chain loops back to {self.end}"
        if record in names:
            if self.hostname == record:
                return True, f"{record} is this record"
            return True, f"{self.hostname} reaches {record} in {names.index(record)} hop(s)"
        if not self.hops:
            if self.rcode == "NXDOMAIN":
                return False, f"{self.hostname} does not exist (NXDOMAIN)"
            if self.values:
                return False, f"{self.hostname} has no CNAME: it answers {', '.join(self.values)} itself"
            return False, f"{self.hostname} has no CNAME and no data ({self.rcode})"
        return False, f"the chain ends at {self.end}, not at {record}"

    def to_json(self, record: str) -> dict[str, Any]:
        reaches, reason = self.verdict(record)
        return {
            "hostname": self.hostname,
            "resolver": str(self.resolver) if self.resolver else None,
            "hops": [{"name": h.name, "cname": h.cname, "ttl": h.ttl} for h in self.hops],
            "end": self.end or self.hostname,
            "answer": list(self.values),
            "rcode": self.rcode,
            "reaches_record": reaches,
            "reason": reason,
            "error": self.error,
        }


# -- the plan, from configuration and snapshot (pure) -----------------------------------


def make_plan(
    snapshot: Snapshot,
    zone: ZoneConfig,
    record: DynamicRecord,
    resolvers: Sequence[str],
    timeout: float,
) -> Plan:
    """Who to ask about ``record``, and what we answer for it now."""
    name = text(wire.name_to_text(record.name))
    zone_name = text(wire.name_to_text(zone.name))
    served = snapshot.zones[zone.name]
    apex_ns = served.nodes[zone.name].get(wire.TYPE_NS)
    nameservers = []
    for target in sorted({text(t) for t in apex_ns.texts()}) if apex_ns else []:
        nameservers.append(Nameserver(target, _served_addresses(snapshot, target)))
    secondaries = tuple(
        Endpoint(s.host, s.port) for s in (zone.transfer.secondaries if zone.transfer else ())
    )
    return Plan(
        name=name,
        type=record.type,
        zone=zone_name,
        expected=expected_from(snapshot, zone.name, name, record.type),
        zone_nameservers=tuple(nameservers),
        secondaries=secondaries,
        resolvers=tuple(parse_endpoint(r) for r in resolvers),
        timeout=timeout,
    )


def _served_addresses(snapshot: Snapshot, name: str) -> tuple[str, ...]:
    """The addresses one of our zones has for ``name`` (in-zone glue), if any."""
    labels = tuple(label.encode() for label in name.split(".")) if name else ()
    for origin, zone in snapshot.zones.items():
        if labels[len(labels) - len(origin) :] != origin or labels not in zone.nodes:
            continue
        node = zone.nodes[labels]
        found = [v for rtype in (wire.TYPE_A, wire.TYPE_AAAA) if rtype in node for v in node[rtype].texts()]
        return _sorted_values(str(ipaddress.ip_address(v)) for v in found)
    return ()


# -- the I/O: asking, concurrently, with a timeout -------------------------------------


def dns_asker(timeout: float) -> Ask:
    """Ask with dnspython: UDP on a connected socket (so ICMP port unreachable is an
    immediate "refused" rather than a timeout), TCP if the reply is truncated; the whole
    exchange bounded by ``timeout``. Network trouble is a Reply with an error, never an
    exception."""
    backend = dns.asyncbackend.get_default_backend()

    async def ask(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Reply:
        query = dns.message.make_query(_absolute(qname), qtype, use_edns=0, payload=wire.OUR_UDP_SIZE)
        if not recursion:
            query.flags &= ~dns.flags.RD
        loop = asyncio.get_running_loop()
        started = loop.time()
        family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
        try:
            async with asyncio.timeout(timeout):
                destination = (where.host, where.port)
                sock = await backend.make_socket(  # type: ignore[no-untyped-call]
                    family, socket.SOCK_DGRAM, 0, None, destination
                )
                async with sock:
                    reply = await dns.asyncquery.udp(
                        query, where.host, timeout=timeout, port=where.port, sock=sock, ignore_unexpected=True
                    )
                if reply.flags & dns.flags.TC:
                    reply = await dns.asyncquery.tcp(query, where.host, timeout=timeout, port=where.port)
        except (TimeoutError, dns.exception.Timeout):
            return Reply(None, f"timeout after {timeout:g} s", None)
        except ConnectionRefusedError:
            return Reply(None, f"refused: nothing listens at {where}", loop.time() - started)
        except OSError as error:
            return Reply(None, error.strerror or str(error), loop.time() - started)
        except dns.exception.DNSException as error:
            return Reply(None, f"bad reply: {error}", loop.time() - started)
        return Reply(reply, None, loop.time() - started)

    return ask


async def resolve_addresses(names: Iterable[str], resolver: Endpoint | None, ask: Ask) -> list[Nameserver]:
    """A and AAAA of each name through the resolver, concurrently."""
    names = list(names)
    if not names:
        return []
    if resolver is None:
        return [Nameserver(n, (), "no resolver configured to find its address") for n in names]
    replies = await asyncio.gather(*(ask(resolver, n, t, True) for n in names for t in ("A", "AAAA")))
    result = []
    for index, name in enumerate(names):
        v4, v6 = replies[2 * index], replies[2 * index + 1]
        found: list[str] = []
        errors = []
        for reply, rtype in ((v4, "A"), (v6, "AAAA")):
            if reply.message is None:
                errors.append(f"{rtype}: {reply.error}")
            elif reply.message.rcode() != dns.rcode.NOERROR:
                errors.append(f"{rtype}: {rcode_text(reply.message)}")
            else:
                found.extend(address_values(reply.message, name, rtype))
        error = None if found else ("; ".join(errors) or "no A or AAAA record") + f" (via {resolver})"
        result.append(Nameserver(name, _sorted_values(found), error))
    return result


async def find_delegation(zone: str, resolver: Endpoint | None, ask: Ask) -> Delegation:
    """The parent's NS set and glue for ``zone``.

    Through the resolver: which zone holds the parent name (its SOA), that zone's
    nameservers and their addresses; then a few of those servers are asked directly
    (RD=0) for the zone's NS, and their referral is the delegation. If no parent server
    refers, the resolver's own NS answer for the zone stands in (and says so)."""
    if resolver is None:
        return Delegation(None, error="no resolver configured")
    absolute = _absolute(zone)
    if absolute == dns.name.root:
        return Delegation(None, error="the root zone has no parent")
    parent_name = text(absolute.parent())
    soa = await ask(resolver, parent_name or ".", "SOA", True)
    if soa.message is None:
        return Delegation(None, error=f"resolver {resolver}: {soa.error}")
    parent = enclosing_zone(soa.message, parent_name or ".")
    if parent is None:
        found = rcode_text(soa.message)
        return Delegation(
            None, error=f"resolver {resolver} did not say which zone holds {parent_name} ({found})"
        )
    servers = await ask(resolver, parent or ".", "NS", True)
    names = ns_names(servers.message, parent or ".") if servers.message is not None else ()
    why = ""
    if names:
        located = await resolve_addresses(names, resolver, ask)
        addresses = [Endpoint(a) for ns in located for a in ns.addresses][:MAX_PARENT_ASKED]
        if addresses:
            replies = await asyncio.gather(*(ask(a, zone, "NS", False) for a in addresses))
            for address, reply in zip(addresses, replies, strict=True):
                given = referral(reply.message, zone) if reply.message is not None else None
                if given:
                    missing = [ns.name for ns in given if not ns.addresses]
                    resolved = {ns.name: ns for ns in await resolve_addresses(missing, resolver, ask)}
                    complete = tuple(resolved.get(ns.name, ns) for ns in given)
                    return Delegation(parent, complete, "parent")
                why = f"{address}: {_no_referral(reply)}"
        else:
            why = "no address for any of its nameservers"
    else:
        why = f"no NS for {parent or '.'} ({_no_referral(servers)})"
    # No parent server referred: what the resolver says is the best we have.
    fallback = await ask(resolver, zone, "NS", True)
    note = f"no referral from the parent's servers ({why}); the resolver's NS answer is shown instead"
    if fallback.message is None or not ns_names(fallback.message, zone):
        return Delegation(parent, error=f"no referral from the parent's servers ({why})")
    located = await resolve_addresses(ns_names(fallback.message, zone), resolver, ask)
    return Delegation(parent, tuple(located), "resolver", note)


def _no_referral(reply: Reply) -> str:
    if reply.message is None:
        return reply.error or "no reply"
    return f"{rcode_text(reply.message)}, no NS records"


async def query_authoritative(where: Endpoint, plan: Plan, ask: Ask) -> Observation:
    record, soa = await asyncio.gather(
        ask(where, plan.name, plan.type, False), ask(where, plan.zone, "SOA", False)
    )
    return observe_authoritative(record, soa, plan.name, plan.type, plan.zone)


def once(ask: Ask) -> Ask:
    """``ask``, asking each question of each server only once (for one check)."""
    pending: dict[tuple[Endpoint, str, str, bool], asyncio.Future[Reply]] = {}

    def question(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Awaitable[Reply]:
        key = (where, qname.lower(), qtype, recursion)
        if key not in pending:
            pending[key] = asyncio.ensure_future(ask(where, qname, qtype, recursion))
        return asyncio.shield(pending[key])

    async def shared(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Reply:
        return await question(where, qname, qtype, recursion)

    return shared


async def gather(plan: Plan, ask: Ask, current: Callable[[], Expected] | None = None) -> Report:
    """Ask every server and resolver for ``plan``'s record, concurrently.

    ``current`` reads our answer again at the end, so a server that took a change made
    during the check is not marked stale."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    resolver = plan.resolvers[0] if plan.resolvers else None
    asked: dict[Endpoint, asyncio.Task[Observation]] = {}
    ask = once(ask)  # the delegation and the zone's NS set often name the same servers

    def probe(addresses: Iterable[Endpoint]) -> None:
        for endpoint in addresses:
            if endpoint not in asked and len(asked) < MAX_NAMESERVER_ADDRESSES:
                asked[endpoint] = asyncio.ensure_future(query_authoritative(endpoint, plan, ask))

    async def zone_side() -> list[Nameserver]:
        known = [ns for ns in plan.zone_nameservers if ns.addresses]
        probe(Endpoint(a) for ns in known for a in ns.addresses)
        found = await resolve_addresses(
            (ns.name for ns in plan.zone_nameservers if not ns.addresses), resolver, ask
        )
        probe(Endpoint(a) for ns in found for a in ns.addresses)
        by_name = {ns.name: ns for ns in [*known, *found]}
        return [by_name[ns.name] for ns in plan.zone_nameservers]

    async def delegation_side() -> Delegation:
        delegation = await find_delegation(plan.zone, resolver, ask)
        probe(Endpoint(a) for ns in delegation.nameservers for a in ns.addresses)
        return delegation

    async def resolver_side() -> list[Observation]:
        replies = await asyncio.gather(*(ask(r, plan.name, plan.type, True) for r in plan.resolvers))
        return [observe_resolver(reply, plan.name, plan.type) for reply in replies]

    try:
        probe(plan.secondaries)
        zone_ns, delegation, resolved = await asyncio.gather(zone_side(), delegation_side(), resolver_side())
        observations = {endpoint: await task for endpoint, task in list(asked.items())}
    finally:
        for task in asked.values():
            task.cancel()
    expected = [plan.expected]
    if current is not None:
        now = current()
        if now != plan.expected:
            expected.append(now)
    rows = build_rows(plan, zone_ns, delegation, observations, expected)
    resolver_rows = []
    for endpoint, seen in zip(plan.resolvers, resolved, strict=True):
        status, reason = classify_resolver(seen, expected)
        resolver_rows.append(ResolverRow(endpoint, status, reason, seen))
    return Report(
        plan=plan,
        expected=expected[-1],
        checked_at=time.time(),
        duration=loop.time() - started,
        delegation=delegation,
        zone_nameservers=tuple(zone_ns),
        nameservers=tuple(rows),
        resolvers=tuple(resolver_rows),
        warnings=tuple(nameserver_warnings(delegation, zone_ns, plan.zone)),
    )


async def follow_chain(hostname: str, qtype: str, resolver: Endpoint | None, ask: Ask) -> Chain:
    """Follow ``hostname``'s CNAME chain through the resolver, asking again from the
    last name when a reply stops part-way."""
    if resolver is None:
        return Chain(hostname, None, error="no resolver configured")
    hops: list[Hop] = []
    name = hostname
    while True:
        reply = await ask(resolver, name, qtype, True)
        if reply.message is None:
            return Chain(hostname, resolver, tuple(hops), name, error=reply.error)
        if reply.message.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            rcode = rcode_text(reply.message)
            return Chain(hostname, resolver, tuple(hops), name, rcode=rcode, error=f"{name}: {rcode}")
        step = chain_step(reply.message, name, qtype)
        known = {hostname, *(h.cname for h in hops)}
        loop = step.loop or any(h.cname in known for h in step.hops)
        hops.extend(step.hops)
        if loop or step.done or len(hops) >= MAX_HOPS or not step.hops:
            rcode = rcode_text(reply.message)
            return Chain(hostname, resolver, tuple(hops), step.end, step.values, rcode, loop=loop)
        name = step.end


# -- caching and budget ------------------------------------------------------------------


class Busy(Exception):
    """Too many new checks right now; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many propagation checks; try again in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class _Cached:
    at: float
    task: asyncio.Future[Any]


@dataclass
class Checker:
    """Runs checks, shares a running or recent one (``cache_seconds``) between every
    page and API client, and spends a budget (a token bucket: ``rate`` per second,
    ``burst`` at once) on new ones. Out of budget, the last result is served even if
    older, or Busy is raised. ``ask`` replaces the network (tests, other transports)."""

    timeout: float = DEFAULT_TIMEOUT
    ask: Ask | None = None
    cache_seconds: float = CACHE_SECONDS
    rate: float = BUDGET_RATE
    burst: int = BUDGET_BURST
    clock: Callable[[], float] = time.monotonic
    _reports: dict[tuple[str, str], _Cached] = field(default_factory=dict)
    _chains: OrderedDict[tuple[str, str], _Cached] = field(default_factory=OrderedDict)
    _tokens: float = -1.0
    _refilled: float = 0.0
    new_checks: int = 0  # how many checks were started (not served from the cache)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._refilled = self.clock()
        if self.ask is None:
            self.ask = dns_asker(self.timeout)

    def _spend(self) -> float | None:
        """Take a token; None if one was there, else the seconds until there is one."""
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate

    async def _cached(
        self, table: dict[tuple[str, str], _Cached], key: tuple[str, str], start: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, float]:
        """The result for ``key`` and its age in seconds."""
        now = self.clock()
        entry = table.get(key)
        usable = entry is not None and not _failed(entry.task)
        if entry is not None and usable and (not entry.task.done() or now - entry.at < self.cache_seconds):
            return await asyncio.shield(entry.task), now - entry.at
        wait = self._spend()
        if wait is not None:
            if entry is not None and usable and entry.task.done():
                return entry.task.result(), now - entry.at
            raise Busy(wait)
        self.new_checks += 1
        fresh = _Cached(now, asyncio.ensure_future(start()))
        table[key] = fresh
        if isinstance(table, OrderedDict):
            table.move_to_end(key)
            while len(table) > CHAIN_CACHE_LIMIT:
                table.popitem(last=False)
        return await asyncio.shield(fresh.task), 0.0

    async def report(self, plan: Plan, current: Callable[[], Expected] | None = None) -> tuple[Report, float]:
        """A check of ``plan``'s record (recent ones are shared) and its age in seconds."""
        assert self.ask is not None
        ask = self.ask
        result, age = await self._cached(
            self._reports, (plan.name, plan.type), lambda: gather(plan, ask, current)
        )
        return result, age

    async def chain(self, hostname: str, qtype: str, resolver: Endpoint | None) -> Chain:
        assert self.ask is not None
        ask = self.ask
        result, _ = await self._cached(
            self._chains, (hostname, qtype), lambda: follow_chain(hostname, qtype, resolver, ask)
        )
        return result  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Cancel checks still running (at shutdown)."""
        pending = [e.task for t in (self._reports, self._chains) for e in t.values() if not e.task.done()]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _failed(task: asyncio.Future[Any]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


def chain_type(record_type: str) -> str:
    """The type to ask when following a hostname to this record: its own address type,
    or A for a CNAME record (the chain passes through it)."""
    return record_type if record_type in ("A", "AAAA") else "A"
