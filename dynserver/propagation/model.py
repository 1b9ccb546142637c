"""The data of a propagation check: what is asked, what came back, the rows and the report
with their JSON (no I/O, nothing that decides)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dns.message

IN_SYNC = "in_sync"
STALE = "stale"
ERROR = "error"
STATUSES = (IN_SYNC, STALE, ERROR)

SOURCES = ("delegation", "zone", "secondary")


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
