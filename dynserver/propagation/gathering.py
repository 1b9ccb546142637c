"""One check, gathered: the plan from configuration and snapshot, asking over the network
(dnspython, bounded by a timeout), every server and resolver asked concurrently."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from dynserver.dns import wire
from dynserver.dns.names import name_text
from dynserver.dns.snapshot import Snapshot
from dynserver.model import DynamicRecord, ZoneConfig
from dynserver.propagation.delegation import find_delegation, resolve_addresses
from dynserver.propagation.model import (
    Ask,
    Delegation,
    Endpoint,
    Expected,
    Nameserver,
    Observation,
    Plan,
    Reply,
    Report,
    ResolverRow,
    parse_endpoint,
)
from dynserver.propagation.replies import absolute_name, answer_values, rcode_text, sorted_values, text
from dynserver.propagation.verdicts import (
    build_rows,
    classify_resolver,
    nameserver_warnings,
    observe_authoritative,
    observe_resolver,
)

DEFAULT_TIMEOUT = 1.5  # seconds per query; [web] propagation_timeout

MAX_NAMESERVER_ADDRESSES = 32  # addresses asked per check (a bound on one page's queries)


def expected_from(snapshot: Snapshot, origin: tuple[bytes, ...], name: str, rtype: str) -> Expected:
    """What our snapshot answers for ``name``/``rtype`` right now, and the zone's serial:
    the same bytes a client gets (the DNS core is a pure function)."""
    query = dns.message.make_query(absolute_name(name), rtype, use_edns=0, payload=wire.OUR_UDP_SIZE)
    query.flags &= ~dns.flags.RD
    reply = snapshot.answer(query.to_wire(), True)
    if not isinstance(reply, bytes):  # never for a plain query; be explicit all the same
        raise RuntimeError(f"the snapshot did not answer {name} {rtype}")
    message = dns.message.from_wire(reply)
    values, ttl = answer_values(message, name, rtype)
    return Expected(snapshot.zones[origin].serial, values, ttl, rcode_text(message))


def make_plan(
    snapshot: Snapshot,
    zone: ZoneConfig,
    record: DynamicRecord,
    resolvers: Sequence[str],
    timeout: float,
) -> Plan:
    """Who to ask about ``record``, and what we answer for it now."""
    name = name_text(record.name)
    zone_name = name_text(zone.name)
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
        return sorted_values(str(ipaddress.ip_address(v)) for v in found)
    return ()


def dns_asker(timeout: float) -> Ask:
    """Ask with dnspython: UDP on a connected socket (so ICMP port unreachable is an
    immediate "refused" rather than a timeout), TCP if the reply is truncated; the whole
    exchange bounded by ``timeout``. Network trouble is a Reply with an error, never an
    exception."""

    async def ask(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Reply:
        # Looked up here, in the running loop: dnspython detects the async library from
        # it, so an asker made before the loop starts (the web app is built first) works.
        backend = dns.asyncbackend.get_default_backend()
        query = dns.message.make_query(absolute_name(qname), qtype, use_edns=0, payload=wire.OUR_UDP_SIZE)
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
