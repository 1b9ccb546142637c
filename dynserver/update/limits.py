"""Rate limits and lockout for the update paths (dyndns2 and the REST API).

Pure: every call takes ``now`` (monotonic seconds); nothing reads a clock. Three rules:

- a general request rate per client (token bucket: ``burst`` at once, ``rate`` per second);
- failed authentications per client: ``client_failures`` within ``failure_window`` locks
  the client out for ``lockout`` seconds, whatever credential it then presents;
- failed authentications per credential name, from any client: ``credential_failures``
  within the window locks that name (a guesser spread over many addresses). It is set
  higher than the client limit, so a single noisy client locks itself out long before it
  can lock out the credential's owner.

A blocked request is answered ``abuse`` (dyndns2) or 429 (API). Other clients and other
credentials are not affected. A client is an IPv4 address or an IPv6 /64 (one customer
line gets a whole /64, so rotating inside it changes nothing).
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    client_failures: int = 10  #: failed authentications from one client in the window...
    credential_failures: int = 30  #: ...or against one credential name, from anywhere
    failure_window: float = 300.0  #: seconds in which failures are counted
    lockout: float = 900.0  #: seconds a client or credential stays locked
    burst: int = 60  #: requests a client may make at once
    rate: float = 1.0  #: requests per second a client regains
    max_clients: int = 100_000  #: memory bound: idle entries are dropped beyond this


class Why(enum.StrEnum):
    RATE = "rate limited"  #: the client sends faster than the rate allows
    CLIENT_LOCKED = "client locked"  #: too many failed authentications from this client
    CREDENTIAL_LOCKED = "credential locked"  #: too many failed authentications for this name


@dataclass(frozen=True, slots=True)
class Block:
    why: Why
    retry_after: float  #: seconds until a request may succeed again


def client_key(address: str) -> str:
    """The unit limits count: the address, or for IPv6 its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)  # ::ffff:192.0.2.1 is the IPv4 client it wraps
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Limiter:
    def __init__(self, policy: LimitPolicy | None = None) -> None:
        self.policy = policy or LimitPolicy()
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._failures: dict[str, deque[float]] = {}  # "client:..." / "credential:..." -> times
        self._locked: dict[str, float] = {}  # same keys -> locked until

    def admit(self, client: str, now: float) -> Block | None:
        """A request from ``client`` arrives: is it let through? Spends one token."""
        key = client_key(client)
        locked = self._lock_left(f"client:{key}", now)
        if locked:
            return Block(Why.CLIENT_LOCKED, locked)
        if max(len(self._buckets), len(self._failures)) >= self.policy.max_clients:
            self._prune(now)
        tokens, at = self._buckets.get(key, (float(self.policy.burst), now))
        tokens = min(float(self.policy.burst), tokens + max(0.0, now - at) * self.policy.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.policy.rate if self.policy.rate > 0 else self.policy.lockout
            return Block(Why.RATE, wait)
        self._buckets[key] = (tokens - 1.0, now)
        return None

    def credential_blocked(self, name: str, now: float) -> Block | None:
        locked = self._lock_left(f"credential:{name}", now)
        return Block(Why.CREDENTIAL_LOCKED, locked) if locked else None

    def failed(self, client: str, credential: str | None, now: float) -> None:
        """A failed authentication: count it against the client and the name tried."""
        self._count(f"client:{client_key(client)}", self.policy.client_failures, now)
        if credential is not None:
            self._count(f"credential:{credential}", self.policy.credential_failures, now)

    def _count(self, key: str, limit: int, now: float) -> None:
        if self._lock_left(key, now):
            return  # already locked: the lock is not extended by what it refuses
        times = self._failures.setdefault(key, deque())
        times.append(now)
        while times and times[0] <= now - self.policy.failure_window:
            times.popleft()
        if len(times) >= limit:
            self._locked[key] = now + self.policy.lockout
            del self._failures[key]

    def _lock_left(self, key: str, now: float) -> float:
        until = self._locked.get(key)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked[key]
            return 0.0
        return until - now

    def _prune(self, now: float) -> None:
        """Forget what no longer matters: full buckets, old failures, ended locks."""
        refill = self.policy.burst / self.policy.rate if self.policy.rate > 0 else 0.0
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
        cutoff = now - self.policy.failure_window
        self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > cutoff}
        self._locked = {k: v for k, v in self._locked.items() if v > now}
        if len(self._buckets) >= self.policy.max_clients:
            # Still full (a flood from many addresses): start over rather than grow.
            # Locks are kept; only rate history is lost.
            self._buckets.clear()
        if len(self._failures) >= self.policy.max_clients:
            self._failures.clear()
