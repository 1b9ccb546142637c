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
