"""The delegation: which zone is the parent, what its servers refer to (NS and glue), and
the nameservers' addresses, asked through an injected Ask."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dynserver.propagation.model import Ask, Delegation, DelegationSource, Endpoint, Nameserver, Reply
from dynserver.propagation.replies import (
    absolute_name,
    answer_values,
    find_rrset,
    rcode_text,
    sorted_values,
    text,
    value_text,
)

MAX_PARENT_ASKED = 3  # parent servers asked for the referral at once


def enclosing_zone(message: dns.message.Message, qname: str) -> str | None:
    """The zone holding ``qname``, from an SOA in the answer (``qname`` is an apex) or in
    the authority section (a negative answer names the zone)."""
    name = absolute_name(qname)
    for rrset in (*message.answer, *message.authority):
        if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
            return text(rrset.name)
    return None


def ns_names(message: dns.message.Message, zone: str) -> tuple[str, ...]:
    found = find_rrset(message.answer, absolute_name(zone), dns.rdatatype.NS)
    return tuple(sorted({text(rd.target) for rd in found})) if found is not None else ()


def referral(message: dns.message.Message, zone: str) -> tuple[Nameserver, ...] | None:
    """The NS set (with glue) a parent server gives for ``zone``: a referral's authority
    section, or the answer if that server also serves the zone. None: not a referral."""
    name = absolute_name(zone)
    found = find_rrset(message.authority, name, dns.rdatatype.NS) or find_rrset(
        message.answer, name, dns.rdatatype.NS
    )
    if found is None:
        return None
    glue: dict[str, list[str]] = {}
    for rrset in message.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(text(rrset.name), []).extend(value_text(rd) for rd in rrset)
    names = sorted({text(rd.target) for rd in found})
    return tuple(Nameserver(n, sorted_values(glue.get(n, ()))) for n in names)


def address_values(message: dns.message.Message, name: str, rtype: str) -> tuple[str, ...]:
    values, _ = answer_values(message, name, rtype)
    return tuple(v for v in values if not v.startswith("CNAME "))


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
        result.append(Nameserver(name, sorted_values(found), error))
    return result


async def find_delegation(zone: str, resolver: Endpoint | None, ask: Ask) -> Delegation:
    """The parent's NS set and glue for ``zone``.

    Through the resolver: which zone holds the parent name (its SOA), that zone's
    nameservers and their addresses; then a few of those servers are asked directly
    (RD=0) for the zone's NS, and their referral is the delegation. If no parent server
    refers, the resolver's own NS answer for the zone stands in (and says so)."""
    if resolver is None:
        return Delegation(None, error="no resolver configured")
    absolute = absolute_name(zone)
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
                    return Delegation(parent, complete, DelegationSource.PARENT)
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
    return Delegation(parent, tuple(located), DelegationSource.RESOLVER, note)


def _no_referral(reply: Reply) -> str:
    if reply.message is None:
        return reply.error or "no reply"
    return f"{rcode_text(reply.message)}, no NS records"
