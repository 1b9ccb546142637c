"""Type aliases shared across the package."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

# A domain name as a tuple of lower-cased labels, most specific first; the root is ().
# Tuples make suffix tests cheap (name[-len(origin):] == origin) and hash well.
Name = tuple[bytes, ...]

# The transports' view of the server: wire message in, wire reply out (or None to drop).
# The flag says whether it arrived over TCP (no UDP size limit); the peer is the client's
# (address, port). Queries are answered at once; a message that must wait (an UPDATE is
# committed to disk before it is acknowledged) returns an awaitable of the reply.
Answerer = Callable[[bytes, bool, tuple[str, int]], "bytes | Awaitable[bytes | None] | None"]
