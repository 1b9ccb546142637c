"""The data of a propagation check: what is asked, what came back, the rows and the report,
and the closed sets they use (no I/O, nothing that decides; their JSON is in ``body``)."""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dns.message

from dynserver.types import RecordType


# The docstrings of these enums say what each value means: they are the descriptions of
# the OpenAPI document's enums.
class PropagationStatus(enum.StrEnum):
    """in_sync: our answer (and, for a nameserver, one of our serials); stale: it answers,
    but an older serial or another answer; error: no usable reply (timeout, refused,
    SERVFAIL, REFUSED, lame)."""

    IN_SYNC = "in_sync"
    STALE = "stale"
    ERROR = "error"


# The statuses by their short names, as the verdicts (and the pages) write them.
IN_SYNC, STALE, ERROR = PropagationStatus.IN_SYNC, PropagationStatus.STALE, PropagationStatus.ERROR


class NameserverSource(enum.StrEnum):
    """Who lists an authoritative server: delegation: the parent's NS set; zone: our apex
    NS; secondary: configured."""

    # a row names its sources, and the rows are sorted, in this order
    DELEGATION = "delegation"
    ZONE = "zone"
    SECONDARY = "secondary"


class DelegationSource(enum.StrEnum):
    """How the parent's NS set was found: parent: a parent server's referral; resolver: the
    resolver's NS answer; none: not found."""

    PARENT = "parent"
    RESOLVER = "resolver"
    NONE = "none"


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
    type: RecordType
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
    sources: tuple[NameserverSource, ...]
    status: PropagationStatus
    reason: str
    observation: Observation


@dataclass(frozen=True, slots=True)
class ResolverRow:
    endpoint: Endpoint
    status: PropagationStatus
    reason: str
    observation: Observation


@dataclass(frozen=True, slots=True)
class Delegation:
    """The parent's NS set for the zone, with glue, and how it was found."""

    parent: str | None  # the parent zone, no final dot
    nameservers: tuple[Nameserver, ...] = ()
    source: DelegationSource = DelegationSource.NONE
    error: str | None = None


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

    def summary(self) -> dict[PropagationStatus, int]:
        """How many servers and resolvers are in each status."""
        counts = dict.fromkeys(PropagationStatus, 0)
        rows: list[Row | ResolverRow] = [*self.nameservers, *self.resolvers]
        for row in rows:
            counts[row.status] += 1
        return counts
