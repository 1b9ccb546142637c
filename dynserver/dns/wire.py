"""Reading queries off the wire: header, question and EDNS(0), with no I/O.

The parser is deliberately strict and small: the answering core must never raise on
input from the network, so every way a packet can be malformed maps to either a
FORMERR reply (the header could be read) or a silent drop (it could not).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dynserver.errors import PeerError
from dynserver.types import Name

# Header flag bits (RFC 1035 4.1.1, RFC 4035 3.1.6 for AD/CD).
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010
OPCODE_MASK = 0x7800
# What a reply copies from its query's header (RFC 1035 4.1.1): the opcode and RD. CD
# is cleared by authoritative servers (RFC 4035 3.1.6).
COPIED_FLAGS = OPCODE_MASK | RD

OPCODE_QUERY = 0
OPCODE_NOTIFY = 4
OPCODE_UPDATE = 5

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
NOTAUTH = 9
BADVERS = 16  # extended: 1 in the OPT's upper bits, 0 in the header

CLASS_IN = 1
CLASS_CH = 3
CLASS_ANY = 255

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_SRV = 33
TYPE_OPT = 41
TYPE_DS = 43
TYPE_TKEY = 249
TYPE_TSIG = 250
TYPE_IXFR = 251
TYPE_AXFR = 252
TYPE_MAILB = 253
TYPE_MAILA = 254
TYPE_ANY = 255

EDNS_DO = 0x8000
OUR_UDP_SIZE = 1232  # DNS flag day 2020: no IP fragmentation on common paths
PLAIN_UDP_SIZE = 512
MAX_NAME_WIRE = 255
MAX_MESSAGE = 65535

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")


class WireError(PeerError):
    """The packet is malformed (the peer's mistake). ``header_readable`` says whether
    the header could be read: then the reply is FORMERR, else the packet is dropped."""

    def __init__(self, reason: str, *, header_readable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.header_readable = header_readable


@dataclass(frozen=True, slots=True)
class Edns:
    """The OPT pseudo-record of a query (RFC 6891)."""

    udp_size: int
    version: int
    do: bool
    cookie: bytes | None = None  # the COOKIE option's value (RFC 7873), when sent


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query. ``question`` is the question section exactly as sent."""

    id: int
    flags: int
    opcode: int
    qname: Name  # lower-cased labels, most specific first
    qtype: int
    qclass: int
    question: bytes  # raw bytes: name (original case) + type + class
    edns: Edns | None
    edns_error: int = NOERROR  # FORMERR for a broken OPT, BADVERS for version > 0
    has_tsig: bool = False
    counts: tuple[int, int, int, int] = (1, 0, 0, 0)


def read_name(data: bytes, offset: int) -> tuple[Name, int]:
    """Read an uncompressed name at ``offset``; return (lower-cased labels, end offset).

    Questions never need compression (nothing precedes them but the header), so a
    pointer here is a format error, which also rules out pointer loops.
    """
    labels: list[bytes] = []
    start = offset
    n = len(data)
    while True:
        if offset >= n:
            raise WireError("name runs past the end of the packet", header_readable=True)
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length > 63:
            raise WireError("compressed or extended label in question", header_readable=True)
        end = offset + 1 + length
        if end > n:
            raise WireError("label runs past the end of the packet", header_readable=True)
        labels.append(data[offset + 1 : end].lower())
        offset = end
    if offset - start > MAX_NAME_WIRE:
        raise WireError("name longer than 255 octets", header_readable=True)
    return tuple(labels), offset


def skip_name(data: bytes, offset: int) -> int:
    """Skip a possibly compressed name (in the additional section); return its end."""
    n = len(data)
    while True:
        if offset >= n:
            raise WireError("name runs past the end of the packet", header_readable=True)
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            if offset + 2 > n:
                raise WireError("truncated compression pointer", header_readable=True)
            return offset + 2
        if length > 63:
            raise WireError("extended label type", header_readable=True)
        offset += 1 + length


def parse_query(data: bytes) -> Query:
    """Parse a message that claims to be a query. Raises WireError on malformed input."""
    if len(data) < 12:
        raise WireError("shorter than a DNS header", header_readable=False)
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & QR:
        raise WireError("a response, not a query", header_readable=False)
    opcode = (flags >> 11) & 0xF
    counts = (qdcount, ancount, nscount, arcount)
    if qdcount != 1:
        raise WireError(f"QDCOUNT is {qdcount}, expected 1", header_readable=True)
    qname, offset = read_name(data, 12)
    if offset + 4 > len(data):
        raise WireError("question runs past the end of the packet", header_readable=True)
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    question = data[12 : offset + 4]
    offset += 4

    edns: Edns | None = None
    edns_error = NOERROR
    has_tsig = False
    # The answer and authority sections of a query carry nothing we use (UPDATE and
    # NOTIFY have their own parsers); the additional section may hold OPT and TSIG.
    total = ancount + nscount + arcount
    for index in range(total):
        offset_name = offset
        offset = skip_name(data, offset)
        if offset + 10 > len(data):
            raise WireError("resource record runs past the end", header_readable=True)
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, offset)
        offset += 10 + rdlen
        if offset > len(data):
            raise WireError("RDATA runs past the end of the packet", header_readable=True)
        in_additional = index >= ancount + nscount
        if rtype == TYPE_OPT:
            if not in_additional or edns is not None or data[offset_name] != 0:
                # RFC 6891 6.1.1: more than one OPT, or OPT not owned by the root.
                raise WireError("misplaced or repeated OPT record", header_readable=True)
            version = (ttl >> 16) & 0xFF
            cookie = _options(data, offset - rdlen, offset)
            sent = cookie if cookie and cookie != _BROKEN else None
            edns = Edns(udp_size=rclass, version=version, do=bool(ttl & EDNS_DO), cookie=sent)
            if version != 0:
                edns_error = BADVERS
            elif cookie == _BROKEN:
                edns_error = FORMERR
        elif rtype == TYPE_TSIG:
            if not in_additional or index != total - 1:
                raise WireError("TSIG is not the last record", header_readable=True)
            has_tsig = True
    if offset != len(data):
        raise WireError("trailing bytes after the last record", header_readable=True)
    return Query(
        id=ident,
        flags=flags,
        opcode=opcode,
        qname=qname,
        qtype=qtype,
        qclass=qclass,
        question=question,
        edns=edns,
        edns_error=edns_error,
        has_tsig=has_tsig,
        counts=counts,
    )


