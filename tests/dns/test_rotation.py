"""Rotating answers (issue 17) in the answering core: a rotating RRset's replies step
through its rotations, answer after answer, on every path (fast path, packet cache, full
path, TCP), in the proportions of its turns; nothing else in a reply moves, and a reply
that does not rotate is what it always was."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from dynserver.dns import packet
from dynserver.dns.snapshot import Snapshot
from dynserver.dns.zone import RRset, Zone, rrset_from_texts
from dynserver.health.policy import rotation
from tests.dns.zones import DYN, OTHER
from tests.dnssec.support import dnskeys, signed_zones, validate_sections

ORIGIN = (b"rot", b"example", b"test")
ADDRESSES = ("192.0.2.1", "192.0.2.2", "192.0.2.3")


def rrset(label: bytes, rtype: int, texts: list[str], ttl: int = 60) -> RRset:
    return rrset_from_texts((label, *ORIGIN) if label else ORIGIN, rtype, ttl, texts)


def zone(weights: Sequence[int] | None = (1, 1, 1), *, warm: bool = True) -> Snapshot:
    soa = rrset(b"", 6, ["ns1.rot.example.test. hostmaster.rot.example.test. 1 3600 600 86400 60"])
    ns = rrset(b"", 2, ["ns1.rot.example.test."])
    www = rrset(b"www", 1, list(ADDRESSES))
    if weights is not None:
        www = replace(www, turns=rotation(weights))
    alias = rrset(b"alias", 5, ["www.rot.example.test."])
    glue = rrset(b"ns1", 1, ["192.0.2.53"])
    return Snapshot({ORIGIN: Zone.build(ORIGIN, [soa, ns, www, alias, glue])}, warm=warm)


def query(name: str = "www.rot.example.test.", *, ident: int = 1, **options: object) -> bytes:
    message = dns.message.make_query(name, "A", **options)  # type: ignore[arg-type]
    message.id = ident
    return message.to_wire()


def addresses(reply: bytes | object) -> list[str]:
    assert isinstance(reply, bytes)
    message = dns.message.from_wire(reply)
    (found,) = [r for r in message.answer if r.rdtype == dns.rdatatype.A]
    return [r.to_text() for r in found]


def firsts(snapshot: Snapshot, count: int, tcp: bool = False, **options: object) -> list[str]:
    return [addresses(snapshot.answer(query(ident=i, **options), tcp))[0] for i in range(count)]


EDNS = [{"use_edns": False}, {"use_edns": 0, "payload": 1232}, {"use_edns": 0, "want_dnssec": True}]


@pytest.mark.parametrize("options", EDNS, ids=["no-edns", "edns", "do"])
@pytest.mark.parametrize("warm", [True, False], ids=["warm", "memoised"])
def test_successive_answers_rotate_in_cyclic_order(options: dict[str, object], warm: bool) -> None:
    snapshot = zone(warm=warm)
    replies = [addresses(snapshot.answer(query(ident=i, **options), False)) for i in range(6)]
    rotations = [list(ADDRESSES[i:] + ADDRESSES[:i]) for i in range(3)]
    assert replies == rotations + rotations, "one step per answer, from the packet cache too"
    cache, _ = snapshot.packet_cache()
    assert query(**options)[packet.KEY_START :] in cache


def test_tcp_rotates_as_well() -> None:
    assert firsts(zone(), 6, tcp=True) == [*ADDRESSES, *ADDRESSES]


@pytest.mark.parametrize(("weights", "per_cycle"), [([3, 1, 1], 5), ([1, 2, 5], 8), ([10, 1, 1], 12)])
def test_first_places_follow_the_weights(weights: list[int], per_cycle: int) -> None:
    snapshot = zone(weights)
    cycles = 40
    counts = Counter(firsts(snapshot, per_cycle * cycles))
    assert [counts[a] for a in ADDRESSES] == [w * cycles for w in weights]


def test_client_case_keeps_rotating_through_the_shared_template() -> None:
    """Resolvers randomise the case of names (0x20): each spelling is its own packet-cache
    entry, but every entry starts where the record's rotation stands, so answers spread."""
    snapshot = zone()
    spellings = ["www.rot.example.test.", "WWW.rot.example.test.", "wWw.ROT.example.test."]
    seen = [addresses(snapshot.answer(query(name, ident=i), False))[0] for i, name in enumerate(spellings)]
    assert seen == list(ADDRESSES)


