"""The scheduler: every check runs on its own cadence, from start-up, whether or not
queries arrive (PowerDNS and Technitium check lazily; their users complain).

One task per distinct check. ``interval`` is the longest wait between two checks: each
wait is drawn from the last tenth below it (so thousands of checks do not move in
lockstep), never above it, so a failure is always seen within ``interval + timeout``.
A slow check delays only itself. Results go to a callback in the event loop, which never
waits on a check.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from dynserver.health.probes import Check, run_check
from dynserver.health.state import Result

log = logging.getLogger(__name__)

K = TypeVar("K")
# Each wait is interval * (1 - uniform(0, JITTER)): up to 10 % shorter, never longer.
# Symmetric jitter would break the bound (interval + timeout) users plan with; checks
# run on average 5 % more often than a fixed interval.
JITTER = 0.1
FIRST_RUN_SPREAD = 1.0  # start-up: a few checks all run within this many seconds ("at once")
FIRST_RUNS_PER_SECOND = 500  # ... thousands are spread at this rate (within one interval)
# Checks running at once. A check's timeout starts when it gets a slot: a burst queues
# here instead of timing itself out on our own CPU (a false "timeout", a false failure).
MAX_IN_FLIGHT = 256


class Scheduler(Generic[K]):
    def __init__(
        self,
        on_result: Callable[[K, Result], None],
        *,
        rng: random.Random | None = None,
        on_lateness: Callable[[float], None] | None = None,
    ) -> None:
        self._on_result = on_result
        self._on_lateness = on_lateness or (lambda seconds: None)
        self._rng = rng or random.Random()
        self._tasks: dict[K, asyncio.Task[None]] = {}
        self._specs: dict[K, tuple[Check, float]] = {}
        self._now: set[K] = set()  # checks asked to run at once (check_now)
        # How late each check started against its due time (seconds): the last ones here,
        # every one to on_lateness (the /metrics histogram).
        self.lateness: deque[float] = deque(maxlen=20_000)
        self.runs = 0
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._spread: dict[K, float] = {}
        self._waiters: dict[K, asyncio.Future[None]] = {}  # checks waiting for their due time

    def set_checks(self, checks: dict[K, tuple[Check, float]]) -> None:
        """Run exactly these checks (check, interval): start new ones, stop gone ones."""
        for key in list(self._tasks):
            if key not in checks or checks[key] != self._specs[key]:
                self._tasks.pop(key).cancel()
                self._specs.pop(key)
                self._now.discard(key)
        # Spread first runs so their due times (and every later cycle's, which follow
        # from them) do not bunch up: at once for a few checks, over seconds for thousands.
        spread = max(FIRST_RUN_SPREAD, len(checks) / FIRST_RUNS_PER_SECOND)
        for key, spec in checks.items():
            if key not in self._tasks:
                self._spread[key] = min(spread, spec[1])
                self._specs[key] = spec
                self._tasks[key] = asyncio.create_task(self._run(key, *spec), name=f"check {key}")

    def check_now(self, keys: list[K] | None = None) -> None:
        """Run these checks (default: all) now instead of at their next due time."""
        for key in keys if keys is not None else list(self._tasks):
            if key in self._tasks:
                self._now.add(key)
                waiter = self._waiters.get(key)
                if waiter is not None:
                    _release(waiter)

    @property
    def running(self) -> int:
        return sum(1 for task in self._tasks.values() if not task.done())

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._specs.clear()
        self._now.clear()

    async def _run(self, key: K, check: Check, interval: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self._rng.uniform(0, self._spread.pop(key, min(interval, FIRST_RUN_SPREAD)))
        while True:
            if loop.time() < due and key not in self._now:
                # A future released by a timer (or by check_now): no timeout context that
                # expires by cancelling the task and raising, once per check, thousands
                # of times a second at scale.
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters[key] = waiter
                timer = loop.call_at(due, _release, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    if self._waiters.get(key) is waiter:  # not a restarted check's
                        del self._waiters[key]
            started = loop.time()
            if key in self._now:
                self._now.discard(key)
                due = started  # "check now": not late
            late = max(0.0, started - due)
            self.lateness.append(late)
            self._on_lateness(late)
            try:
                async with self._slots:
                    result = await run_check(check, clock=loop.time)
            except Exception as error:  # pragma: no cover - a probe bug must not stop checking
                log.exception("event=check_crashed check=%r", str(key))
                result = Result(ok=False, reason=f"internal error: {error}", at=loop.time())
            self.runs += 1
            self._on_result(key, result)
            due = max(due + interval * (1 - self._rng.uniform(0, JITTER)), loop.time())


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