_BROKEN = b"broken"  # what _options says of options that are not well formed
_OPTION_COOKIE = 10


def _options(data: bytes, start: int, end: int) -> bytes:
    """The COOKIE option's value (b"" when there is none), or _BROKEN when the options do
    not tile the RDATA exactly (each is code(2) length(2) value), or a COOKIE option is
    repeated or of a length RFC 7873 §5.2.2 rules out (8, or 16 to 40 bytes)."""
    offset = start
    cookie = b""
    while offset < end:
        if offset + 4 > end:
            return _BROKEN
        code = (data[offset] << 8) | data[offset + 1]
        length = (data[offset + 2] << 8) | data[offset + 3]
        if code == _OPTION_COOKIE:
            if cookie or not (length == 8 or 16 <= length <= 40) or offset + 4 + length > end:
                return _BROKEN
            cookie = data[offset + 4 : offset + 4 + length]
        offset += 4 + length
    return cookie if offset == end else _BROKEN


def error_reply(data: bytes, rcode: int) -> bytes:
    """A header-only reply (no question) for a packet whose header we could read."""
    ident, flags = struct.unpack_from("!HH", data)
    reply_flags = QR | (flags & COPIED_FLAGS) | (rcode & 0xF)
    return _HEADER.pack(ident, reply_flags, 0, 0, 0, 0)


def udp_limit(edns: Edns | None) -> int:
    """Largest UDP reply we may send (RFC 1035 4.2.1, RFC 6891 6.2.5, flag day 2020)."""
    if edns is None:
        return PLAIN_UDP_SIZE
    return min(max(edns.udp_size, PLAIN_UDP_SIZE), OUR_UDP_SIZE)


def name_to_text(name: Name) -> str:
    """Presentation form (RFC 1035 5.1 escapes) of a label tuple, with the final dot."""
    if not name:
        return "."
    out = []
    for label in name:
        chars = []
        for byte in label:
            char = chr(byte)
            if char in '.\\"();@$ ':
                chars.append("\\" + char)
            elif 0x21 <= byte <= 0x7E:
                chars.append(char)
            else:
                chars.append(f"\\{byte:03d}")
        out.append("".join(chars))
    return ".".join(out) + "."


def name_to_wire(name: Name) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in name) + b"\x00"
