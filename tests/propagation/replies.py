"""Replies, observations and plans for the propagation tests, written as text, and a
scripted Ask that answers from a table instead of the network."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from dynserver.propagation import Ask, Endpoint, Expected, Observation, Plan, Reply

NAME = "app.dyn.example.test"
ZONE = "dyn.example.test"


def rr(line: str) -> dns.rrset.RRset:
    """``"name ttl TYPE value [value...]"`` as an RRset (values separated by '|')."""
    name, ttl, rtype, values = line.split(" ", 3)
    return dns.rrset.from_text_list(name, int(ttl), "IN", rtype, values.split("|"))


def message(
    qname: str,
    qtype: str,
    *,
    answer: Iterable[str] = (),
    authority: Iterable[str] = (),
    additional: Iterable[str] = (),
    rcode: int = dns.rcode.NOERROR,
    aa: bool = True,
) -> dns.message.Message:
    reply = dns.message.make_response(dns.message.make_query(qname, qtype))
    reply.set_rcode(rcode)
    if aa:
        reply.flags |= dns.flags.AA
    else:
        reply.flags &= ~dns.flags.AA
    reply.answer = [rr(line) for line in answer]
    reply.authority = [rr(line) for line in authority]
    reply.additional = [rr(line) for line in additional]
    return reply


def expected(serial: int = 10, *values: str) -> Expected:
    return Expected(serial, tuple(values or ("192.0.2.21",)), 30, "NOERROR")


def seen(serial: int | None = 10, *values: str, aa: bool = True, rcode: str = "NOERROR") -> Observation:
    return Observation(rcode=rcode, aa=aa, values=tuple(values or ("192.0.2.21",)), ttl=30, serial=serial)


def plan(**overrides: object) -> Plan:
    fields: dict[str, object] = {
        "name": NAME,
        "type": "A",
        "zone": ZONE,
        "expected": expected(10),
        "zone_nameservers": (),
        "secondaries": (),
        "resolvers": (),
        "timeout": 1.0,
    }
    fields.update(overrides)
    return Plan(**fields)  # type: ignore[arg-type]


Script = dict[tuple[str, str, str], dns.message.Message | str]


def scripted(script: Script, asked: list[tuple[str, str, str, bool]]) -> Ask:
    """An Ask answering from ``script`` ((where, qname, qtype) -> reply or error text);
    anything not scripted times out."""

    async def ask(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Reply:
        asked.append((str(where), qname, qtype, recursion))
        await asyncio.sleep(0)
        found = script.get((str(where), qname, qtype))
        if found is None:
            return Reply(None, "timeout after 1 s")
        if isinstance(found, str):
            return Reply(None, found)
        return Reply(found, latency=0.001)

    return ask


def authoritative(script: Script, where: str, serial: int, address: str) -> None:
    script[(where, NAME, "A")] = message(NAME, "A", answer=[f"{NAME}. 30 A {address}"])
    script[(where, ZONE, "SOA")] = message(ZONE, "SOA", answer=[f"{ZONE}. 300 SOA a. b. {serial} 1 1 1 1"])
