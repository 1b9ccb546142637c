"""One immutable answer table, and the hot path that serves from it.

A Snapshot holds every zone as it is at one instant. Replies are kept as wire-format
templates keyed by the lower-cased question, so the common query costs one dictionary
read and a few byte concatenations: the client's ID, RD bit and question bytes
(0x20 case randomisation survives) are spliced into the precomputed reply. CD is not
copied: RFC 4035 3.1.6 says an authoritative server SHOULD clear it (NSD and Knot do).
Anything unusual (truncation, errors, CHAOS, odd EDNS) takes the full path in ``_answer_slow``.

Over UDP, a query that repeats the bytes of an earlier one after its ID and flags (same
question, same case, same EDNS size and DO bit: what a resolver sends again and again)
is answered from a packet cache of this snapshot: one slice, one dictionary read and
one concatenation. Only replies the fast path produced are cached, so the cache can
never answer differently from it; its layout and rules are in dynserver/dns/packet.py.

A rotating RRset (a dynamic record with several values, dynserver/health/policy.py) has
one body per record that can come first; its template steps through them, answer after
answer, and so does every packet-cache entry made from it (dynserver/dns/packet.py).
A template that does not rotate is exactly what it was without rotation.

A state change never edits a snapshot: it builds a new one and swaps one reference.
The template memo and the packet cache filled while answering are caches of pure
results of this snapshot; a new snapshot starts with an empty packet cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import cycle

from dnslib import RR, TXT, DNSLabel

from dynserver.dns import packet, wire
from dynserver.dns.answer import REFUSED, Resolution, find_zone, render, resolve, rotations
from dynserver.dns.names import name_from_dnslib
from dynserver.dns.packet import FLAGS, ID_END, KEY_START, NOT_QUERY, RD_BIT, STAT, PacketCache
from dynserver.dns.stats import QueryStats, slot
from dynserver.dns.zone import Zone
from dynserver.types import Name, Stream

log = logging.getLogger(__name__)

# Templates built on demand per snapshot at most (a flood of random names must not
# grow memory without bound; past this, misses are answered by the full path).
MEMO_LIMIT = 50_000
# Packets remembered per snapshot; a flood of distinct queries (random case, sizes)
# empties the cache when it is full, so memory stays bounded and hot entries return.
PACKET_LIMIT = 20_000
# Zones up to this many names get their common replies built with the snapshot.
WARM_LIMIT = 5_000
_WARM_TYPES = (wire.TYPE_A, wire.TYPE_AAAA)
_TRANSFER_TYPES = (wire.TYPE_AXFR, wire.TYPE_IXFR)
_KNOWN_OPCODES = (wire.OPCODE_QUERY, wire.OPCODE_NOTIFY, wire.OPCODE_UPDATE)
_EDNS_MODES = (None, wire.Edns(wire.OUR_UDP_SIZE, 0, False), wire.Edns(wire.OUR_UDP_SIZE, 0, True))
# Who answers what a snapshot cannot answer from its tables alone: zone transfers and
# TSIG-signed queries need keys, access rules and the journal (dynserver/xfr). It gets
# the query, its bytes, TCP or not, the client's address, and the snapshot asked.
Delegate = Callable[[wire.Query, bytes, bool, "tuple[str, int] | None", "Snapshot"], "bytes | Stream | None"]
_CHAOS_NAMES: dict[Name, str] = {
    (b"version", b"bind"): "version",
    (b"version", b"server"): "version",
    (b"hostname", b"bind"): "hostname",
    (b"id", b"server"): "hostname",
}


@dataclass(frozen=True, slots=True)
class Template:
    """A reply minus ID and question: ``heads[rd]`` is flags + counts, RD copied or not;
    ``stat`` is its slot in QueryStats.hits (question type and rcode, over UDP).

    A rotating reply also has ``bodies`` (``bodies[i]``: the rotating RRset's record
    ``i`` first, the others after it in cyclic order; ``body`` is ``bodies[0]``),
    ``order`` (which body each answer of one cycle gets: RRset.turns) and ``turns``, the
    endless count of positions in ``order`` (itertools: one C call a query). The template
    is shared by every query for its question, so they all rotate together."""

    heads: tuple[bytes, bytes]
    body: bytes
    stat: int = 0
    bodies: tuple[bytes, ...] = ()
    order: tuple[int, ...] = ()
    turns: Iterator[int] | None = None

    def take(self) -> bytes:
        """The body of the next answer (``body`` unless the reply rotates)."""
        if self.turns is None:
            return self.body
        return self.bodies[self.order[next(self.turns)]]

    @classmethod
    def from_reply(cls, reply: bytes, question_length: int) -> Template:
        qtype = int.from_bytes(reply[8 + question_length : 10 + question_length], "big")
        stat = slot(qtype, reply[3] & 0xF)
        return cls(heads=packet.heads(reply[2:12]), body=reply[12 + question_length :], stat=stat)


class Snapshot:
    """All zones at one instant, with their reply templates. Never mutated after build."""

    def __init__(
        self,
        zones: Mapping[Name, Zone],
        *,
        chaos: Mapping[str, str] | None = None,
        warm: bool = True,
        transfers: Delegate | None = None,
        stats: QueryStats | None = None,
    ) -> None:
        self.zones = zones
        # Reply counts for /metrics, shared with every snapshot derived from this one.
        self.stats = stats or QueryStats()
        self._hits = self.stats.hits
        self.chaos = dict(chaos or {})
        self.transfers = transfers
        # One table per EDNS mode: no OPT, OPT, OPT with DO.
        self._tables: tuple[dict[bytes, Template], ...] = ({}, {}, {})
        self._memo_room = MEMO_LIMIT
        self._packets: PacketCache = {}  # see dynserver/dns/packet.py
        # Which templates a change invalidates: keys by every name their reply mentions
        # (the question and each record's owner: negative answers mention the apex, whose
        # SOA serial changes every time), and keys whose reply holds another zone's data.
        self._refs: dict[Name, set[bytes]] = {}
        self._cross: set[bytes] = set()
        # The other way round: the names each key is listed under in _refs, so a change
        # costs work in proportion to the replies it drops, not to the zone's size.
        self._names_of: dict[bytes, set[Name]] = {}
        if warm:
            self._warm(self.zones.values())

    def derive(self, zones: Mapping[Name, Zone], changed: Mapping[Name, Iterable[Name]]) -> Snapshot:
        """A new snapshot with zones replaced; ``changed`` maps each replaced zone to the
        names whose data changed (its serial changes too).

        Every template that mentions none of those names, nor the apex, carries over, so
        a failover costs work in proportion to what it changes, not to the zone's size.
        The dropped ones are rendered (and kept) when first asked, not here: the new
        answer goes live without waiting ~3 ms for every type and EDNS mode of every
        changed name, most of which nobody asks."""
        new = Snapshot(zones, chaos=self.chaos, warm=False, transfers=self.transfers, stats=self.stats)
        names = {name for origin, nodes in changed.items() for name in (origin, *nodes)}
        drop = set(self._cross)
        for name in names:
            drop |= self._refs.get(name, set())
        tables = []
        for table in self._tables:
            copy = table.copy()
            for key in drop:
                copy.pop(key, None)
            tables.append(copy)
        new._tables = tuple(tables)
        # The index without the dropped keys. Shallow copies (C speed); a set that loses
        # keys is replaced, never changed, so this snapshot's index stays as it was.
        refs = self._refs.copy()
        names_of = self._names_of.copy()
        for name in names:
            refs.pop(name, None)
        losing: dict[Name, set[bytes]] = {}
        for key in drop:
            for name in names_of.pop(key, ()):
                if name not in names:
                    losing.setdefault(name, set()).add(key)
        for name, keys in losing.items():
            kept = refs[name] - keys if name in refs else None
            if kept:
                refs[name] = kept
            else:
                refs.pop(name, None)
        new._refs = refs
        new._names_of = names_of
        new._memo_room = max(0, MEMO_LIMIT - len(new._tables[0]))
        return new

    # -- the hot path ---------------------------------------------------------------

    def packet_cache(self) -> tuple[PacketCache, list[int]]:
        """This snapshot's UDP packet cache and the reply counters (dynserver/dns/packet.py)."""
        return self._packets, self._hits

    def answer(self, data: bytes, tcp: bool, peer: tuple[str, int] | None = None) -> bytes | Stream | None:
        """Reply to one wire message, or None to drop it. Never raises on bad input.

        ``peer`` (the client's address) matters only to transfers; a Stream (several
        messages) is only ever returned over TCP."""
        if not tcp:
            # packet.serve, inlined (a call per query would cost more than the lookup).
            hit = self._packets.get(data[KEY_START:])
            if hit is not None and not data[FLAGS] & NOT_QUERY:
                self._hits[hit[STAT]] += 1
                tail = hit[data[FLAGS] & RD_BIT]
                if tail.__class__ is not bytes:
                    tail = next(tail)  # type: ignore[arg-type]  # a rotating reply
                return data[:ID_END] + tail  # bytes now
        # Plain query: QR=0, opcode QUERY, one question, no answer/authority records.
        if len(data) >= 17 and not data[FLAGS] & NOT_QUERY and data[4:10] == b"\x00\x01\x00\x00\x00\x00":
            end = data.find(0, 12)  # the root label (see docs/architecture.md: why safe)
            qend = end + 5
            arcount = data[10:12]
            if end < 0:
                pass
            elif arcount == b"\x00\x00":
                if len(data) == qend:
                    return self._splice(data, end, qend, self._tables[0], 512, tcp, peer)
            elif arcount == b"\x00\x01" and data[qend : qend + 3] == b"\x00\x00\x29":
                # An OPT owned by the root, version 0, and nothing after it.
                rdlen = (data[qend + 9] << 8) | data[qend + 10] if len(data) >= qend + 11 else -1
                if rdlen == 0 and len(data) == qend + 11 and not data[qend + 6]:
                    size = (data[qend + 3] << 8) | data[qend + 4]
                    limit = 512 if size < 512 else (size if size < 1232 else 1232)
                    table = self._tables[2 if data[qend + 7] & 0x80 else 1]
                    return self._splice(data, end, qend, table, limit, tcp, peer)
        return self._answer_slow(data, tcp, peer)

    def _splice(
        self,
        data: bytes,
        end: int,
        qend: int,
        table: dict[bytes, Template],
        limit: int,
        tcp: bool,
        peer: tuple[str, int] | None,
    ) -> bytes | Stream | None:
        template = table.get(data[12 : end + 1].lower() + data[end + 1 : qend])
        if template is None or (not tcp and qend + len(template.body) > limit):
            return self._answer_slow(data, tcp, peer)
        head = template.heads[data[FLAGS] & RD_BIT]
        self._hits[template.stat + tcp] += 1
        if template.turns is not None:
            return self._splice_turn(data, qend, template, head, tcp)
        if not tcp:
            # packet.entry, inlined: under 0x20 case randomisation most queries fill an
            # entry, and a call would add about a tenth of a microsecond to each.
            question = data[12:qend]
            packets = self._packets
            if len(packets) >= PACKET_LIMIT:
                packets.clear()
            packets[data[KEY_START:]] = (
                template.heads[0] + question + template.body,
                template.heads[1] + question + template.body,
                template.stat,
            )
        return data[:ID_END] + head + data[12:qend] + template.body

    def _splice_turn(self, data: bytes, qend: int, template: Template, head: bytes, tcp: bool) -> bytes:
        """_splice for a rotating template: the next body, and a packet-cache entry that
        goes on from the turn after it."""
        position = next(template.turns)  # type: ignore[arg-type]  # rotating: not None
        question = data[12:qend]
        if not tcp:
            packets = self._packets
            if len(packets) >= PACKET_LIMIT:
                packets.clear()
            packets[data[KEY_START:]] = packet.rotating_entry(
                template.heads, question, template.bodies, template.order, position + 1, template.stat
            )
        return data[:ID_END] + head + question + template.bodies[template.order[position]]

    # -- the full path --------------------------------------------------------------

    def _answer_slow(self, data: bytes, tcp: bool, peer: tuple[str, int] | None) -> bytes | Stream | None:
        reply = self._answer_full(data, tcp, peer)
        self.stats.count(data, reply, tcp)
        return reply

    def _answer_full(self, data: bytes, tcp: bool, peer: tuple[str, int] | None) -> bytes | Stream | None:
        try:
            query = wire.parse_query(data)
        except wire.WireError as error:
            if not error.header_readable:
                return None
            if (data[FLAGS] >> 3) & 0xF not in _KNOWN_OPCODES:
                # RFC 8906 8.1.4 (as NSD and Knot): an opcode we do not implement is
                # NOTIMP whatever follows the header, even no question at all.
                return wire.error_reply(data, wire.NOTIMP)
            return wire.error_reply(data, wire.FORMERR)
        if query.edns_error == wire.FORMERR:
            return wire.error_reply(data, wire.FORMERR)  # RFC 6891 7: no OPT in reply
        try:
            return self._answer_query(query, tcp, data, peer)
        except Exception:  # pragma: no cover - a bug: answer SERVFAIL, keep serving
            log.exception("internal error answering query %r", data[:512])
            return wire.error_reply(data, wire.SERVFAIL)

    def _answer_query(
        self, query: wire.Query, tcp: bool, data: bytes, peer: tuple[str, int] | None
    ) -> bytes | Stream | None:
        if query.edns_error == wire.BADVERS:
            return self._reply(query, Resolution(rcode=wire.BADVERS, aa=False), tcp)
        if query.opcode != wire.OPCODE_QUERY:
            return self._reply(query, Resolution(rcode=wire.NOTIMP, aa=False), tcp)
        if self.transfers is not None and (query.has_tsig or query.qtype in _TRANSFER_TYPES):
            return self.transfers(query, data, tcp, peer, self)
        if query.has_tsig:
            # No TSIG keys are configured for queries: RFC 8945 5.2 says NOTAUTH.
            return self._reply(query, Resolution(rcode=wire.NOTAUTH, aa=False), tcp)
        if query.qclass == wire.CLASS_CH:
            return self._reply(query, self._chaos(query), tcp)
        if query.qclass != wire.CLASS_IN:
            return self._reply(query, REFUSED, tcp)
        qtype = query.qtype
        if qtype in _TRANSFER_TYPES:
            return self._reply(query, REFUSED, tcp)  # no transfer service (a bare snapshot)
        if qtype in (wire.TYPE_OPT, wire.TYPE_TKEY, wire.TYPE_TSIG):
            return self._reply(query, Resolution(rcode=wire.FORMERR, aa=False), tcp)
        if qtype in (wire.TYPE_MAILA, wire.TYPE_MAILB):
            return self._reply(query, Resolution(rcode=wire.NOTIMP, aa=False), tcp)
        mode = 0 if query.edns is None else (2 if query.edns.do else 1)
        key = wire.name_to_wire(query.qname) + query.question[-4:]
        template = self._tables[mode].get(key)
        dnssec = mode == 2
        if template is None:
            resolution = resolve(self.zones, query.qname, qtype, dnssec)
            template = _template(
                query.qname, qtype, query.qclass, resolution, query.edns, len(query.question)
            )
            if self._memo_room > 0:
                self._memo_room -= 1
                self._tables[mode][key] = template
                self._remember(key, query.qname, resolution)
        limit = wire.MAX_MESSAGE if tcp else wire.udp_limit(query.edns)
        if 12 + len(query.question) + len(template.body) <= limit:
            return _assemble(query, template)
        resolution = resolve(self.zones, query.qname, qtype, dnssec)
        return self._reply(query, resolution, tcp)

    def _reply(self, query: wire.Query, resolution: Resolution, tcp: bool) -> bytes:
        limit = wire.MAX_MESSAGE if tcp else wire.udp_limit(query.edns)
        reply = render(query.qname, query.qtype, query.qclass, resolution, query.edns, limit)
        return _splice_reply(query, reply)

    def _chaos(self, query: wire.Query) -> Resolution:
        """version.bind and friends: REFUSED unless the operator chose to publish them."""
        what = _CHAOS_NAMES.get(query.qname)
        text = self.chaos.get(what or "")
        if not text or query.qtype not in (wire.TYPE_TXT, wire.TYPE_ANY):
            return REFUSED
        record = RR(
            rname=DNSLabel(list(query.qname)),
            rtype=wire.TYPE_TXT,
            rclass=wire.CLASS_CH,
            ttl=0,
            rdata=TXT(_character_strings(text)),
        )
        return Resolution(rcode=wire.NOERROR, aa=True, answer=(record,))

    # -- building -------------------------------------------------------------------

    def _warm(self, zones: Iterable[Zone]) -> None:
        """Build templates for the names and types most queries ask for."""
        for zone in zones:
            if len(zone.nodes) <= WARM_LIMIT:  # large zones fill their templates on demand
                self._warm_names(list(zone.nodes), zone)

    def _warm_names(self, names: list[Name], zone: Zone) -> None:
        for name in names:
            node = zone.nodes[name]
            for qtype in sorted(set(node) | set(_WARM_TYPES)):
                resolution = resolve(self.zones, name, qtype)
                # DO=1: with signatures and proofs when the zone is signed.
                signed = resolve(self.zones, name, qtype, True) if zone.signed is not None else resolution
                key = wire.name_to_wire(name) + qtype.to_bytes(2, "big") + b"\x00\x01"
                for mode, edns in enumerate(_EDNS_MODES):
                    chosen = signed if mode == 2 else resolution
                    self._tables[mode][key] = _template(name, qtype, wire.CLASS_IN, chosen, edns, len(key))
                self._remember(key, name, resolution)
                if signed is not resolution:
                    self._remember(key, name, signed)

    def _remember(self, key: bytes, qname: Name, resolution: Resolution) -> None:
        zone = find_zone(self.zones, qname)
        if zone is None:
            return  # REFUSED: not ours, and no zone change can make it ours
        origin = zone.origin
        depth = len(origin)
        listed = self._names_of.setdefault(key, set())
        self._refs.setdefault(qname, set()).add(key)
        listed.add(qname)
        sections = (resolution.answer, resolution.authority, *resolution.glue, *resolution.additional)
        for section in sections:
            for record in section:
                owner = name_from_dnslib(record.rname)
                if owner[len(owner) - depth :] != origin:
                    self._cross.add(key)  # a CNAME chain or an address from another zone
                    return
                self._refs.setdefault(owner, set()).add(key)
                listed.add(owner)


