"""Zone transfers (AXFR, RFC 5936; IXFR, RFC 1995) and TSIG-signed queries.

The snapshot hands over the queries it cannot answer from its tables alone: AXFR, IXFR
and anything signed. The decisions are pure: who may transfer (``Access``), what a
transfer sends (the zone of the snapshot that received the query, read once, so the
copy is consistent with one serial; or the journal's changes since the client's serial),
and how it is cut into messages and signed. The messages themselves are produced lazily,
one at a time, as the transport sends them.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dns.rdatatype

from dynserver.dns import wire
from dynserver.dns.names import name_from_dnspython
from dynserver.dns.serial import serial_gt
from dynserver.dns.snapshot import Snapshot
from dynserver.dns.zone import Zone
from dynserver.model import TransferConfig, TsigKey, ZoneConfig
from dynserver.types import Name, Stream
from dynserver.xfr import tsig
from dynserver.xfr.journal import Delta, Journal
from dynserver.xfr.records import record_count, soa_wire, zone_body

log = logging.getLogger(__name__)

# Size of each transfer message. Up to 64 KiB is allowed; smaller messages reach the
# secondary sooner and let the event loop answer queries between two of them.
MESSAGE_SIZE = 16_384
_HEADER = struct.Struct("!HHHHHH")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Peer = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Access:
    """Who may transfer one zone.

    A request signed with one of ``keys`` may, from any address: the key is the
    credential. Otherwise the source address must be in ``networks`` (``allow``, plus
    the secondaries listed without a key)."""

    networks: tuple[Network, ...] = ()
    keys: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: TransferConfig) -> Access:
        networks = list(config.allow)
        networks += [ipaddress.ip_network(s.host) for s in config.secondaries if s.key is None]
        keys = set(config.allow_keys) | {s.key for s in config.secondaries if s.key is not None}
        return cls(tuple(networks), frozenset(keys))

    def permits(self, address: str | None, key: str | None) -> bool:
        if key is not None and key in self.keys:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d
        return any(ip in network for network in self.networks)


class Transfers:
    """Answers transfers and signed queries; owns each zone's journal and access rules."""

    def __init__(self, zones: Iterable[ZoneConfig], keys: Iterable[TsigKey]) -> None:
        self.access: dict[Name, Access] = {}
        self.journals: dict[Name, Journal] = {}
        for zone in zones:
            if zone.transfer is not None:
                self.access[zone.name] = Access.from_config(zone.transfer)
                self.journals[zone.name] = Journal(zone.transfer.journal)
        self.keyring = tsig.keyring(keys)
        # Transfers served, by kind (AXFR, IXFR, IXFR-AXFR, IXFR-SOA) and refused.
        self.served: Counter[str] = Counter()

    def record(self, origin: Name, delta: Delta) -> int | None:
        """Journal a change of a zone that has secondaries; returns its seq (or None)."""
        journal = self.journals.get(origin)
        return None if journal is None else journal.add(delta)

    # -- answering -----------------------------------------------------------------

    def answer(
        self,
        query: wire.Query,
        data: bytes,
        tcp: bool,
        peer: Peer | None,
        snapshot: Snapshot,
        now: int,
    ) -> bytes | Stream | None:
        """The reply to a transfer or a signed query (``snapshot`` is the one asked)."""
        request = tsig.read(data, self.keyring, now)
        if not isinstance(request, tsig.Request):
            log.info("event=tsig_refused peer=%s qtype=%d", _address(peer), query.qtype)
            return request
        signer = request.signer(now)
        if query.qtype not in (wire.TYPE_AXFR, wire.TYPE_IXFR):
            return _signed_answer(query, data, tcp, peer, snapshot, signer)
        kind = "AXFR" if query.qtype == wire.TYPE_AXFR else "IXFR"
        zone = snapshot.zones.get(query.qname) if query.qclass == wire.CLASS_IN else None
        if zone is None:
            return _error(query, wire.NOTAUTH, signer)  # not a zone we are authoritative for
        access = self.access.get(zone.origin)
        if access is None or not access.permits(_address(peer), request.key_name):
            self.served["refused"] += 1
            log.warning(
                "event=transfer_refused zone=%s type=%s peer=%s key=%s",
                wire.name_to_text(zone.origin),
                kind,
                _address(peer),
                request.key_name or "-",
            )
            return _error(query, wire.REFUSED, signer)
        if kind == "AXFR":
            if not tcp:
                return _error(query, wire.FORMERR, signer)  # RFC 5936 4.2: AXFR is TCP only
            return self._stream(query, zone, "AXFR", _full(zone), signer, peer, request, None)
        client = _client_serial(request, zone.origin)
        if client is None:
            return _error(query, wire.FORMERR, signer)  # RFC 1995 3: the client's SOA is required
        if not serial_gt(zone.serial, client):
            return self._soa_only(query, zone, signer, peer, request, client)
        journal = self.journals.get(zone.origin)
        deltas = journal.since(client, zone.serial) if journal is not None else None
        if deltas is not None and sum(d.size for d in deltas) <= record_count(zone):
            kind, records = "IXFR", _incremental(zone, deltas)
        else:
            kind, records = "IXFR-AXFR", _full(zone)  # the journal does not reach back: all of it
        if tcp:
            return self._stream(query, zone, kind, records, signer, peer, request, client)
        # RFC 1995 2: over UDP, the whole reply if it fits in one message; otherwise just
        # the SOA, and the client comes back over TCP.
        listed = list(records)
        limit = wire.udp_limit(query.edns) - (signer.overhead if signer else 0)
        opt = _opt(query)
        if 12 + len(query.question) + len(opt) + sum(map(len, listed)) > limit:
            return self._soa_only(query, zone, signer, peer, request, client)
        self._log(kind, zone, peer, request, client, len(listed))
        return next(_messages(query, listed, signer, 65535))

    def _stream(
        self,
        query: wire.Query,
        zone: Zone,
        kind: str,
        records: Iterable[bytes],
        signer: tsig.Signer | None,
        peer: Peer | None,
        request: tsig.Request,
        client: int | None,
    ) -> Stream:
        self._log(kind, zone, peer, request, client, None)
        return Stream(_messages(query, records, signer, MESSAGE_SIZE))

    def _soa_only(
        self,
        query: wire.Query,
        zone: Zone,
        signer: tsig.Signer | None,
        peer: Peer | None,
        request: tsig.Request,
        client: int,
    ) -> bytes:
        """The current SOA alone: "you are up to date", or over UDP "ask again over TCP"."""
        self._log("IXFR-SOA", zone, peer, request, client, 1)
        return next(_messages(query, [soa_wire(zone)], signer, 65535))

    def _log(
        self,
        kind: str,
        zone: Zone,
        peer: Peer | None,
        request: tsig.Request,
        client: int | None,
        records: int | None,
    ) -> None:
        self.served[kind] += 1
        log.info(
            "event=transfer type=%s zone=%s serial=%d from=%s peer=%s key=%s records=%s",
            kind,
            wire.name_to_text(zone.origin),
            zone.serial,
            "-" if client is None else client,
            _address(peer),
            request.key_name or "-",
            "-" if records is None else records,
        )


