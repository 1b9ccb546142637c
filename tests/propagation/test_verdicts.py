"""The verdicts without sockets: observations of a server's replies, in sync / stale /
error and why, the rows of a report and the nameserver warnings."""

from __future__ import annotations

import dns.rcode
import pytest

from dynserver import propagation as p
from dynserver.dns.serial import serial_gt
from dynserver.propagation import ERROR, IN_SYNC, STALE, Delegation, Endpoint, Nameserver, Observation, Reply
from dynserver.propagation.body import server_body
from tests.propagation.replies import NAME, ZONE, expected, message, plan, seen


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
    assert server_body(rows[2]).aa is None and server_body(rows[0]).aa is True
