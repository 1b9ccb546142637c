"""Types shared across the package: aliases, the keys of records, targets and checks, and
the Stream reply of a zone transfer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
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
    # The scheduler and the runtime look checks up by this key several times per check;
    # the dataclass's own __hash__ built a tuple of the fields and hashed it every time
    # (2.6 % of dynserver's CPU checking 20,000 targets, py-spy). Computed once.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.monitor, self.address, self.port, self.host, self.path)))

    def __hash__(self) -> int:
        return self._hash


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
