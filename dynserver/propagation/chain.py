"""A user's hostname followed through its CNAME chain: the CNAME box's rule, one reply's
step (pure) and the walk through an injected Ask."""

from __future__ import annotations

import re
from dataclasses import dataclass

import dns.message
import dns.rcode
import dns.rdatatype

from dynserver.dns.names import fqdn
from dynserver.propagation.model import Ask, Endpoint
from dynserver.propagation.replies import rcode_text, sorted_values, text, value_text

MAX_HOPS = 16  # CNAME hops followed (resolvers stop near 8-16 too)
MAX_HOSTNAME = 253  # RFC 1035 2.3.4, in presentation form

# A hostname as the CNAME box accepts it: LDH labels (underscore allowed, as in
# _acme-challenge), at least two labels, an optional final dot; ASCII only (punycode for
# IDN). The OpenAPI document carries the same pattern.
HOSTNAME_PATTERN = (
    r"^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)+[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$"
)
_HOSTNAME = re.compile(HOSTNAME_PATTERN)


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
    return fqdn(value)  # the pattern admits no space, so fqdn's strip() refuses nothing new


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
    values = sorted_values(value_text(rd) for rd in data) if data is not None else ()
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


def chain_type(record_type: str) -> str:
    """The type to ask when following a hostname to this record: its own address type,
    or A for a CNAME record (the chain passes through it)."""
    return record_type if record_type in ("A", "AAAA") else "A"
