"""The UDP packet cache: the contract between the snapshot that fills it
(dynserver/dns/snapshot.py) and the transports that serve from it (dynserver/server/udp.py).

A cache maps the KEY of a query to an ENTRY:

- key: the query's bytes after its ID and flags, ``query[KEY_START:]``: the counts, the
  question exactly as the client wrote it (0x20 case randomisation survives) and the OPT
  record with its UDP size and DO bit. The ID (random per query) and the flags (RD
  varies) are not in it.
- entry: ``(tail for RD clear, tail for RD set, stats slot)``. A tail is the whole reply
  after its ID: flags and counts (see ``heads``), the question bytes of the key, then the
  answer, authority and additional sections. The slot is the reply's counter in
  QueryStats.hits (question type and rcode; see dynserver/dns/stats.py).
- a rotating reply (a dynamic record with several values, dynserver/health/policy.py)
  has, instead of each tail, an iterator that yields the tails in rotation order,
  endlessly (``rotating_entry``). Every other entry holds bytes: a reply that does not
  rotate is cached exactly as before.

Serving a query from the cache, which the transports and Snapshot.answer do inline (a
Python call per query would cost more than the lookup; ``serve`` spells it out, and
tests hold the inlined copies to it, as they hold the snapshot's entries to ``entry``):

1. look the key up; no entry: not cached, answer the query the usual way;
2. the entry applies only if ``query[FLAGS] & NOT_QUERY == 0``: QR clear (a query, not
   a reply) and opcode 0 (QUERY). The other bits of that byte are RD, which picks the
   tail, and AA and TC, which mean nothing in a query and are ignored, as the full path
   ignores them. The second flags byte (RA, Z, AD, CD, rcode) is never copied: an
   authoritative server clears CD (RFC 4035 3.1.6) and AD;
3. the tail is ``entry[query[FLAGS] & RD_BIT]``; if it is not bytes, it rotates: the
   tail is ``next()`` of it. The reply is the query's ID, ``query[:ID_END]``, then the tail;
4. add 1 to ``hits[entry[STAT]]``.

Only the snapshot's fast path fills a cache, with queries its checks accepted (one
question, no answer or authority records, no OPT or an OPT of version 0 without
options): equal keys mean the same checks pass, so the cache never answers differently
from that path. A cache belongs to one snapshot: a new snapshot starts with an empty one.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import cycle
from typing import Final

ID_END: Final = 2  # the query's ID is query[:ID_END]; the reply starts with it
FLAGS: Final = 2  # the query's first flags byte: QR, opcode (4 bits), AA, TC, RD
KEY_START: Final = 4  # the key is query[KEY_START:]: everything after the ID and both flags bytes
NOT_QUERY: Final = 0xF8  # QR and opcode in query[FLAGS]: any of them set, the cache does not apply
RD_BIT: Final = 0x01  # RD in query[FLAGS]: 0 or 1, the index of the tail to send
STAT: Final = 2  # where an entry keeps its stats slot

Tail = bytes | Iterator[bytes]  # bytes, or the endless tails of a rotating reply
Entry = tuple[Tail, Tail, int]
PacketCache = dict[bytes, Entry]


def heads(head: bytes) -> tuple[bytes, bytes]:
    """A rendered reply's flags and counts (its bytes 2 to 12, RD clear: rendering copies
    no query flag), as sent to a query with RD clear and to one with RD set: RD is the
    only query flag a cached reply depends on."""
    return head, bytes((head[0] | RD_BIT,)) + head[1:]


def entry(head_pair: tuple[bytes, bytes], question: bytes, body: bytes, stat: int) -> Entry:
    """The cache entry of a reply: ``head_pair`` from ``heads``, the question bytes as the
    client sent them, the sections after the question, and the stats slot."""
    return head_pair[0] + question + body, head_pair[1] + question + body, stat


def rotating_entry(
    head_pair: tuple[bytes, bytes],
    question: bytes,
    bodies: tuple[bytes, ...],
    order: tuple[int, ...],
    start: int,
    stat: int,
) -> Entry:
    """The cache entry of a rotating reply: ``bodies[i]`` has the rotating RRset's record
    ``i`` first; ``order`` is which body each answer of one cycle gets; the entry's first
    answer is at position ``start`` of it (where the template that made it goes on)."""
    size = len(order)
    ring = [order[(start + i) % size] for i in range(size)]
    tails = [(head_pair[0] + question + body, head_pair[1] + question + body) for body in bodies]
    return cycle([tails[i][0] for i in ring]), cycle([tails[i][1] for i in ring]), stat


def tail(entry: Entry, rd: int) -> bytes:
    """The tail ``entry`` sends a query with this RD bit (a rotating entry moves on)."""
    found = entry[1] if rd else entry[0]
    return found if isinstance(found, bytes) else next(found)


def serve(cache: PacketCache, hits: list[int], query: bytes) -> bytes | None:
    """The reply the cache gives ``query`` (counted in ``hits``), or None: the steps of the
    module docstring, as the transports and Snapshot.answer inline them."""
    hit = cache.get(query[KEY_START:])
    if hit is None or query[FLAGS] & NOT_QUERY:
        return None
    hits[hit[STAT]] += 1
    found = hit[query[FLAGS] & RD_BIT]
    if found.__class__ is not bytes:
        found = next(found)  # type: ignore[arg-type]  # a rotating reply
    return query[:ID_END] + found  # bytes now
