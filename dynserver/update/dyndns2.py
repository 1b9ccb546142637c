"""The dyndns2 protocol (``GET /nic/update``), as ddclient, inadyn and routers speak it.

Pure: query parameters and the client's address come in; a plan (what to set, what to
refuse) and the reply come out. The web route authenticates, applies the plan through
Runtime.update_target (on disk before the reply) and sends what ``reply`` builds.

Replies are the words clients parse, one line per hostname in request order:
``good <ip>`` (changed), ``nochg <ip>`` (already so), ``nohost`` (unknown, or not this
credential's), ``notfqdn``, ``numhost``, ``abuse``, ``badauth`` (HTTP 401) and ``911``
(HTTP 500, a fault of ours). inadyn counts "good", "nochg" or "ok" anywhere in a body
as success, so no refusal ever contains those letters.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dynserver.types import TargetKey

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_HOSTNAMES = 20  # dyndns2: more is "numhost"
REALM = "dynserver"


class Code(enum.StrEnum):
    GOOD = "good"  #: the address changed (sent with the address)
    NOCHG = "nochg"  #: the address was already this (sent with the address)
    BADAUTH = "badauth"  #: no or wrong credential (HTTP 401)
    NOTFQDN = "notfqdn"  #: no hostname, or one that is not a domain name
    NOHOST = "nohost"  #: no such target, not this credential's, or no address of its type
    NUMHOST = "numhost"  #: more than MAX_HOSTNAMES hostnames
    ABUSE = "abuse"  #: rate-limited or locked out
    SERVER_ERROR = "911"  #: our fault (the database did not commit): try again later (HTTP 500)


REFUSALS = frozenset(Code) - {Code.GOOD, Code.NOCHG}


@dataclass(frozen=True, slots=True)
class Request:
    hostnames: tuple[str, ...]
    addresses: tuple[IPAddress, ...]  #: from ``myip``; prefixes stripped, malformed ones dropped
    source: IPAddress | None  #: the client's own address: used when ``myip`` has none that fits


@dataclass(frozen=True, slots=True)
class Update:
    """Set this target to this value (through Runtime.update_target), then say good/nochg."""

    key: TargetKey
    value: str


Step = Update | Code


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    lines: tuple[str, ...]
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def body(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


def credentials(authorization: str | None) -> tuple[str, str] | None:
    """(name, secret) from an HTTP Basic Authorization header, or None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, colon, secret = decoded.partition(":")
    if not colon or not name or not secret:
        return None
    return name, secret


def parse(params: Iterable[tuple[str, str]], source: str | None) -> Request:
    """The request's hostnames and addresses. Unknown parameters are ignored, as are
    ``system``, ``wildcard``, ``mx``, ``backmx`` and ``offline`` (nothing here uses them)."""
    hostnames: list[str] = []
    addresses: list[IPAddress] = []
    for key, value in params:
        key = key.lower()
        if key == "hostname":
            hostnames += [h.strip() for h in value.split(",") if h.strip()]
        elif key in ("myip", "myipv6"):
            addresses += [a for a in map(_address, value.split(",")) if a is not None]
    return Request(tuple(hostnames), tuple(addresses), _address(source or ""))


def _address(text: str) -> IPAddress | None:
    """``192.0.2.1``, ``2001:db8::1``, ``[2001:db8::1]`` or with a ``/prefix``; else None."""
    text = text.strip().split("/", 1)[0].strip("[]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_for(request: Request, record_type: str) -> str | None:
    """The address to set for an A or AAAA record: the first in ``myip`` of that family,
    else the client's own if it fits (dyndns2: a missing or unusable myip means "use
    the address the request came from")."""
    version = {"A": 4, "AAAA": 6}.get(record_type)
    for address in (*request.addresses, request.source):
        if address is not None and address.version == version:
            return str(address)
    return None


def plan(
    request: Request,
    *,
    find: Callable[[str], TargetKey | None],
    may_update: Callable[[TargetKey], bool],
) -> tuple[Step, ...]:
    """One step per hostname, in order: an Update, or the refusal code for that line."""
    if not request.hostnames:
        return (Code.NOTFQDN,)
    if len(request.hostnames) > MAX_HOSTNAMES:
        return (Code.NUMHOST,)
    steps: list[Step] = []
    for hostname in request.hostnames:
        if not _is_fqdn(hostname):
            steps.append(Code.NOTFQDN)
            continue
        key = find(hostname)
        # Unknown and not-yours look the same: a guesser learns nothing about names.
        if key is None or not may_update(key):
            steps.append(Code.NOHOST)
            continue
        value = address_for(request, key[1])
        steps.append(Code.NOHOST if value is None else Update(key, value))
    return tuple(steps)


def _is_fqdn(hostname: str) -> bool:
    labels = hostname.rstrip(".").split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels) and len(hostname) <= 253


def line(code: Code, value: str | None = None) -> str:
    return f"{code.value} {value}" if value is not None and code in (Code.GOOD, Code.NOCHG) else code.value


def reply(lines: Iterable[str]) -> Reply:
    """The reply for per-hostname result lines: 500 if any line is a server fault."""
    lines = tuple(lines)
    status = 500 if Code.SERVER_ERROR.value in lines else 200
    return Reply(status, lines, _plain())


def badauth() -> Reply:
    return Reply(401, (Code.BADAUTH.value,), (*_plain(), ("WWW-Authenticate", f'Basic realm="{REALM}"')))


def refused(code: Code, hostnames: int, retry_after: float | None = None) -> Reply:
    """The same refusal on every line (abuse, or 911 before anything was tried)."""
    headers = _plain()
    if retry_after is not None:
        headers = (*headers, ("Retry-After", str(max(1, round(retry_after)))))
    status = 500 if code is Code.SERVER_ERROR else 200
    return Reply(status, (code.value,) * max(1, min(hostnames, MAX_HOSTNAMES)), headers)


def _plain() -> tuple[tuple[str, str], ...]:
    return (("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store"))
