"""The journal: what changed between serials, so a secondary that is behind gets only
the difference (IXFR, RFC 1995) instead of the whole zone.

Pure: a change is computed from the zone before and after it (for the names that
changed, so the cost follows the change, not the zone), kept in a bounded list, and
encoded to bytes for SQLite so a restart does not force every secondary into a full
transfer. Records are whole wire records (``xfr.records``): a changed TTL is the old
record deleted and the new one added, which every secondary applies the same way.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dynserver.dns import wire
from dynserver.dns.zone import TYPE_NSEC3, TYPE_RRSIG, RRset, Zone
from dynserver.types import Name
from dynserver.xfr.records import rrset_wire, soa_wire

_COUNT = struct.Struct("!I")
_LENGTH = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Delta:
    """One serial change: IXFR sends old SOA, deleted records, new SOA, added records."""

    serial_from: int
    serial_to: int
    old_soa: bytes
    new_soa: bytes
    deleted: tuple[bytes, ...]
    added: tuple[bytes, ...]

    def records(self) -> Iterator[bytes]:
        """The records of this change as an IXFR response carries them."""
        yield self.old_soa
        yield from self.deleted
        yield self.new_soa
        yield from self.added

    @property
    def size(self) -> int:
        """How many records this change adds to a transfer (both SOAs included)."""
        return 2 + len(self.deleted) + len(self.added)


def diff(old: Zone, new: Zone, names: Iterable[Name]) -> Delta:
    """What changed at these names from ``old`` to ``new`` (SOA aside): records that only
    ``old`` has are deleted, records that only ``new`` has are added. A signed zone's
    RRSIGs and NSEC3 records count as the records of their owner names."""
    deleted: list[bytes] = []
    added: list[bytes] = []
    for name in dict.fromkeys(names):
        before = _rrsets_at(old, name)
        after = _rrsets_at(new, name)
        for key in sorted(before.keys() | after.keys()):
            if key == (wire.TYPE_SOA, 0):
                continue
            was = rrset_wire(before[key]) if key in before else []
            now = rrset_wire(after[key]) if key in after else []
            kept = set(was) & set(now)
            deleted += [record for record in was if record not in kept]
            added += [record for record in now if record not in kept]
    return Delta(
        serial_from=old.serial,
        serial_to=new.serial,
        old_soa=soa_wire(old),
        new_soa=soa_wire(new),
        deleted=tuple(deleted),
        added=tuple(added),
    )


def _rrsets_at(zone: Zone, name: Name) -> dict[tuple[int, int], RRset]:
    """A name's RRsets by (type, type covered): its data, and when the zone is signed the
    RRSIGs of that data, or the NSEC3 record and its RRSIG if ``name`` is an NSEC3 owner."""
    found = {(rtype, 0): rrset for rtype, rrset in zone.nodes.get(name, {}).items()}
    signed = zone.signed
    if signed is not None:
        for covered, (_, sig) in signed.sigs.get(name, {}).items():
            found[(TYPE_RRSIG, covered)] = sig
        pair = signed.nsec3.get(name)
        if pair is not None:
            found[(TYPE_NSEC3, 0)] = pair[0]
            found[(TYPE_RRSIG, TYPE_NSEC3)] = pair[1]
    return found


class Journal:
    """The last ``limit`` changes of one zone, each numbered (``seq``) for storage.

    The changes always form one chain (each starts where the previous ended): a change
    that does not continue it (the zone was rebuilt differently after a restart) starts
    a new chain, because the old one can no longer lead to the current serial."""

    def __init__(self, limit: int, entries: Iterable[tuple[int, Delta]] = ()) -> None:
        self.limit = limit
        self._entries: deque[tuple[int, Delta]] = deque()
        self._next_seq = 1
        for seq, delta in entries:
            self._append(seq, delta)

    def add(self, delta: Delta) -> int:
        """Append a change; returns its seq. Older changes beyond the limit are dropped."""
        seq = self._next_seq
        self._append(seq, delta)
        return seq

    def _append(self, seq: int, delta: Delta) -> None:
        if self._entries and self._entries[-1][1].serial_to != delta.serial_from:
            self._entries.clear()
        self._entries.append((seq, delta))
        self._next_seq = seq + 1
        while len(self._entries) > self.limit:
            self._entries.popleft()

    @property
    def first_seq(self) -> int:
        """The seq of the oldest change kept (the next seq if there is none)."""
        return self._entries[0][0] if self._entries else self._next_seq

    @property
    def last_serial(self) -> int | None:
        return self._entries[-1][1].serial_to if self._entries else None

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[tuple[int, Delta]]:
        return list(self._entries)

    def since(self, serial: int, current: int) -> tuple[Delta, ...] | None:
        """The changes from ``serial`` to ``current``, or None if the journal does not
        reach back that far (or does not end at ``current``)."""
        if self.last_serial != current:
            return None
        if serial == current:
            return ()
        for index, (_, delta) in enumerate(self._entries):
            if delta.serial_from == serial:
                return tuple(d for _, d in list(self._entries)[index:])
        return None

    def clear(self) -> None:
        self._entries.clear()


def encode(delta: Delta) -> bytes:
    """Bytes for storage: both SOAs, then the deleted and the added records, each counted."""
    parts = [_record(delta.old_soa), _record(delta.new_soa)]
    for records in (delta.deleted, delta.added):
        parts.append(_COUNT.pack(len(records)))
        parts.extend(_record(record) for record in records)
    return b"".join(parts)


def decode(serial_from: int, serial_to: int, data: bytes) -> Delta:
    """The inverse of ``encode``; ValueError if the bytes are not one of its outputs."""
    offset = 0

    def record() -> bytes:
        nonlocal offset
        (length,) = _LENGTH.unpack_from(data, offset)
        end = offset + 2 + length
        if end > len(data):
            raise ValueError("journal record runs past the end")
        value = data[offset + 2 : end]
        offset = end
        return value

    def records() -> tuple[bytes, ...]:
        nonlocal offset
        (count,) = _COUNT.unpack_from(data, offset)
        offset += 4
        return tuple(record() for _ in range(count))

    try:
        old_soa, new_soa = record(), record()
        deleted, added = records(), records()
    except struct.error as error:
        raise ValueError(f"truncated journal entry: {error}") from None
    if offset != len(data):
        raise ValueError("trailing bytes after a journal entry")
    return Delta(serial_from, serial_to, old_soa, new_soa, deleted, added)


def _record(record: bytes) -> bytes:
    return _LENGTH.pack(len(record)) + record
