"""The IXFR journal: diffs of the names that changed, a bounded chain of changes, and
its storage format."""

from __future__ import annotations

import pytest

from dynserver.config import parse_name
from dynserver.dns import wire
from dynserver.dns.zone import RRset, Zone, rrset_from_texts
from dynserver.xfr.journal import Delta, Journal, decode, diff, encode
from dynserver.xfr.records import rrset_wire

ORIGIN = parse_name("dyn.example.test")
APP = parse_name("app.dyn.example.test")
WWW = parse_name("www.dyn.example.test")


def zone(serial: int, app: list[str], ttl: int = 30, www: list[str] | None = None) -> Zone:
    rrsets: list[RRset] = [
        rrset_from_texts(
            ORIGIN, wire.TYPE_SOA, 300, [f"ns1.dyn.example.test. h.dyn.example.test. {serial} 1 1 1 1"]
        ),
        rrset_from_texts(ORIGIN, wire.TYPE_NS, 300, ["ns1.dyn.example.test."]),
        rrset_from_texts(WWW, wire.TYPE_A, 300, www or ["192.0.2.10"]),
    ]
    if app:
        rrsets.append(rrset_from_texts(APP, wire.TYPE_A, ttl, app))
    return Zone.build(ORIGIN, rrsets)


def record(name: tuple[bytes, ...], value: str, ttl: int = 30) -> bytes:
    return rrset_wire(rrset_from_texts(name, wire.TYPE_A, ttl, [value]))[0]


@pytest.mark.parametrize(
    ("before", "after", "deleted", "added"),
    [
        (
            zone(1, ["192.0.2.1"]),
            zone(2, ["192.0.2.2"]),
            [record(APP, "192.0.2.1")],
            [record(APP, "192.0.2.2")],
        ),
        (zone(1, ["192.0.2.1", "192.0.2.2"]), zone(2, ["192.0.2.2"]), [record(APP, "192.0.2.1")], []),
        (zone(1, ["192.0.2.1"]), zone(2, ["192.0.2.1", "192.0.2.3"]), [], [record(APP, "192.0.2.3")]),
        (zone(1, ["192.0.2.1"]), zone(2, []), [record(APP, "192.0.2.1")], []),  # fallback "none"
        # A TTL change replaces the record: the same data, deleted and added again.
        (
            zone(1, ["192.0.2.1"]),
            zone(2, ["192.0.2.1"], ttl=1),
            [record(APP, "192.0.2.1")],
            [record(APP, "192.0.2.1", 1)],
        ),
    ],
    ids=["replaced", "removed-one", "added-one", "emptied", "ttl"],
)
def test_diff(before: Zone, after: Zone, deleted: list[bytes], added: list[bytes]) -> None:
    delta = diff(before, after, [APP])
    assert (delta.serial_from, delta.serial_to) == (1, 2)
    assert list(delta.deleted) == deleted and list(delta.added) == added
    assert delta.old_soa != delta.new_soa


def test_diff_looks_only_at_the_names_given() -> None:
    """The cost follows the change: names not listed are not compared."""
    delta = diff(zone(1, ["192.0.2.1"]), zone(2, ["192.0.2.1"], www=["192.0.2.99"]), [APP])
    assert delta.deleted == delta.added == ()


def change(serial: int) -> Delta:
    return Delta(serial, serial + 1, b"old%d" % serial, b"new%d" % serial, (b"d",), (b"a",))


def test_journal_is_a_bounded_chain() -> None:
    journal = Journal(3)
    assert [journal.add(change(s)) for s in range(10, 15)] == [1, 2, 3, 4, 5]
    assert len(journal) == 3 and journal.first_seq == 3 and journal.last_serial == 15
    assert [d.serial_from for d in journal.since(12, 15) or ()] == [12, 13, 14]
    assert journal.since(11, 15) is None  # dropped: too old
    assert journal.since(12, 16) is None  # does not lead to the current serial
    assert journal.since(15, 15) == ()


def test_a_change_that_does_not_continue_the_chain_starts_a_new_one() -> None:
    journal = Journal(10)
    journal.add(change(1))
    journal.add(change(5))
    assert len(journal) == 1 and journal.since(1, 6) is None and journal.since(5, 6) == (change(5),)


def test_a_journal_of_zero_keeps_nothing() -> None:
    journal = Journal(0)
    journal.add(change(1))
    assert len(journal) == 0 and journal.since(1, 2) is None


def test_restored_entries_keep_their_numbers() -> None:
    journal = Journal(5, [(7, change(1)), (8, change(2))])
    assert journal.first_seq == 7 and journal.add(change(3)) == 9


def test_encode_decode_round_trip() -> None:
    delta = diff(zone(1, ["192.0.2.1"]), zone(2, ["192.0.2.2", "192.0.2.3"]), [APP])
    assert decode(1, 2, encode(delta)) == delta


@pytest.mark.parametrize("data", [b"", b"\x00\x05abc", b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00x"])
def test_decode_rejects_what_encode_never_wrote(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(1, 2, data)
