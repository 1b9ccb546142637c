"""The propagation rules without sockets: parsing replies, the verdicts (in sync, stale,
error), the delegation checks, the CNAME box, the orchestration of a check through a
scripted ``Ask``, and the Checker's cache and budget with a fake clock. The same code
against real servers: tests/web/test_propagation_routes.py and tests/web/test_propagation.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from dynserver import propagation as p
from dynserver.dns.serial import serial_gt
from dynserver.propagation import (
    ERROR,
    IN_SYNC,
    STALE,
    Chain,
    Delegation,
    Endpoint,
    Expected,
    Nameserver,
    Observation,
    Plan,
    Reply,
    cache,
)

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


# -- values ------------------------------------------------------------------------------


def test_answer_values_are_canonical_sorted_and_carry_the_ttl() -> None:
    reply = message(NAME, "AAAA", answer=[f"{NAME}. 42 AAAA 2001:DB8::0010|2001:db8:0:0::2|2001:db8::1"])
    assert p.answer_values(reply, NAME, "AAAA") == (("2001:db8::1", "2001:db8::2", "2001:db8::10"), 42)
    numeric = message(NAME, "A", answer=[f"{NAME}. 5 A 192.0.2.100|192.0.2.9"])
    assert p.answer_values(numeric, NAME, "A")[0] == ("192.0.2.9", "192.0.2.100")


def test_a_cname_where_an_address_was_asked_never_looks_like_the_answer() -> None:
    reply = message(
        NAME, "A", answer=[f"{NAME}. 60 CNAME Other.Example.NET.", "other.example.net. 60 A 192.0.2.21"]
    )
    assert p.answer_values(reply, NAME, "A") == (("CNAME other.example.net.",), 60)
    assert p.answer_values(message(NAME, "A"), NAME, "A") == ((), None)
    cname = message(NAME, "CNAME", answer=[f"{NAME}. 60 CNAME Target.Example.NET."])
    assert p.answer_values(cname, NAME, "CNAME") == (("target.example.net.",), 60)


def test_observing_an_authoritative_server_takes_aa_from_the_record_and_the_serial_from_the_soa() -> None:
    record = Reply(message(NAME, "A", answer=[f"{NAME}. 30 A 192.0.2.21"]), latency=0.01)
    soa = Reply(message(ZONE, "SOA", answer=[f"{ZONE}. 300 SOA ns1.{ZONE}. h.{ZONE}. 77 1 1 1 1"]))
    observed = p.observe_authoritative(record, soa, NAME, "A", ZONE)
    assert (observed.aa, observed.values, observed.ttl, observed.serial) == (True, ("192.0.2.21",), 30, 77)
    assert observed.latency == 0.01 and observed.error is None

    timeout = p.observe_authoritative(record, Reply(None, "timeout after 1.5 s"), NAME, "A", ZONE)
    assert timeout.serial is None and timeout.serial_error == "SOA query: timeout after 1.5 s"
    lame_soa = Reply(message(ZONE, "SOA", aa=False, answer=[f"{ZONE}. 300 SOA a. b. 77 1 1 1 1"]))
    assert "AA=0" in str(p.observe_authoritative(record, lame_soa, NAME, "A", ZONE).serial_error)
    gone = p.observe_authoritative(Reply(None, "refused: nothing listens"), soa, NAME, "A", ZONE)
    assert gone.error == "refused: nothing listens" and gone.rcode is None


# -- verdicts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observation", "status", "why"),
    [
        (seen(10), IN_SYNC, "same answer, serial 10"),
        (seen(9, "192.0.2.99"), STALE, "serial 9 (ours 10) answers 192.0.2.99: not caught up"),
        (seen(9), STALE, "same answer, older serial 9 (ours 10)"),
        (seen(10, "192.0.2.99"), STALE, "serial 10 is ours but the answer differs"),
        (Observation(rcode="NXDOMAIN", aa=True, serial=3), STALE, "answers NXDOMAIN"),
        (Observation(error="timeout after 1.5 s"), ERROR, "timeout after 1.5 s"),
        (Observation(rcode="REFUSED"), ERROR, "REFUSED (it does not serve the zone: lame)"),
        (Observation(rcode="SERVFAIL"), ERROR, "SERVFAIL"),
        (seen(10, aa=False), ERROR, "lame: answers without AA"),
        (
            Observation(rcode="NOERROR", aa=True, values=("192.0.2.21",), serial_error="SOA query: x"),
            ERROR,
            "SOA",
        ),
        (seen(11), IN_SYNC, "serial 11 is ahead of ours (10): it will not copy our changes"),
        (seen(11, "192.0.2.99"), ERROR, "it does not copy this zone from us"),
    ],
)
def test_an_authoritative_server_is_in_sync_stale_or_error(
    observation: Observation, status: str, why: str
) -> None:
    verdict, reason = p.classify_authoritative(observation, [expected(10)])
    assert verdict == status
    assert why in reason


def test_a_change_during_the_check_does_not_make_a_quick_server_stale() -> None:
    before, after = expected(10, "192.0.2.21"), expected(11, "192.0.2.22")
    assert p.classify_authoritative(seen(10, "192.0.2.21"), [before, after])[0] == IN_SYNC
    assert p.classify_authoritative(seen(11, "192.0.2.22"), [before, after])[0] == IN_SYNC
    # The old answer at the new serial is no serial of ours with that answer.
    assert p.classify_authoritative(seen(11, "192.0.2.21"), [before, after])[0] == STALE
    assert p.classify_authoritative(seen(9, "192.0.2.20"), [before, after])[0] == STALE


def test_serials_compare_as_rfc_1982_says() -> None:
    assert serial_gt(11, 10) and not serial_gt(10, 11) and not serial_gt(10, 10)
    assert serial_gt(1, 2**32 - 1)  # wrapped around
    assert not serial_gt(2**32 - 1, 1)
    # A secondary that wrapped past us is ahead; one left behind before the wrap is stale.
    assert p.classify_authoritative(seen(2), [expected(2**32 - 2)])[0] == IN_SYNC  # ahead, same answer
    assert p.classify_authoritative(seen(2**32 - 3, "192.0.2.1"), [expected(1)])[0] == STALE


@pytest.mark.parametrize(
    ("observation", "status", "why"),
    [
        (
            Observation(rcode="NOERROR", values=("192.0.2.21",), ttl=17),
            IN_SYNC,
            "same answer; cached for 17 s more",
        ),
        (
            Observation(rcode="NOERROR", values=("192.0.2.99",), ttl=17),
            STALE,
            "answers 192.0.2.99; it may keep it 17 s",
        ),
        (Observation(rcode="NXDOMAIN", ttl=60), STALE, "answers NXDOMAIN; it may keep it 60 s"),
        (Observation(rcode="SERVFAIL"), ERROR, "SERVFAIL"),
        (Observation(error="timeout after 1.5 s"), ERROR, "timeout"),
    ],
)
def test_a_resolver_is_judged_by_its_answer(observation: Observation, status: str, why: str) -> None:
    verdict, reason = p.classify_resolver(observation, [expected(10)])
    assert verdict == status and why in reason


def test_a_resolvers_negative_answer_keeps_the_soa_ttl_as_what_it_has_left() -> None:
    reply = Reply(
        message(NAME, "A", rcode=dns.rcode.NXDOMAIN, aa=False, authority=[f"{ZONE}. 44 SOA a. b. 1 1 1 1 60"])
    )
    observed = p.observe_resolver(reply, NAME, "A")
    assert (observed.rcode, observed.values, observed.ttl) == ("NXDOMAIN", (), 44)


# -- delegation ----------------------------------------------------------------------------


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


def test_warnings_name_servers_in_the_delegation_or_the_zone_only_and_glue_that_differs() -> None:
    delegation = Delegation(
        "example.test",
        (Nameserver("ns1.x", ("192.0.2.1",)), Nameserver("ns4.x", ("192.0.2.4",)), Nameserver("ns.y")),
        "parent",
    )
    zone = [Nameserver("ns1.x", ("192.0.2.10",)), Nameserver("ns5.x", ("192.0.2.5",)), Nameserver("ns.y")]
    warnings = p.nameserver_warnings(delegation, zone, "x")
    assert len(warnings) == 3
    assert warnings[0].startswith(
        "ns4.x is delegated to by the parent (example.test) but is not in the zone's NS set"
    )
    assert warnings[1].startswith(
        "ns5.x is in the zone's NS set but the parent (example.test) does not delegate"
    )
    assert "glue for ns1.x (192.0.2.1) differs from the zone's address (192.0.2.10)" in warnings[2]
    agreed = Delegation("example.test", tuple(zone), "parent")
    assert p.nameserver_warnings(agreed, zone, "x") == []
    unknown = Delegation(None, error="resolver 127.0.0.9: timeout after 1.5 s")
    assert p.nameserver_warnings(unknown, zone, "x") == [
        "the delegation of x could not be checked: resolver 127.0.0.9: timeout after 1.5 s"
    ]


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


def test_rows_merge_an_address_listed_several_ways_and_show_names_without_address() -> None:
    delegation = Delegation(
        "example.test", (Nameserver("ns1.x", ("192.0.2.1",)), Nameserver("ns9.x")), "parent"
    )
    zone = [Nameserver("ns1.x", ("192.0.2.1",)), Nameserver("alias.x", ("192.0.2.1",))]
    secondary = Endpoint("192.0.2.1")
    observations = {secondary: seen(10), Endpoint("192.0.2.7", 5353): Observation(error="timeout after 1 s")}
    rows = p.build_rows(
        plan(secondaries=(secondary, Endpoint("192.0.2.7", 5353))),
        zone,
        delegation,
        observations,
        [expected(10)],
    )
    assert [(r.host, r.port, r.names, r.sources, r.status) for r in rows] == [
        ("192.0.2.1", 53, ("ns1.x", "alias.x"), ("delegation", "zone", "secondary"), IN_SYNC),
        (None, 53, ("ns9.x",), ("delegation",), ERROR),
        ("192.0.2.7", 5353, (), ("secondary",), ERROR),
    ]
    assert rows[1].reason == "no address for ns9.x: no A or AAAA record"
    assert rows[2].to_json()["aa"] is None and rows[0].to_json()["aa"] is True


# -- the CNAME box -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    ["www.example.com", "WWW.Example.COM.", "_acme-challenge.example.com", "a.b", "x" * 63 + ".example"],
)
def test_hostnames_the_box_takes(given: str) -> None:
    assert p.parse_hostname(given) == given.rstrip(".").lower()


@pytest.mark.parametrize(
    "given",
    [
        "",
        "localhost",  # one label: not a static hostname of a zone
        "a..b",
        ".example.com",
        "-www.example.com",
        "www-.example.com",
        "x" * 64 + ".example",
        ("abcdefghi." * 26)[:-1],  # 259 characters
        "www.exämple.com",  # IDN: enter the punycode (xn--...) form
        "www example.com",
        "www.example.com\n",
        " www.example.com",
        "www.example.com/path",
        "192.0.2.1:80",
    ],
)
def test_hostnames_the_box_refuses_with_what_it_expects(given: str) -> None:
    with pytest.raises(ValueError, match=r"hostname"):
        p.parse_hostname(given)


def test_a_hostname_of_253_characters_is_the_longest() -> None:
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(longest) == 253 and p.parse_hostname(longest) == longest
    with pytest.raises(ValueError, match="at most 253"):
        p.parse_hostname(longest + "b")


def test_a_resolvers_chain_is_followed_hop_by_hop() -> None:
    reply = message(
        "www.example.com",
        "A",
        aa=False,
        answer=[
            "www.example.com. 300 CNAME edge.example.net.",
            "edge.example.net. 60 CNAME APP.dyn.example.test.",
            f"{NAME}. 30 A 192.0.2.21",
        ],
    )
    step = p.chain_step(reply, "www.example.com", "A")
    assert [(h.name, h.cname, h.ttl) for h in step.hops] == [
        ("www.example.com", "edge.example.net", 300),
        ("edge.example.net", NAME, 60),
    ]
    assert (step.end, step.values, step.done) == (NAME, ("192.0.2.21",), True)
    chain = Chain("www.example.com", Endpoint("127.0.0.2"), step.hops, step.end, step.values, "NOERROR")
    assert chain.verdict(NAME) == (True, f"www.example.com reaches {NAME} in 2 hop(s)")
    assert chain.verdict("other.dyn.example.test") == (
        False,
        f"the chain ends at {NAME}, not at other.dyn.example.test",
    )


def test_a_chain_cut_short_is_not_done_and_a_loop_is_caught() -> None:
    partial = message(
        "www.example.com", "A", aa=False, answer=["www.example.com. 300 CNAME edge.example.net."]
    )
    step = p.chain_step(partial, "www.example.com", "A")
    assert step.end == "edge.example.net" and not step.done  # ask again from edge.example.net
    negative = message(
        "www.example.com",
        "A",
        rcode=dns.rcode.NXDOMAIN,
        answer=["www.example.com. 300 CNAME gone.example.net."],
        authority=["example.net. 60 SOA a. b. 1 1 1 1 1"],
    )
    assert p.chain_step(negative, "www.example.com", "A").done
    loop = message(
        "a.example", "A", answer=["a.example. 1 CNAME b.example.", "b.example. 1 CNAME a.example."]
    )
    looped = p.chain_step(loop, "a.example", "A")
    assert looped.loop and looped.done


def test_chain_verdicts_say_why_a_hostname_does_not_point_here() -> None:
    here = Endpoint("127.0.0.2")
    assert Chain(NAME, here, rcode="NOERROR", values=("192.0.2.21",)).verdict(NAME) == (
        True,
        f"{NAME} is this record",
    )
    direct = Chain("www.example.com", here, end="www.example.com", values=("192.0.2.9",), rcode="NOERROR")
    assert direct.verdict(NAME) == (False, "www.example.com has no CNAME: it answers 192.0.2.9 itself")
    missing = Chain("www.example.com", here, end="www.example.com", rcode="NXDOMAIN")
    assert missing.verdict(NAME) == (False, "www.example.com does not exist (NXDOMAIN)")
    failed = Chain("www.example.com", here, error="timeout after 1.5 s")
    assert failed.verdict(NAME) == (False, "www.example.com: timeout after 1.5 s")
    assert p.chain_type("CNAME") == "A" and p.chain_type("AAAA") == "AAAA"


# -- a whole check, through a scripted Ask ------------------------------------------------


Script = dict[tuple[str, str, str], dns.message.Message | str]


def scripted(script: Script, asked: list[tuple[str, str, str, bool]]) -> p.Ask:
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


def test_a_check_reads_our_answer_again_at_the_end() -> None:
    script: Script = {}
    authoritative(script, "192.0.2.1", 11, "192.0.2.22")
    authoritative(script, "192.0.2.2", 10, "192.0.2.21")
    the_plan = plan(secondaries=(Endpoint("192.0.2.1"), Endpoint("192.0.2.2")))
    changed = expected(11, "192.0.2.22")
    report = asyncio.run(p.gather(the_plan, scripted(script, []), lambda: changed))
    assert report.expected == changed
    assert [r.status for r in report.nameservers] == [IN_SYNC, IN_SYNC]  # before and after the change
    assert report.to_json()["expected"] == {
        "answer": ["192.0.2.22"],
        "ttl": 30,
        "serial": 11,
        "rcode": "NOERROR",
    }


def test_following_a_chain_asks_again_where_a_reply_stopped() -> None:
    resolver = Endpoint("192.0.2.53")
    script: Script = {
        ("192.0.2.53", "www.example.com", "A"): message(
            "www.example.com", "A", aa=False, answer=["www.example.com. 300 CNAME edge.example.net."]
        ),
        ("192.0.2.53", "edge.example.net", "A"): message(
            "edge.example.net",
            "A",
            aa=False,
            answer=[f"edge.example.net. 60 CNAME {NAME}.", f"{NAME}. 30 A 192.0.2.21"],
        ),
    }
    chain = asyncio.run(p.follow_chain("www.example.com", "A", resolver, scripted(script, [])))
    assert [h.cname for h in chain.hops] == ["edge.example.net", NAME]
    assert chain.values == ("192.0.2.21",)
    assert chain.to_json(NAME)["reaches_record"] is True
    failed = asyncio.run(p.follow_chain("www.example.com", "A", Endpoint("192.0.2.54"), scripted({}, [])))
    assert failed.error == "timeout after 1 s" and failed.to_json(NAME)["reaches_record"] is False


# -- cache and budget ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting(calls: list[str]) -> p.Ask:
    async def ask(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Reply:
        calls.append(qname)
        await asyncio.sleep(0.01)
        return Reply(None, "timeout after 1 s")

    return ask


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_a_recent_or_running_check_is_shared() -> None:
    async def test() -> None:
        calls: list[str] = []
        clock = Clock()
        checker = p.Checker(ask=counting(calls), clock=clock)
        the_plan = plan(secondaries=(Endpoint("192.0.2.1"),))
        (first, _), (second, _) = await asyncio.gather(checker.report(the_plan), checker.report(the_plan))
        assert first is second and checker.new_checks == 1  # one in flight, shared
        clock.now += p.CACHE_SECONDS - 0.1
        third, age3 = await checker.report(the_plan)
        assert third is first and age3 == pytest.approx(p.CACHE_SECONDS - 0.1)
        clock.now += 0.2
        fourth, _ = await checker.report(the_plan)
        assert fourth is not first and checker.new_checks == 2
        assert len(calls) == 4  # two checks of one secondary: record + SOA each

    run(test)


def test_out_of_budget_the_last_result_is_served_or_busy_is_raised() -> None:
    async def test() -> None:
        clock = Clock()
        checker = p.Checker(ask=counting([]), clock=clock, rate=0.5, burst=2)
        one, two, three = (plan(name=f"r{i}.{ZONE}") for i in range(3))
        await checker.report(one)
        await checker.report(two)
        with pytest.raises(p.Busy) as busy:
            await checker.report(three)
        assert busy.value.retry_after == pytest.approx(2.0)  # one token per 2 s
        clock.now += 10  # the cache expired; the bucket holds 2 again
        await checker.report(three)
        await checker.report(two)
        _, age = await checker.report(one)  # no token left: the old result, with its age
        assert age == pytest.approx(10.0)
        assert checker.new_checks == 4

    run(test)


def test_the_chain_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "CHAIN_CACHE_LIMIT", 3)  # the module Checker reads it from

    async def test() -> None:
        calls: list[str] = []
        checker = p.Checker(ask=counting(calls), clock=Clock(), burst=100)
        for i in range(5):
            await checker.chain(f"h{i}.example.com", "A", Endpoint("192.0.2.53"))
        assert list(k[0] for k in checker._chains) == ["h2.example.com", "h3.example.com", "h4.example.com"]
        await checker.chain("h4.example.com", "A", Endpoint("192.0.2.53"))
        assert len(calls) == 5  # the last one came from the cache

    run(test)


def test_a_failed_check_is_not_served_from_the_cache() -> None:
    async def test() -> None:
        attempts = []

        async def broken(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Reply:
            attempts.append(qname)
            raise RuntimeError("a bug")

        checker = p.Checker(ask=broken, clock=Clock())
        the_plan = plan(secondaries=(Endpoint("192.0.2.1"),))
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await checker.report(the_plan)
        assert checker.new_checks == 2

    run(test)