def test_only_the_rotating_records_move() -> None:
    """A CNAME in front stays first; the additional section and the rest stay put."""
    snapshot = zone()
    orders = set()
    for i in range(3):
        reply = snapshot.answer(query("alias.rot.example.test.", ident=i), False)
        assert isinstance(reply, bytes)
        message = dns.message.from_wire(reply)
        assert message.answer[0].rdtype == dns.rdatatype.CNAME
        orders.add(tuple(r.to_text() for r in message.answer[1]))
    assert len(orders) == 3


def test_a_fixed_rrset_answers_the_same_bytes_every_time() -> None:
    """No turns: the reply is byte for byte that of a snapshot before rotation existed (one
    template body, bytes in the packet cache), whatever the EDNS mode."""
    fixed, rotating = zone(None), zone()
    for options in EDNS:
        data = query(**options)
        replies = {fixed.answer(data, False) for _ in range(4)}
        assert len(replies) == 1
        assert replies == {rotating.answer(data, False)}, "the first rotation is the fixed order"
        cache, _ = fixed.packet_cache()
        assert all(isinstance(tail, bytes) for tail in cache[data[packet.KEY_START :]][:2])


def test_serve_follows_a_rotating_entry_as_the_snapshot_does() -> None:
    one, other = zone([3, 1, 1]), zone([3, 1, 1])
    data = query()
    assert one.answer(data, False) == other.answer(data, False)  # fills both caches
    cache, hits = one.packet_cache()
    for i in range(10):
        repeat = query(ident=i)
        assert packet.serve(cache, hits, repeat) == other.answer(repeat, False)


def test_rotating_entry_starts_at_the_given_turn() -> None:
    heads = (b"H0", b"H1")
    entry = packet.rotating_entry(heads, b"Q", (b"x", b"y"), (0, 1, 0), 1, 7)
    assert entry[packet.STAT] == 7
    assert [packet.tail(entry, 1) for _ in range(4)] == [b"H1Qy", b"H1Qx", b"H1Qx", b"H1Qy"]
    assert [packet.tail(entry, 0) for _ in range(3)] == [b"H0Qy", b"H0Qx", b"H0Qx"]


def test_signed_answers_rotate_with_their_rrsig_last(tmp_path: Path) -> None:
    """DO=1 from a signed zone: the A records rotate, the RRSIG (over the set, whatever
    its order) stays after them and validates for every rotation."""
    pytest.importorskip("cryptography")

    zone_file = DYN.replace(
        "www           IN A    192.0.2.10\n", "".join(f"www IN A {a}\n" for a in ADDRESSES)
    )
    zones, _ = signed_zones(tmp_path, {"dyn.example.test": zone_file, "other.test": OTHER})
    origin = (b"dyn", b"example", b"test")
    www = (b"www", *origin)
    node = dict(zones[origin].nodes[www])
    node[dns.rdatatype.A] = replace(node[dns.rdatatype.A], turns=rotation([1, 1, 1]))
    zones[origin] = zones[origin].with_nodes({www: node})
    snapshot = Snapshot(zones)
    keys = dnskeys(snapshot)
    seen = []
    for i in range(3):
        message = dns.message.make_query("www.dyn.example.test.", "A", want_dnssec=True, payload=1232)
        message.id = i
        reply = dns.message.from_wire(snapshot.answer(message.to_wire(), False))  # type: ignore[arg-type]
        assert [r.rdtype for r in reply.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]
        validate_sections(reply, keys)
        seen.append(reply.answer[0][0].to_text())
    assert seen == list(ADDRESSES)
