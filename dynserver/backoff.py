"""The one backoff schedule: how long to wait before each retry. Pure: the attempt
number, the provider's Retry-After and any randomness are arguments, never read here.

Used by check retries (health/probes.py), alert deliveries (notify/sender.py), mirror
pushes (mirror/worker.py) and NOTIFY resends (xfr/notify.py), each with its own numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``first`` seconds before the first retry, ``factor`` times longer before each
    next one, never more than ``cap`` (which wins even over ``first``: a check whose
    timeout is shorter than its first backoff retries within that timeout).

    ``jitter`` is the share of a wait that randomness may take off (0.1: up to 10 %
    shorter), so that many retries started by one outage spread out; it only shortens,
    so ``cap`` stays a true upper bound. 0 (the default) keeps every wait exact."""

    first: float
    factor: float = 2.0
    cap: float = math.inf
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.first <= 0:
            raise ValueError(f"backoff: the first wait must be positive, got {self.first}")
        if self.factor < 1:
            raise ValueError(f"backoff: factor {self.factor} must be at least 1 (waits never shrink)")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff: jitter {self.jitter} must be in [0, 1)")

    def delay(self, attempt: int, *, retry_after: float | None = None, random: float = 0.0) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry).

        ``retry_after``: what the other side asked for (HTTP 429 Retry-After); when given,
        it is the wait, longer or shorter than ours: it knows when its limit lifts.
        ``random``: a value in [0, 1) the caller drew; it scales ``jitter``."""
        if retry_after:
            return retry_after
        wait = min(self.first * self.factor ** (attempt - 1), self.cap)
        if self.jitter:
            wait -= wait * self.jitter * random
        return wait
