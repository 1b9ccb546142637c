"""Snapshot.derive: replacing a zone keeps the templates of the others, and every reply
is byte-identical to that of a snapshot built from scratch."""

from __future__ import annotations

import itertools

import dns.message
import dns.rdatatype

from dynserver.config import parse_name
from dynserver.dns import wire
from dynserver.dns.snapshot import Snapshot
from dynserver.dns.zone import RRset, Zone, rrset_from_texts

A, B = parse_name("a.test"), parse_name("b.test")


def zone(origin: tuple[bytes, ...], records: list[tuple[str, int, list[str]]], serial: int = 1) -> Zone:
    text = wire.name_to_text(origin)
    rrsets: list[RRset] = [
        rrset_from_texts(origin, wire.TYPE_SOA, 300, [f"ns1.{text} h.{text} {serial} 3600 600 86400 60"]),
        rrset_from_texts(origin, wire.TYPE_NS, 300, [f"ns1.{text}"]),
    ]
    for name, rtype, values in records:
        owner = (*parse_name(name), *origin) if name != "@" else origin
        rrsets.append(rrset_from_texts(owner, rtype, 60, values))
    return Zone.build(origin, rrsets)


ZONE_A = zone(
    A,
    [
        ("www", wire.TYPE_A, ["192.0.2.1"]),
        ("to-b", wire.TYPE_CNAME, ["app.b.test."]),
        ("mx", wire.TYPE_MX, ["10 mail.b.test."]),
    ],
)
ZONE_B = zone(B, [("app", wire.TYPE_A, ["198.51.100.1"]), ("mail", wire.TYPE_A, ["198.51.100.25"])])
NAMES = [
    "www.a.test",
    "to-b.a.test",
    "mx.a.test",
    "nope.a.test",
    "a.test",
    "app.b.test",
    "mail.b.test",
    "nope.b.test",
    "b.test",
    "elsewhere.example",
]
TYPES = [dns.rdatatype.A, dns.rdatatype.MX, dns.rdatatype.SOA, dns.rdatatype.AAAA]


def replies(snapshot: Snapshot) -> list[bytes | None]:
    out = []
    for name, rtype, edns in itertools.product(NAMES, TYPES, [None, 0]):
        query = dns.message.make_query(name, rtype, use_edns=edns)
        query.id = 4242
        out.append(snapshot.answer(query.to_wire(), False))
    return out


def test_derived_snapshot_answers_like_a_fresh_one() -> None:
    old = Snapshot({A: ZONE_A, B: ZONE_B})
    replies(old)  # fill the memo, including cross-zone templates
    app = parse_name("app.b.test")
    new = parse_name("new.b.test")  # a name that did not exist: its NXDOMAIN must go
    new_b = ZONE_B.with_nodes(
        {
            app: {wire.TYPE_A: rrset_from_texts(app, wire.TYPE_A, 60, ["198.51.100.2"])},
            new: {wire.TYPE_A: rrset_from_texts(new, wire.TYPE_A, 60, ["198.51.100.3"])},
        }
    )
    new_b = new_b.with_serial(2)
    derived = old.derive({A: ZONE_A, B: new_b}, {B: [app, new]})
    fresh = Snapshot({A: ZONE_A, B: new_b})
    assert replies(derived) == replies(fresh)
    # the CNAME into b.test and the MX with b.test's address are cross-zone: they moved too
    cname = dns.message.from_wire(derived.answer(dns.message.make_query("to-b.a.test", "A").to_wire(), False))
    assert [r.to_text() for rrset in cname.answer for r in rrset][-1] == "198.51.100.2"


def test_unchanged_zone_templates_are_kept() -> None:
    old = Snapshot({A: ZONE_A, B: ZONE_B})
    derived = old.derive({A: ZONE_A, B: ZONE_B.with_serial(7)}, {B: []})
    key = wire.name_to_wire(parse_name("www.a.test")) + b"\x00\x01\x00\x01"
    assert derived._tables[0][key] is old._tables[0][key]  # shared, not rebuilt
    soa = wire.name_to_wire(B) + b"\x00\x06\x00\x01"
    assert soa in old._tables[0] and soa not in derived._tables[0]  # the serial changed
    # in the changed zone, a positive answer of an unchanged name is kept too
    mail = wire.name_to_wire(parse_name("mail.b.test")) + b"\x00\x01\x00\x01"
    assert derived._tables[0][mail] is old._tables[0][mail]


def test_changed_names_are_rendered_when_first_asked() -> None:
    """derive() renders nothing (the new answer is live at once); the first question for
    a changed name renders its reply, keeps it, and the next identical one reuses it."""
    old = Snapshot({A: ZONE_A, B: ZONE_B})
    app = parse_name("app.b.test")
    key = wire.name_to_wire(app) + b"\x00\x01\x00\x01"
    b2 = ZONE_B.with_nodes({app: {wire.TYPE_A: rrset_from_texts(app, wire.TYPE_A, 60, ["198.51.100.2"])}})
    derived = old.derive({A: ZONE_A, B: b2.with_serial(2)}, {B: [app]})
    assert key in old._tables[0] and key not in derived._tables[0]
    query = dns.message.make_query("app.b.test", "A", use_edns=False).to_wire()
    first = derived.answer(query, True)
    template = derived._tables[0][key]
    assert derived.answer(query, True) == first and derived._tables[0][key] is template
    assert [r.to_text() for rrset in dns.message.from_wire(first).answer for r in rrset] == ["198.51.100.2"]
