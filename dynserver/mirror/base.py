"""The provider interface: "make the records of this name and type at the provider equal
to this desired set", and say what was done.

A provider is asked for the whole desired state every time, never for a delta: it reads
what the provider has now, changes only what differs, and is therefore safe to call again
after any failure, after someone edited the record by hand, or after a restart. Errors
say whether retrying can help (``MirrorError.permanent``) and how long the provider asked
us to wait (``retry_after``).
"""

from __future__ import annotations

import email.utils
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dynserver.dns.names import fqdn
from dynserver.errors import PeerError

REDACTED = "***"
MAX_RETRY_AFTER = 3600.0  # a longer Retry-After is taken as this: a mirror is not parked for days


@dataclass(frozen=True, slots=True)
class Desired:
    """What the provider should hold for one name and type."""

    name: str  # absolute, lower-case, no final dot: "www.example.com"
    type: str  # A | AAAA | CNAME
    values: tuple[str, ...]  # canonical (see ``canonical``), unique, sorted; () = no records
    ttl: int
    proxied: bool | None = None  # Cloudflare: None leaves it as found (new records: not proxied)
    comment: str | None = None  # Cloudflare: None leaves it as found


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one sync found and did."""

    actions: tuple[str, ...]  # e.g. "patch 192.0.2.1 -> 192.0.2.2"; () = already in place
    before: tuple[str, ...]  # the values the provider had (canonical, sorted)
    after: tuple[str, ...]  # the values it has now
    reply: str  # a short summary of the provider's last reply, for the dashboard
    records: tuple[dict[str, Any], ...] = ()  # the provider's records now (id, content, ttl, ...)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


class MirrorError(PeerError):
    """A sync failed. ``permanent``: retrying the same request cannot help (a bad token,
    a zone that does not exist, a request the provider refuses); it is tried again only
    at the next answer change or periodic reconcile. Otherwise the worker retries with
    backoff, waiting at least ``retry_after`` seconds when the provider said so."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None, reply: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.reply = reply or message

    def redacted(self, secrets: Sequence[str]) -> MirrorError:
        """The same error with every secret taken out of its message and reply."""
        return MirrorError(
            redact(self.message, secrets),
            permanent=self.permanent,
            retry_after=self.retry_after,
            reply=redact(self.reply, secrets),
        )


class Provider(Protocol):
    """A mirror target: Cloudflare's API, an RFC 2136 primary, a dns-lexicon provider or a
    dyndns2 server."""

    kind: str  # "cloudflare" | "rfc2136" | "lexicon" | "dyndns2"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in logs, events or pages (API tokens)."""
        ...

    async def start(self) -> None: ...

    async def sync(self, desired: Desired) -> Outcome: ...

    async def close(self) -> None: ...


def canonical(rtype: str, value: str) -> str:
    """One spelling per value, so values from the config, from Cloudflare's JSON and from
    DNS compare equal: compressed IPv6, lower-case host names without the final dot."""
    if rtype in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return value.strip()
    return fqdn(value)


def canonical_values(rtype: str, values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({canonical(rtype, v) for v in values}))


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced: applied to every message that leaves a mirror."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def retry_after_seconds(value: str | None, now: float) -> float:
    """An HTTP Retry-After in seconds (a number or an HTTP date); 1 s when absent or
    unreadable, at most MAX_RETRY_AFTER."""
    if not value:
        return 1.0
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
