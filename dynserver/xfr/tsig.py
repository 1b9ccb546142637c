"""TSIG (RFC 8945) for transfers, signed queries and NOTIFY: verify, sign, refuse.

Verification is dnspython's (it reads the clock itself for the time window); signing is
done here on finished wire messages, with the time passed in, so the transfer code can
sign each message of a stream as it is produced: the first with the request's MAC, each
next one chained to the previous MAC (RFC 8945 5.3.1), as every secondary expects.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
from dns.rdtypes.ANY.TSIG import TSIG

from dynserver.dns import wire
from dynserver.dns.names import fqdn
from dynserver.model import TsigKey

FUDGE = 300  # seconds of clock difference allowed (RFC 8945 10: 300 recommended)
BADSIG = 16
BADKEY = 17
BADTIME = 18
_RR_FIXED = struct.Struct("!HHIH")

Keyring = dict[dns.name.Name, dns.tsig.Key]


def keyring(keys: Iterable[TsigKey]) -> Keyring:
    """dnspython keys by name, as message parsing looks them up."""
    ring = {}
    for key in keys:
        name = dns.name.from_text(key.name)
        ring[name] = dns.tsig.Key(name, key.secret, key.algorithm)
    return ring


def key_name(key: dns.tsig.Key) -> str:
    """The name as the config writes it: lower-case, no final dot."""
    return fqdn(key.name.to_text())  # dnspython writes no surrounding space: as before


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request, its signature verified if it had one."""

    message: dns.message.Message
    key: dns.tsig.Key | None  # None: unsigned

    @property
    def key_name(self) -> str | None:
        return None if self.key is None else key_name(self.key)

    def signer(self, now: int) -> Signer | None:
        """What signs the replies to a signed request (RFC 8945 5.3: with the same key)."""
        if self.key is None:
            return None
        return Signer(self.key, self.message.mac or b"", self.message.id, now)


def read(data: bytes, ring: Keyring, now: int) -> Request | bytes | None:
    """Parse a request and verify its TSIG: the Request, or the reply that refuses it
    (NOTAUTH with a TSIG error, RFC 8945 5.2), or None if it cannot even be parsed."""
    try:
        message = dns.message.from_wire(data, keyring=ring)
    except dns.message.UnknownTSIGKey:
        return _unsigned_error(data, BADKEY, now)
    except (dns.tsig.BadKey, dns.tsig.BadAlgorithm):
        return _unsigned_error(data, BADKEY, now)
    except dns.tsig.BadSignature:
        return _unsigned_error(data, BADSIG, now)
    except dns.tsig.BadTime:
        return _badtime(data, ring, now)
    except (dns.exception.DNSException, ValueError, UnicodeError, IndexError):
        return wire.error_reply(data, wire.FORMERR) if len(data) >= 12 else None
    key = message.keyring if message.had_tsig else None
    return Request(message, key if isinstance(key, dns.tsig.Key) else None)


class Signer:
    """Signs the messages of one reply in order (one message, or a transfer's stream)."""

    def __init__(
        self,
        key: dns.tsig.Key,
        request_mac: bytes,
        original_id: int,
        now: int,
        *,
        error: int = 0,
        other: bytes = b"",
    ) -> None:
        self.key = key
        self.request_mac = request_mac
        self.original_id = original_id
        self.now = now
        self.error = error
        self.other = other
        self.mac = b""  # the MAC of the last message signed (a NOTIFY checks its reply with it)
        self._context: object | None = None
        self._owner = _name_wire(key.name)
        # The TSIG record's size: owner, fixed part, algorithm, time, fudge, MAC (64 octets
        # at most: hmac-sha512), original ID, error, other data.
        self.overhead = len(self._owner) + 10 + len(_name_wire(key.algorithm)) + 18 + 64 + len(other)

    def sign(self, message: bytes) -> bytes:
        """The message with its TSIG record appended (and ARCOUNT + 1)."""
        template = TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY,
            dns.rdatatype.TSIG,
            self.key.algorithm,
            0,
            FUDGE,
            b"",
            self.original_id,
            self.error,
            self.other,
        )
        rdata, self._context = dns.tsig.sign(  # type: ignore[no-untyped-call]
            message, self.key, template, self.now, self.request_mac, self._context, True
        )
        self.mac = rdata.mac
        return _append(message, self._owner, rdata)


def _append(message: bytes, owner: bytes, rdata: TSIG) -> bytes:
    data = rdata.to_wire()
    assert data is not None
    arcount = int.from_bytes(message[10:12], "big") + 1
    record = owner + _RR_FIXED.pack(wire.TYPE_TSIG, wire.CLASS_ANY, 0, len(data)) + data
    return message[:10] + arcount.to_bytes(2, "big") + message[12:] + record


def _name_wire(name: dns.name.Name) -> bytes:
    """A name in full (TSIG owner and algorithm names are never compressed)."""
    data = name.to_wire()
    assert data is not None
    return data


def _head(data: bytes, rcode: int) -> bytes:
    """A reply header and the request's question (or none, if it cannot be found)."""
    try:
        query = wire.parse_query(data)
        question = query.question
    except wire.WireError:
        question = b""
    ident, flags = struct.unpack_from("!HH", data)
    reply_flags = wire.QR | (flags & wire.COPIED_FLAGS) | rcode
    return struct.pack("!HHHHHH", ident, reply_flags, 1 if question else 0, 0, 0, 0) + question


def _unsigned_error(data: bytes, error: int, now: int) -> bytes | None:
    """NOTAUTH with BADKEY or BADSIG: a TSIG record with no MAC (RFC 8945 5.2.1, 5.2.2)."""
    if len(data) < 12:
        return None
    try:
        message = dns.message.from_wire(data, keyring=False)
    except dns.exception.DNSException:
        return wire.error_reply(data, wire.FORMERR)
    name, algorithm = message.keyname, message.keyalgorithm
    if name is None or algorithm is None:
        return wire.error_reply(data, wire.NOTAUTH)
    rdata = TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TSIG, algorithm, now, FUDGE, b"", message.id, error, b""
    )
    return _append(_head(data, wire.NOTAUTH), _name_wire(name), rdata)


def _badtime(data: bytes, ring: Keyring, now: int) -> bytes | None:
    """NOTAUTH with BADTIME, signed, our time in Other Data (RFC 8945 5.2.3)."""
    try:
        message = dns.message.from_wire(data, keyring=False)
    except dns.exception.DNSException:
        return wire.error_reply(data, wire.FORMERR)
    key = ring.get(message.keyname) if message.keyname is not None else None
    if key is None:
        return _unsigned_error(data, BADKEY, now)
    other = struct.pack("!HI", (now >> 32) & 0xFFFF, now & 0xFFFFFFFF)
    signer = Signer(key, message.mac or b"", message.id, now, error=BADTIME, other=other)
    return signer.sign(_head(data, wire.NOTAUTH))
