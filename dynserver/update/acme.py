"""ACME DNS-01 challenges (RFC 8555 8.4): which names a key or credential may touch, what
a challenge value may be, and how long one is kept. Pure: time is an argument, no I/O.

A challenge is a TXT record at ``_acme-challenge.<name>``. A key scoped ``acme =
["dyn.example.test"]`` may add and delete them for that name and every name under it,
and nothing else; dynserver.update.rfc2136 and the REST API (dynserver.web.acme) apply
these rules, the runtime serves, stores and expires what they allow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from dnslib import RD

from dynserver.dns import wire
from dynserver.dns.names import fqdn, name_text
from dynserver.dns.zone import RRset
from dynserver.errors import RequestError
from dynserver.types import Name

LABEL = b"_acme-challenge"

# The default maximum age, one hour: a CA validates within minutes of the client's
# "ready" (certbot's RFC 2136 plugin waits 60 s for propagation by default, the others a
# minute or two), and a client deletes its record right after. A client that dies before
# its clean-up leaves a record nobody deletes: the hour bounds that litter while leaving
# room for slow secondaries and a CA's retries. ``acme_max_age`` of [keys.NAME] sets it per key.
MAX_AGE = 3600.0

# Short: a resolver that cached an old value (a previous attempt) must see the new one
# within a minute, and nothing but the CA asks for these names.
TTL = 60

# RFC 8555 8.4: the value is the base64url SHA-256 digest of the key authorization (43
# characters); base64url characters only, so nothing else can be parked in the zone.
_VALUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")

Scope = str  # a name in the text form: "dyn.example.test" covers it and every name under it


class InvalidChallenge(RequestError, ValueError):
    """The name or value is not a challenge's; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Change:
    """One operation of an update, applied in order (RFC 2136 3.4.2)."""

    op: Literal["add", "delete", "clear"]  # add one value, delete one value, delete them all
    name: Name  # _acme-challenge.<name>, absolute
    value: str | None = None  # None for "clear"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A challenge TXT record being served."""

    zone: Name  # the zone it is served in
    name: Name  # _acme-challenge.<name>
    value: str  # the TXT string
    added: float  # wall-clock Unix seconds
    expires: float  # added + the maximum age: removed then if still there
    actor: str  # who added it: tsig:KEY or a credential's name


Challenges = Mapping[tuple[Name, str], Challenge]  # by (name, value)


def is_challenge(name: Name) -> bool:
    return len(name) >= 2 and name[0] == LABEL


def in_scope(scopes: Iterable[Scope], name: Name) -> bool:
    """Whether ``name`` is ``_acme-challenge.<base>`` with base equal to or under a scope."""
    if not is_challenge(name):
        return False
    base = name_text(name[1:])
    return any(base == scope or base.endswith(f".{scope}") for scope in scopes)


def check_value(text: str) -> str:
    """A challenge value as served, or InvalidChallenge."""
    if not _VALUE_RE.match(text):
        raise InvalidChallenge(
            f"{text[:80]!r} is not an ACME challenge value; expected 1-255 base64url characters "
            "(RFC 8555 8.4: the key authorization's SHA-256 digest, 43 characters)"
        )
    return text


def check_scope(text: str, origins: Iterable[str]) -> str:
    """A scope (a name in one of the served zones ``origins``, text form) normalised, or
    InvalidChallenge. No wildcard: a key for every name is what scoping avoids."""
    name = fqdn(text)
    if "*" in name or not any(name == o or name.endswith(f".{o}") for o in origins):
        known = ", ".join(origins) or "none"
        raise InvalidChallenge(
            f"{text!r} is not a name in a zone served here; expected a name like dyn.example.test "
            f"(zones: {known})"
        )
    return name


def check_name(text: str) -> str:
    """A challenge's FQDN as written by a client, in the text form, or InvalidChallenge."""
    name = fqdn(text)
    if not name.startswith(LABEL.decode() + "."):
        raise InvalidChallenge(
            f"{text[:80]!r} is not a challenge name; expected _acme-challenge.NAME, "
            "e.g. _acme-challenge.dyn.example.test"
        )
    return name


def apply(
    current: Challenges,
    zone: Name,
    changes: Iterable[Change],
    *,
    now: float,
    max_age: float,
    actor: str,
) -> dict[tuple[Name, str], Challenge]:
    """The challenges after ``changes`` (in order). Adding a value already there renews it."""
    result = dict(current)
    for change in changes:
        if change.op == "clear":
            for key in [k for k in result if k[0] == change.name]:
                del result[key]
        elif change.value is not None and change.op == "delete":
            result.pop((change.name, change.value), None)
        elif change.value is not None:
            result[(change.name, change.value)] = Challenge(
                zone, change.name, change.value, now, now + max_age, actor
            )
    return result


def expired(current: Challenges, now: float) -> list[Challenge]:
    return [c for c in current.values() if c.expires <= now]


def rrsets(current: Challenges, zone: Name) -> dict[Name, RRset]:
    """The TXT RRsets the zone serves, one per challenge name (values in a stable order)."""
    values: dict[Name, list[str]] = {}
    for challenge in current.values():
        if challenge.zone == zone:
            values.setdefault(challenge.name, []).append(challenge.value)
    return {
        name: RRset(name, wire.TYPE_TXT, TTL, tuple(_txt(v) for v in sorted(texts)))
        for name, texts in values.items()
    }


def _txt(value: str) -> RD:
    data = value.encode("ascii")
    return RD(bytes([len(data)]) + data)
