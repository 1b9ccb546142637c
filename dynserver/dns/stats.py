"""Query counters cheap enough for the DNS hot path.

The fast path answers a query in a few microseconds of pure Python; a prometheus
``Counter.labels(...).inc()`` per query would cost more than the answer. So the count is
one list increment: every reply template carries its slot in a flat list of integers
(``QueryStats.hits``), computed once when the template is built from the reply's question
type and rcode, and the transport adds 0 (UDP) or 1 (TCP). Replies of the full path are
parsed here instead (that path costs tens of microseconds anyway). ``/metrics`` turns the
list into labelled counters at scrape time (dynserver.metrics).

Labels are bounded whatever the traffic: question types outside ``QTYPES`` count as
``other``, and an rcode is one of 32 values. Pure: no I/O, no clock, no prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator

from dynserver.dns import wire

# The question types named in the counters (slot = position; 0 is every other type).
QTYPES = (
    "other",
    "A",
    "NS",
    "CNAME",
    "SOA",
    "PTR",
    "HINFO",
    "MX",
    "TXT",
    "AAAA",
    "LOC",
    "SRV",
    "NAPTR",
    "DS",
    "SSHFP",
    "RRSIG",
    "NSEC",
    "DNSKEY",
    "NSEC3",
    "NSEC3PARAM",
    "TLSA",
    "CDS",
    "CDNSKEY",
    "SVCB",
    "HTTPS",
    "SPF",
    "NULL",
    "IXFR",
    "AXFR",
    "ANY",
    "CAA",
)
_QTYPE_CODES = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "NULL": 10,
    "PTR": 12,
    "HINFO": 13,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "LOC": 29,
    "SRV": 33,
    "NAPTR": 35,
    "DS": 43,
    "SSHFP": 44,
    "RRSIG": 46,
    "NSEC": 47,
    "DNSKEY": 48,
    "NSEC3": 50,
    "NSEC3PARAM": 51,
    "TLSA": 52,
    "CDS": 59,
    "CDNSKEY": 60,
    "SVCB": 64,
    "HTTPS": 65,
    "SPF": 99,
    "IXFR": 251,
    "AXFR": 252,
    "ANY": 255,
    "CAA": 257,
}
_SLOT_OF_QTYPE = {_QTYPE_CODES[name]: index for index, name in enumerate(QTYPES) if index}
# RFC 6895 names; 16 is BADVERS (extended: 1 in the OPT, 0 in the header).
RCODES = (
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "DSOTYPENI",
    *(f"RCODE{n}" for n in range(12, 16)),
    "BADVERS",
    *(f"RCODE{n}" for n in range(17, 32)),
)
TRANSPORTS = ("udp", "tcp")
_RCODE_SLOTS = 32
SIZE = len(QTYPES) * _RCODE_SLOTS * 2


def slot(qtype: int, rcode: int) -> int:
    """The slot of (question type, rcode) over UDP; + 1 is the same over TCP."""
    return (_SLOT_OF_QTYPE.get(qtype, 0) * _RCODE_SLOTS + (rcode & 31)) * 2


def question_type(data: bytes) -> int | None:
    """The type of a message's first question, or None if it has none or is malformed."""
    if len(data) < 12 or data[4:6] == b"\x00\x00":
        return None
    position = 12
    while position < len(data):
        length = data[position]
        if length == 0:
            break
        if length & 0xC0:
            return None  # compression in a question: FORMERR, whatever it asks
        position += length + 1
    else:
        return None
    if position + 3 > len(data):
        return None
    return (data[position + 1] << 8) | data[position + 2]


def reply_rcode(reply: bytes) -> int:
    """The full rcode of a reply we rendered: the header's 4 bits, plus the upper 8 from
    the OPT when the reply ends with one without options (ours do: BADVERS is 16)."""
    rcode = reply[3] & 0xF
    if len(reply) >= 23 and reply[-11:-8] == b"\x00\x00\x29" and reply[-2:] == b"\x00\x00":
        rcode |= reply[-6] << 4
    return rcode


class QueryStats:
    """Counts of replies by transport, question type and rcode, and of dropped messages.

    One instance lives as long as the server and is shared by every snapshot derived
    from the first, so a snapshot swap loses no count. Only the event loop writes it."""

    def __init__(self) -> None:
        self.hits = [0] * SIZE
        self.dropped = [0, 0]  # (udp, tcp): messages that got no reply at all

    def count(self, data: bytes, reply: object, tcp: bool) -> None:
        """Count a reply of the full path: bytes, a Stream (a zone transfer), or None."""
        if reply is None:
            self.dropped[tcp] += 1
            return
        qtype = question_type(data)
        if isinstance(reply, bytes):
            rcode = reply_rcode(reply) if len(reply) >= 12 else wire.SERVFAIL
        else:
            rcode = wire.NOERROR  # a Stream of transfer messages
        self.hits[slot(qtype or 0, rcode) + tcp] += 1

    def totals(self) -> Iterator[tuple[str, str, str, int]]:
        """(transport, qtype, rcode, count) for every count above zero."""
        for index, count in enumerate(self.hits):
            if count:
                rest, transport = divmod(index, 2)
                qtype, rcode = divmod(rest, _RCODE_SLOTS)
                yield TRANSPORTS[transport], QTYPES[qtype], RCODES[rcode], count