# -- what a transfer sends -------------------------------------------------------------


def _full(zone: Zone) -> Iterator[bytes]:
    """The whole zone: SOA, every other record, SOA again (RFC 5936 2.2)."""
    soa = soa_wire(zone)
    yield soa
    yield from zone_body(zone)
    yield soa


def _incremental(zone: Zone, deltas: tuple[Delta, ...]) -> Iterator[bytes]:
    """RFC 1995 4: current SOA, each change (old SOA, deletions, new SOA, additions), SOA."""
    soa = soa_wire(zone)
    yield soa
    for delta in deltas:
        yield from delta.records()
    yield soa


def _messages(
    query: wire.Query, records: Iterable[bytes], signer: tsig.Signer | None, size: int
) -> Iterator[bytes]:
    """Pack records into as few messages of at most ``size`` octets as they fit in.

    The first message carries the question and, if the query had one, an OPT record
    (RFC 5936 2.2.1, 2.2.5); every message is signed when the request was."""
    room = size - 12 - (signer.overhead if signer is not None else 0)
    flags = wire.QR | wire.AA | (query.flags & wire.COPIED_FLAGS)
    opt = _opt(query)
    first = True
    batch: list[bytes] = []
    used = len(query.question) + len(opt)
    for record in records:
        if batch and used + len(record) > room:
            yield _finish(query, flags, batch, opt if first else b"", first, signer)
            first, batch, used = False, [], 0
        batch.append(record)
        used += len(record)
    yield _finish(query, flags, batch, opt if first else b"", first, signer)


