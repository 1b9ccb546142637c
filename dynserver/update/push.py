"""Push monitors' heartbeats (issue 17, Uptime Kuma's push monitors): tokens and what a
heartbeat request says. Pure: randomness and time are arguments; storage is store/db.py.

Each target of a push monitor gets a token; ``GET`` or ``POST /api/v1/push/TOKEN`` is a
heartbeat, with Uptime Kuma's optional query parameters ``status=up|down``, ``msg=...``
and ``ping=`` (milliseconds). Only the SHA-256 of a token is stored: a token is 192
random bits, so a fast unsalted hash is as safe as the credentials' salted one (no
dictionary reaches it) and lets a heartbeat find its target with one indexed read.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dynserver.store.db import StoredPushToken

TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 32 characters, 192 bits
MAX_MESSAGE = 200  # characters of msg kept in the reason
PARAMETERS = frozenset({"status", "msg", "ping"})


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def create(
    record: str,
    type: str,
    target: str,
    *,
    now: float,
    token: Callable[[int], str] = secrets.token_urlsafe,
) -> tuple[StoredPushToken, str]:
    """A target's new token, and what is stored of it. The token leaves this function
    once, to be shown to the operator."""
    text = token(TOKEN_BYTES)
    return StoredPushToken(digest(text), record, type, target, now), text


def looks_like_token(text: str) -> bool:
    """Cheap shape check before any database read: URL-safe base64 of a sane length."""
    return 16 <= len(text) <= 128 and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat request says."""

    ok: bool
    reason: str
    latency: float | None  # seconds (Uptime Kuma's ping, in ms)


def beat(query: Mapping[str, str]) -> Beat:
    """A heartbeat from its query parameters, or ValueError naming the one that is wrong."""
    unknown = sorted(set(query) - PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; expected: msg, ping, status")
    status = query.get("status", "up").lower()
    if status not in ("up", "down"):
        raise ValueError(f"status={status!r}: expected up or down")
    latency = None
    ping = query.get("ping", "")
    if ping:
        try:
            latency = float(ping) / 1000
        except ValueError:
            raise ValueError(f"ping={ping!r}: expected milliseconds, e.g. 42") from None
        if not math.isfinite(latency) or latency < 0:
            raise ValueError(f"ping={ping!r}: expected milliseconds, e.g. 42")
    message = "".join(c if c.isprintable() else " " for c in query.get("msg", ""))[:MAX_MESSAGE].strip()
    ok = status == "up"
    reason = "heartbeat" if ok else "heartbeat: down"
    return Beat(ok=ok, reason=f"{reason}: {message}" if message else reason, latency=latency)
