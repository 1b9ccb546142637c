"""Type aliases shared across the package."""

from __future__ import annotations

from collections.abc import Callable

# A domain name as a tuple of lower-cased labels, most specific first; the root is ().
# Tuples make suffix tests cheap (name[-len(origin):] == origin) and hash well.
Name = tuple[bytes, ...]

# The transports' view of the answering core: wire query in, wire reply out (or None to
# drop). The flag says whether the query arrived over TCP (no UDP size limit).
Answerer = Callable[[bytes, bool], "bytes | None"]