def _finish(
    query: wire.Query,
    flags: int,
    records: list[bytes],
    opt: bytes,
    first: bool,
    signer: tsig.Signer | None,
) -> bytes:
    head = _HEADER.pack(query.id, flags, 1 if first else 0, len(records), 0, 1 if opt else 0)
    message = head + (query.question if first else b"") + b"".join(records) + opt
    return signer.sign(message) if signer is not None else message


def _opt(query: wire.Query) -> bytes:
    """Our OPT record for a query that had one (version 0, DO copied)."""
    if query.edns is None:
        return b""
    ttl = wire.EDNS_DO if query.edns.do else 0
    return b"\x00" + struct.pack("!HHIH", wire.TYPE_OPT, wire.OUR_UDP_SIZE, ttl, 0)


def _error(query: wire.Query, rcode: int, signer: tsig.Signer | None) -> bytes:
    flags = wire.QR | (query.flags & wire.COPIED_FLAGS) | rcode
    opt = _opt(query)
    message = _HEADER.pack(query.id, flags, 1, 0, 0, 1 if opt else 0) + query.question + opt
    return signer.sign(message) if signer is not None else message


# -- signed queries --------------------------------------------------------------------


def _signed_answer(
    query: wire.Query,
    data: bytes,
    tcp: bool,
    peer: Peer | None,
    snapshot: Snapshot,
    signer: tsig.Signer | None,
) -> bytes | Stream | None:
    """A signed query (a secondary's SOA check): answered as if unsigned, then signed."""
    reply = snapshot.answer(_without_tsig(data, query), tcp, peer)
    if signer is None or not isinstance(reply, bytes):
        return reply
    limit = wire.MAX_MESSAGE if tcp else wire.udp_limit(query.edns)
    if len(reply) + signer.overhead > limit:
        # RFC 8945 5.3: too big once signed: a truncated, signed reply (the client retries
        # over TCP).
        flags = int.from_bytes(reply[2:4], "big") | wire.TC
        opt = _opt(query)
        reply = _HEADER.pack(query.id, flags, 1, 0, 0, 1 if opt else 0) + query.question + opt
    return signer.sign(reply)


def _without_tsig(data: bytes, query: wire.Query) -> bytes:
    """The query without its TSIG record (which ``wire.parse_query`` found to be last)."""
    offset = 12 + len(query.question)
    total = sum(query.counts[1:])
    for _ in range(total - 1):
        offset = wire.skip_name(data, offset)
        offset += 10 + int.from_bytes(data[offset + 8 : offset + 10], "big")
    arcount = query.counts[3] - 1
    return data[:10] + arcount.to_bytes(2, "big") + data[12:offset]


def _client_serial(request: tsig.Request, origin: Name) -> int | None:
    """The serial of the SOA an IXFR request carries in its authority section."""
    for rrset in request.message.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            owner = name_from_dnspython(rrset.name)
            if owner == origin:
                return int(rrset[0].serial)
    return None


def _address(peer: Peer | None) -> str | None:
    return peer[0] if peer else None
