"""The JSON of a propagation check as typed definitions (msgspec Structs), and the one place
that builds it from the model. dynserver.web.schema's Propagation extends ``Report`` with
what the web adds, and the OpenAPI document derives every schema from these classes.

The classes are named as the document's components (``Hop``, ``Expected``, ``Delegation``
here are the JSON of the model's classes of the same name). Like the API's response
bodies, each forbids unknown fields when decoded, so a test that decodes what was sent
proves it was exactly these fields.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from dynserver.propagation import chain, model
from dynserver.propagation.model import DelegationSource, NameserverSource, PropagationStatus
from dynserver.types import RecordType

# Durations are seconds (the API's times are Unix seconds).
Seconds = Annotated[float | None, Meta(description="Seconds.")]


class Body(Struct, frozen=True, forbid_unknown_fields=True):
    """A part of the propagation JSON (the base of every Struct here)."""


class PropagationNameserver(Body, frozen=True):
    name: str
    addresses: list[str]
    error: Annotated[str | None, Meta(description="Why no address was found.")]


class PropagationServer(Body, frozen=True):
    """An authoritative server, asked directly (RD=0) for the record and the SOA."""

    address: Annotated[str | None, Meta(description="null: the name has no address.")]
    port: int
    names: Annotated[list[str], Meta(description="The NS names with this address.")]
    sources: list[NameserverSource]
    status: PropagationStatus
    reason: str
    rcode: Annotated[str | None, Meta(description="null: no reply.")]
    aa: bool | None
    answer: list[str]
    ttl: int | None
    serial: int | None
    latency: Seconds


class PropagationResolver(Body, frozen=True):
    """A configured resolver, asked with recursion (RD=1)."""

    address: str
    port: int
    status: PropagationStatus
    reason: str
    rcode: str | None
    answer: list[str]
    ttl: Annotated[int | None, Meta(description="What the resolver has left of its cache.")]
    latency: Seconds


class Hop(Body, frozen=True):
    name: str
    cname: str
    ttl: int


class CnameCheck(Body, frozen=True):
    """The hostname's CNAME chain, through the first resolver."""

    hostname: str
    resolver: str | None
    hops: list[Hop]
    end: str
    answer: list[str]
    rcode: str | None
    reaches_record: bool
    reason: str
    error: str | None


class Expected(Body, frozen=True):
    """What dynserver answers now."""

    answer: list[str]
    ttl: int | None
    serial: int
    rcode: str


class Summary(Body, frozen=True):
    """How many servers and resolvers are in each status."""

    # a field per PropagationStatus, in its order (tests/web/test_schema.py holds them equal)
    in_sync: int
    stale: int
    error: int


class Delegation(Body, frozen=True):
    parent: str | None
    source: DelegationSource
    nameservers: list[PropagationNameserver]
    error: str | None


class Report(Body, frozen=True):
    """One finished check of a record (the web adds its age, the mirrors and the CNAME
    check)."""

    record: str
    type: RecordType
    zone: str
    checked_at: Annotated[float, Meta(description="Unix time the check finished.")]
    duration: Annotated[float, Meta(description="Seconds the check took.")]
    timeout: Annotated[float, Meta(description="Seconds each query may take.")]
    expected: Expected
    summary: Summary
    warnings: Annotated[list[str], Meta(description="Where the delegation and the zone's NS set disagree.")]
    delegation: Delegation
    zone_nameservers: list[PropagationNameserver]
    nameservers: list[PropagationServer]
    resolvers: list[PropagationResolver]


# -- from the model --------------------------------------------------------------------


def nameserver_body(ns: model.Nameserver) -> PropagationNameserver:
    return PropagationNameserver(name=ns.name, addresses=list(ns.addresses), error=ns.error)


def server_body(row: model.Row) -> PropagationServer:
    seen = row.observation
    return PropagationServer(
        address=row.host,
        port=row.port,
        names=list(row.names),
        sources=list(row.sources),
        status=row.status,
        reason=row.reason,
        rcode=seen.rcode,
        aa=seen.aa if seen.rcode is not None else None,  # no reply, no flag
        answer=list(seen.values),
        ttl=seen.ttl,
        serial=seen.serial,
        latency=seen.latency,
    )


def resolver_body(row: model.ResolverRow) -> PropagationResolver:
    seen = row.observation
    return PropagationResolver(
        address=row.endpoint.host,
        port=row.endpoint.port,
        status=row.status,
        reason=row.reason,
        rcode=seen.rcode,
        answer=list(seen.values),
        ttl=seen.ttl,
        latency=seen.latency,
    )


def delegation_body(delegation: model.Delegation) -> Delegation:
    return Delegation(
        parent=delegation.parent,
        source=delegation.source,
        nameservers=[nameserver_body(ns) for ns in delegation.nameservers],
        error=delegation.error,
    )


def report_body(report: model.Report) -> Report:
    expected = report.expected
    plan = report.plan
    return Report(
        record=plan.name,
        type=plan.type,
        zone=plan.zone,
        checked_at=report.checked_at,
        duration=round(report.duration, 3),
        timeout=plan.timeout,
        expected=Expected(
            answer=list(expected.values), ttl=expected.ttl, serial=expected.serial, rcode=expected.rcode
        ),
        summary=Summary(**{status.value: count for status, count in report.summary().items()}),
        warnings=list(report.warnings),
        delegation=delegation_body(report.delegation),
        zone_nameservers=[nameserver_body(ns) for ns in report.zone_nameservers],
        nameservers=[server_body(row) for row in report.nameservers],
        resolvers=[resolver_body(row) for row in report.resolvers],
    )


def cname_check_body(found: chain.Chain, record: str) -> CnameCheck:
    """The chain, and whether it reaches ``record`` and why."""
    reaches, reason = found.verdict(record)
    return CnameCheck(
        hostname=found.hostname,
        resolver=str(found.resolver) if found.resolver else None,
        hops=[Hop(name=h.name, cname=h.cname, ttl=h.ttl) for h in found.hops],
        end=found.end or found.hostname,
        answer=list(found.values),
        rcode=found.rcode,
        reaches_record=reaches,
        reason=reason,
        error=found.error,
    )
