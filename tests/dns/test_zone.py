"""Zone data helpers: RRsets built from presentation-form RDATA; names dropped again."""

from __future__ import annotations

import pytest

from dynserver.config import parse_name
from dynserver.dns import wire
from dynserver.dns.zone import Zone, rrset_from_texts


def test_rrset_from_texts_with_addresses() -> None:
    rrset = rrset_from_texts((b"www", b"example"), wire.TYPE_A, 60, ["192.0.2.1", "192.0.2.2", "192.0.2.1"])
    assert rrset.texts() == ["192.0.2.1", "192.0.2.2"], "a set: duplicates dropped"


@pytest.mark.parametrize(
    ("rtype", "text"),
    [
        (wire.TYPE_NS, "ns1.example.net."),
        (wire.TYPE_CNAME, "www.example.net."),
        (wire.TYPE_MX, "10 mx.example.net."),
    ],
)
def test_rrset_from_texts_with_names(rtype: int, text: str) -> None:
    rrset = rrset_from_texts((b"example",), rtype, 60, [text])
    assert rrset.texts() == [text]


def test_without_drops_empty_leaves_only() -> None:
    origin = parse_name("example.test")
    soa = rrset_from_texts(origin, wire.TYPE_SOA, 60, ["ns1.example.test. h.example.test. 1 2 3 4 5"])
    leaf = parse_name("_acme-challenge.www.example.test")
    deep = parse_name("a.b.example.test")
    zone = Zone.build(origin, [soa, rrset_from_texts(deep, wire.TYPE_A, 60, ["192.0.2.1"])])
    zone = zone.with_nodes({leaf: {}})
    assert leaf in zone.nodes
    smaller = zone.without([leaf, parse_name("b.example.test"), origin, parse_name("nowhere.example.test")])
    assert leaf not in smaller.nodes  # an empty leaf goes
    assert parse_name("www.example.test") in smaller.nodes  # its ancestor stays
    assert parse_name("b.example.test") in smaller.nodes  # an empty non-terminal stays
    assert origin in smaller.nodes and deep in smaller.nodes


def test_with_nodes_and_a_serial_is_with_nodes_then_with_serial_in_one_copy() -> None:
    origin = parse_name("example.test")
    soa = rrset_from_texts(origin, wire.TYPE_SOA, 60, ["ns1.example.test. h.example.test. 1 2 3 4 5"])
    www = parse_name("www.example.test")
    deep = parse_name("a.b.example.test")
    zone = Zone.build(origin, [soa, rrset_from_texts(www, wire.TYPE_A, 60, ["192.0.2.1"])])
    nodes = {www: {wire.TYPE_A: rrset_from_texts(www, wire.TYPE_A, 60, ["192.0.2.2"])}, deep: {}}
    both = zone.with_nodes(nodes, serial=7)
    expected = zone.with_nodes(nodes).with_serial(7)
    assert both.serial == expected.serial == 7
    assert {n: dict(node) for n, node in both.nodes.items()} == {
        n: dict(node) for n, node in expected.nodes.items()
    }
    assert both.nodes[origin][wire.TYPE_SOA] == both.soa
    assert both.negative_ttl == expected.negative_ttl
    assert zone.serial == 1 and zone.nodes[www][wire.TYPE_A].texts() == ["192.0.2.1"]  # unchanged
