"""The delegation: the zone holding a name, a parent's referral with glue, and the walk
through a scripted Ask when no parent server refers."""

from __future__ import annotations

import asyncio

import dns.rcode

from dynserver import propagation as p
from dynserver.propagation import Delegation, Endpoint, Nameserver
from tests.propagation.replies import ZONE, Script, message, scripted


def test_the_zone_holding_a_name_comes_from_the_soa_of_a_positive_or_negative_answer() -> None:
    apex = message("example.test", "SOA", aa=False, answer=["example.test. 300 SOA a. b. 1 1 1 1 1"])
    assert p.enclosing_zone(apex, "example.test") == "example.test"
    below = message("dyn.example.test", "SOA", aa=False, authority=["example.test. 300 SOA a. b. 1 1 1 1 1"])
    assert p.enclosing_zone(below, "dyn.example.test") == "example.test"
    assert p.enclosing_zone(message("x.test", "SOA", rcode=dns.rcode.REFUSED), "x.test") is None


def test_a_referral_gives_the_delegated_names_with_their_glue() -> None:
    reply = message(
        ZONE,
        "NS",
        aa=False,
        authority=[f"{ZONE}. 300 NS NS1.{ZONE}.|ns2.{ZONE}.|ns.example.net."],
        additional=[
            f"ns1.{ZONE}. 300 A 192.0.2.1",
            f"ns1.{ZONE}. 300 AAAA 2001:db8::1",
            f"ns2.{ZONE}. 300 A 192.0.2.2",
        ],
    )
    assert p.referral(reply, ZONE) == (
        Nameserver("ns.example.net"),
        Nameserver(f"ns1.{ZONE}", ("192.0.2.1", "2001:db8::1")),
        Nameserver(f"ns2.{ZONE}", ("192.0.2.2",)),
    )
    assert p.referral(message(ZONE, "NS", rcode=dns.rcode.REFUSED), ZONE) is None
    # A parent server that also serves the child answers from the child: still the NS set.
    answered = message(ZONE, "NS", answer=[f"{ZONE}. 300 NS ns1.{ZONE}."])
    assert p.referral(answered, ZONE) == (Nameserver(f"ns1.{ZONE}"),)


def test_without_a_referral_the_resolvers_ns_answer_stands_in_and_says_so() -> None:
    resolver = "192.0.2.53"
    script: Script = {
        (resolver, "example.test", "SOA"): message(
            "example.test", "SOA", answer=["example.test. 300 SOA a. b. 1 1 1 1 1"]
        ),
        (resolver, "example.test", "NS"): message(
            "example.test", "NS", answer=["example.test. 300 NS p.example."]
        ),
        (resolver, "p.example", "A"): message("p.example", "A", answer=["p.example. 300 A 198.51.100.1"]),
        (resolver, "p.example", "AAAA"): message("p.example", "AAAA"),
        ("198.51.100.1", ZONE, "NS"): "refused: nothing listens at 198.51.100.1",
        (resolver, ZONE, "NS"): message(ZONE, "NS", answer=[f"{ZONE}. 300 NS ns1.{ZONE}."]),
        (resolver, f"ns1.{ZONE}", "A"): message(f"ns1.{ZONE}", "A", answer=[f"ns1.{ZONE}. 300 A 192.0.2.1"]),
        (resolver, f"ns1.{ZONE}", "AAAA"): message(f"ns1.{ZONE}", "AAAA"),
    }
    delegation = asyncio.run(p.find_delegation(ZONE, Endpoint(resolver), scripted(script, [])))
    assert delegation.source == "resolver"
    assert delegation.nameservers == (Nameserver(f"ns1.{ZONE}", ("192.0.2.1",)),)
    assert delegation.error is not None and "198.51.100.1: refused" in delegation.error
    dead = asyncio.run(p.find_delegation(ZONE, Endpoint("192.0.2.54"), scripted({}, [])))
    assert dead == Delegation(None, error="resolver 192.0.2.54: timeout after 1 s")