def _character_strings(text: str) -> list[bytes]:
    """TXT RDATA for any text: one or more strings of at most 255 octets (RFC 1035 3.3.14).

    A configured text longer than one string is split rather than failing every query.
    """
    data = text.encode()
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


def _template(
    qname: Name, qtype: int, qclass: int, resolution: Resolution, edns: wire.Edns | None, question_length: int
) -> Template:
    """The template of a resolution: one body, or one per rotation of its rotating RRset."""
    reply = render(qname, qtype, qclass, resolution, edns, wire.MAX_MESSAGE)
    template = Template.from_reply(reply, question_length)
    if resolution.rotation is None:
        return template
    bodies = []
    for variant in rotations(resolution, resolution.rotation):
        other = render(qname, qtype, qclass, variant, edns, wire.MAX_MESSAGE)
        if other[:12] != reply[:12] or len(other) != len(reply):  # pragma: no cover - same records
            return template  # a variant that differs in more than order: answer the one order
        bodies.append(other[12 + question_length :])
    order = resolution.rotation.turns
    return replace(template, bodies=tuple(bodies), order=order, turns=cycle(range(len(order))))


def _assemble(query: wire.Query, template: Template) -> bytes:
    flags = query.flags
    head = template.heads[(flags >> 8) & 1]
    return query.id.to_bytes(2, "big") + head + query.question + template.take()


def _splice_reply(query: wire.Query, reply: bytes) -> bytes:
    """Put the client's ID, opcode, RD bit and question bytes into a rendered reply."""
    if len(reply) == 12:
        return reply  # header-only error replies already carry ID, opcode and RD
    flags = int.from_bytes(reply[2:4], "big") | (query.flags & wire.COPIED_FLAGS)
    qlen = len(query.question)
    return (
        query.id.to_bytes(2, "big")
        + flags.to_bytes(2, "big")
        + reply[4:12]
        + query.question
        + reply[12 + qlen :]
    )
