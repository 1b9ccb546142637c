"""Types shared across the package: aliases, the keys of records, targets and checks, and
the Stream reply of a zone transfer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Literal, get_args

# A domain name as a tuple of lower-cased labels, most specific first; the root is ().
# Tuples make suffix tests cheap (name[-len(origin):] == origin) and hash well.
Name = tuple[bytes, ...]

# The types a dynamic record may have (the config refuses others).
RecordType = Literal["A", "AAAA", "CNAME"]
RECORD_TYPES: tuple[RecordType, ...] = get_args(RecordType)

# The keys the health engine, the update paths and the web share; plain tuples so that a
# pure module can name a record or a target without importing the engine.
RecordKey = tuple[Name, str]  # (absolute name, type)
TargetKey = tuple[Name, str, str]  # (record name, type, target name)


@dataclass(frozen=True, slots=True)
class CheckKey:
    """One check is run per distinct (monitor, address, overrides), however many
    records share it. The address is where the check connects: the target's
    check_address when set, else its current value."""

    monitor: str
    address: str
    port: int | None
    host: str | None
    path: str | None


# The transports' view of the server: wire message in, wire reply out (or None to drop).
# The flag says whether it arrived over TCP (no UDP size limit); the peer is the client's
# (address, port). Queries are answered at once; a message that must wait (an UPDATE is
# committed to disk before it is acknowledged) returns an awaitable of the reply; a query
# answered by several messages (a zone transfer, over TCP only) returns a Stream.
Answerer = Callable[[bytes, bool, tuple[str, int]], "bytes | Stream | Awaitable[bytes | None] | None"]


class Stream:
    """The messages that answer one query, to be sent in order on one TCP connection.

    A zone transfer of a large zone is many messages; they are produced one at a time by
    a pure generator, so the zone is never rendered in memory as a whole and the
    transport can let other work run between two messages."""

    __slots__ = ("messages",)

    def __init__(self, messages: Iterator[bytes]) -> None:
        self.messages = messages
