"""A whole check through a scripted Ask: the delegation found through the parent, every
server asked once, our answer read again at the end. Against real servers:
tests/web/test_propagation_routes.py and tests/web/test_propagation.py."""

from __future__ import annotations

import asyncio

import msgspec

from dynserver import propagation as p
from dynserver.propagation import ERROR, IN_SYNC, STALE, Delegation, Endpoint, Nameserver
from tests.propagation.replies import NAME, ZONE, Script, authoritative, expected, message, plan, scripted


def test_a_check_finds_the_delegation_through_the_parent_and_asks_every_server() -> None:
    resolver = "192.0.2.53"
    script: Script = {
        (resolver, "example.test", "SOA"): message(
            "example.test", "SOA", aa=False, answer=["example.test. 300 SOA a. b. 1 1 1 1 1"]
        ),
        (resolver, "example.test", "NS"): message(
            "example.test", "NS", aa=False, answer=["example.test. 300 NS p.example."]
        ),
        (resolver, "p.example", "A"): message(
            "p.example", "A", aa=False, answer=["p.example. 300 A 198.51.100.1"]
        ),
        (resolver, "p.example", "AAAA"): message("p.example", "AAAA", aa=False),
        # the parent refers: ns1 with glue, ns.example.net without
        ("198.51.100.1", ZONE, "NS"): message(
            ZONE,
            "NS",
            aa=False,
            authority=[f"{ZONE}. 300 NS ns1.{ZONE}.|ns.example.net."],
            additional=[f"ns1.{ZONE}. 300 A 192.0.2.1"],
        ),
        (resolver, "ns.example.net", "A"): message(
            "ns.example.net", "A", aa=False, answer=["ns.example.net. 1 A 192.0.2.3"]
        ),
        (resolver, "ns.example.net", "AAAA"): message("ns.example.net", "AAAA", aa=False),
        (resolver, NAME, "A"): message(NAME, "A", aa=False, answer=[f"{NAME}. 12 A 192.0.2.99"]),
    }
    authoritative(script, "192.0.2.1", 10, "192.0.2.21")
    authoritative(script, "192.0.2.3", 9, "192.0.2.99")
    asked: list[tuple[str, str, str, bool]] = []
    zone_ns = (Nameserver(f"ns1.{ZONE}", ("192.0.2.1",)), Nameserver("ns.example.net"))
    the_plan = plan(
        resolvers=(Endpoint(resolver),), zone_nameservers=zone_ns, secondaries=(Endpoint("192.0.2.7"),)
    )
    report = asyncio.run(p.gather(the_plan, scripted(script, asked)))

    assert report.delegation == Delegation(
        "example.test",
        (Nameserver("ns.example.net", ("192.0.2.3",)), Nameserver(f"ns1.{ZONE}", ("192.0.2.1",))),
        "parent",
    )
    rows = {r.host: (r.sources, r.status) for r in report.nameservers}
    assert rows == {
        "192.0.2.1": (("delegation", "zone"), IN_SYNC),
        "192.0.2.3": (("delegation", "zone"), STALE),
        "192.0.2.7": (("secondary",), ERROR),
    }
    assert [(r.status, r.observation.ttl) for r in report.resolvers] == [(STALE, 12)]
    assert report.warnings == ()
    assert report.summary() == {IN_SYNC: 1, STALE: 2, ERROR: 1}
    # Servers are asked without recursion, resolvers with; no address is asked twice.
    direct = [a for a in asked if a[0] != resolver]
    assert direct and not any(recursion for *_, recursion in direct)
    assert all(recursion for where, *_, recursion in asked if where == resolver)
    assert len({a for a in asked}) == len(asked)


def test_a_check_reads_our_answer_again_at_the_end() -> None:
    script: Script = {}
    authoritative(script, "192.0.2.1", 11, "192.0.2.22")
    authoritative(script, "192.0.2.2", 10, "192.0.2.21")
    the_plan = plan(secondaries=(Endpoint("192.0.2.1"), Endpoint("192.0.2.2")))
    changed = expected(11, "192.0.2.22")
    report = asyncio.run(p.gather(the_plan, scripted(script, []), lambda: changed))
    assert report.expected == changed
    assert [r.status for r in report.nameservers] == [IN_SYNC, IN_SYNC]  # before and after the change
    assert msgspec.to_builtins(p.report_body(report))["expected"] == {
        "answer": ["192.0.2.22"],
        "ttl": 30,
        "serial": 11,
        "rcode": "NOERROR",
    }
