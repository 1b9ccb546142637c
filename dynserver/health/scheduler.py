"""The scheduler: every check runs on its own cadence, from start-up, whether or not
queries arrive (PowerDNS and Technitium check lazily; their users complain).

``interval`` is the longest wait between two checks: each wait is drawn from the last
tenth below it (so thousands of checks do not move in lockstep), never above it, so a
failure is always seen within ``interval + timeout``. A slow check delays only itself.
Results go to a callback in the event loop, which never waits on a check.

How it stays cheap at 20,000 checks every 10 s (docs/benchmarks.md, "Check capacity"):

- **One timer, batches.** Due times sit in slots of ``BATCH`` seconds; one loop timer
  wakes when the earliest begins, at most every ``BATCH`` seconds, and starts every
  check due by then (in the order they fell due). No task, future or timer per waiting
  check, and no heap of every check: a due time is an append to its slot's list.
- **Plain HTTP without a coroutine.** An ``http`` check of an IP address without retries
  runs as an ``http.Exchange``: callbacks on a raw non-blocking socket, watched by the
  scheduler's ``http.Poller`` (one epoll for all of them, timeouts in a wheel swept by one
  timer: no loop reader or timer per check). Every other check (HTTPS, TCP, DNS, ICMP,
  retries, redirects to follow) runs ``probes.run_check`` in a task.
- **A cap on checks in flight** (``max_in_flight``), and with it on the sockets open for
  checks. A check's timeout starts when it gets a slot: a burst queues here (first
  come, first served) instead of timing itself out on our own CPU.
- **Results of one loop pass together** (``on_results``): the results that arrive while
  the event loop runs one pass of callbacks are handed over in one call, right after
  them (``loop.call_soon``: before the loop polls for I/O again, with no timer), so the
  runtime decides and publishes them together: one snapshot swap for the pass, not one
  per transition. At start every target's first result is a transition, and one swap
  each (1-3 ms) made 20,000 targets a backlog of a minute (docs/benchmarks.md, issue 19).
- **Back pressure is said, not hidden.** When checks start more than ``BEHIND`` seconds
  late, ``behind`` turns true and ``on_behind`` is told (the runtime makes an event, a log
  line, a metric and a dashboard banner of it); it turns false once checks start on
  time again for ``CAUGHT_UP_AFTER`` seconds.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from dynserver.health import http
from dynserver.health.probes import Check, FastHttp, fast_http, run_check
from dynserver.health.state import Result

log = logging.getLogger(__name__)

K = TypeVar("K")
# Each wait is interval * (1 - uniform(0, JITTER)): up to 10 % shorter, never longer.
# Symmetric jitter would break the bound (interval + timeout) users plan with; checks
# run on average 5 % more often than a fixed interval.
JITTER = 0.1
FIRST_RUN_SPREAD = 1.0  # start-up: a few checks all run within this many seconds ("at once")
FIRST_RUNS_PER_SECOND = 500  # ... thousands are spread at this rate (within one interval)
# Checks running at once (each holds one socket while it runs).
MAX_IN_FLIGHT = 256
# The timer wakes at most this often: the checks due within it start together.
BATCH = 0.01
# Checks starting later than this are "behind" (the capacity target's lateness bound)...
BEHIND = 1.0
# ... and the scheduler has caught up once none started later than BEHIND / 2 for this long.
CAUGHT_UP_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class Load:
    """What the scheduler carries now (/metrics, the dashboard, the back-pressure event)."""

    checks: int  # scheduled
    in_flight: int
    max_in_flight: int
    waiting: int  # due, waiting for a slot
    behind: bool
    late: float  # seconds: the lateness of the latest check started


def _due_time(entry: tuple[float, object]) -> float:
    return entry[0]


class _Run:
    """A check run by ``run_check`` in a task (anything ``FastHttp`` does not cover)."""

    __slots__ = ("due", "key", "task")

    def __init__(self, key: object, due: float) -> None:
        self.key = key
        self.due = due
        self.task: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class Scheduler(Generic[K]):
    def __init__(
        self,
        on_result: Callable[[K, Result], None] | None = None,
        *,
        on_results: Callable[[list[tuple[K, Result]]], None] | None = None,
        rng: random.Random | None = None,
        on_lateness: Callable[[float], None] | None = None,
        max_in_flight: int | None = None,
        on_behind: Callable[[bool, Load], None] | None = None,
    ) -> None:
        """``on_result`` is called with each result as it comes; ``on_results`` (instead)
        with the results of one loop pass at once, in the order they came."""
        if (on_result is None) == (on_results is None):
            raise TypeError("Scheduler takes on_result or on_results")
        self._on_result = on_result
        self._on_results = on_results
        self._results: list[tuple[K, Result]] = []  # this pass's, for on_results
        self._on_lateness = on_lateness or (lambda seconds: None)
        self._on_behind = on_behind or (lambda behind, load: None)
        self._rng = rng or random.Random()
        self.max_in_flight = max(1, max_in_flight if max_in_flight is not None else MAX_IN_FLIGHT)
        self._specs: dict[K, tuple[Check, float]] = {}
        self._fast: dict[K, FastHttp | None] = {}
        self._due: dict[K, float] = {}  # next due time of each check not queued or running
        # Due times in slots of BATCH seconds (a slot's number: its end / BATCH), and the
        # numbers of the slots in a heap: a check is an append, not a push into a heap of
        # 20,000 (whose sift, a float compare through two pointers per level, was 8 % of
        # the event loop at 20,000 targets in py-spy). Stale entries are skipped.
        self._slots: dict[int, list[tuple[float, K]]] = {}
        self._slot_order: list[int] = []
        self._queue: deque[tuple[K, float]] = deque()  # due, waiting for a slot
        self._running: dict[K, http.Exchange | _Run] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: http.Poller | None = None  # the sockets and timeouts of plain-HTTP checks
        # How late each check started against its due time (seconds): the last ones here,
        # every one to on_lateness (the /metrics histogram).
        self.lateness: deque[float] = deque(maxlen=20_000)
        self.runs = 0
        self.behind = False
        self._late = 0.0
        self._last_late_at = 0.0

    # -- the checks -----------------------------------------------------------------

    def set_checks(self, checks: dict[K, tuple[Check, float]]) -> None:
        """Run exactly these checks (check, interval): start new ones, stop gone ones.
        An unchanged check keeps its schedule."""
        loop = self._loop = asyncio.get_running_loop()
        for key in [k for k in self._specs if k not in checks or checks[k] != self._specs[k]]:
            self._forget(key)
        # Spread first runs so their due times (and every later cycle's, which follow
        # from them) do not bunch up: at once for a few checks, over seconds for thousands.
        spread = max(FIRST_RUN_SPREAD, len(checks) / FIRST_RUNS_PER_SECOND)
        now = loop.time()
        for key, spec in checks.items():
            if key not in self._specs:
                self._specs[key] = spec
                self._fast[key] = fast_http(spec[0])
                self._push(key, now + self._rng.uniform(0, min(spread, spec[1])))
        self._arm(now)

    def check_now(self, keys: list[K] | None = None) -> None:
        """Run these checks (default: all) now instead of at their next due time."""
        if self._loop is None:
            return
        now = self._loop.time()
        for key in keys if keys is not None else list(self._specs):
            if key in self._due:  # waiting for its due time (not queued, not running)
                self._push(key, now)
        self._arm(now)

    @property
    def running(self) -> int:
        """How many checks are scheduled."""
        return len(self._specs)

    def scheduled(self) -> dict[K, float | None]:
        """Each check and its next due time (None: queued or running now)."""
        return {key: self._due.get(key) for key in self._specs}

    def load(self) -> Load:
        return Load(
            checks=len(self._specs),
            in_flight=len(self._running),
            max_in_flight=self.max_in_flight,
            waiting=len(self._queue),
            behind=self.behind,
            late=self._late,
        )

    async def stop(self) -> None:
        self._hand_over()  # results already in are results: not dropped
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, float("inf")
        tasks = [run.task for run in self._running.values() if isinstance(run, _Run) and run.task]
        for key in list(self._specs):
            self._forget(key)
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, key: K) -> None:
        self._specs.pop(key, None)
        self._fast.pop(key, None)
        self._due.pop(key, None)  # its slot and queue entries are skipped from now on
        run = self._running.pop(key, None)
        if run is not None:
            run.cancel()

    # -- timing ---------------------------------------------------------------------

    def _push(self, key: K, due: float) -> None:
        self._due[key] = due
        slot = math.ceil(due / BATCH)
        bucket = self._slots.get(slot)
        if bucket is None:
            bucket = self._slots[slot] = []
            heapq.heappush(self._slot_order, slot)
        bucket.append((due, key))

    def _arm(self, now: float) -> None:
        """Wake when the earliest slot begins (not sooner than BATCH after now, so what
        falls due meanwhile starts in the same batch)."""
        if not self._slot_order or self._loop is None:
            return
        at = max((self._slot_order[0] - 1) * BATCH, now + BATCH)
        if at >= self._timer_at - BATCH / 2:
            return  # the timer set will do
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(at, self._tick), at

    def _tick(self) -> None:
        assert self._loop is not None
        self._timer, self._timer_at = None, float("inf")
        now = self._loop.time()
        order, slots, due_of, queue = self._slot_order, self._slots, self._due, self._queue
        while order:
            slot = order[0]
            if slot * BATCH <= now:  # the whole slot is due
                bucket = slots.pop(heapq.heappop(order))
            elif (slot - 1) * BATCH < now:  # the slot now falls in: what of it is due
                whole = slots[slot]
                bucket = [entry for entry in whole if entry[0] <= now]
                if len(bucket) == len(whole):
                    del slots[heapq.heappop(order)]
                elif bucket:
                    slots[slot] = [entry for entry in whole if entry[0] > now]
            else:
                break
            if len(bucket) > 1:
                bucket.sort(key=_due_time)  # first due, first started
            for due, key in bucket:
                if due_of.get(key) == due:
                    del due_of[key]
                    queue.append((key, due))
            if slot * BATCH > now:
                break  # the rest is not due yet
        self._start_queued(now)
        self._arm(now)

    def _start_queued(self, now: float) -> None:
        queue, running, specs = self._queue, self._running, self._specs
        while queue and len(running) < self.max_in_flight:
            key, due = queue.popleft()
            if key not in specs or key in running or key in self._due:
                continue  # removed, replaced or rescheduled meanwhile
            late = now - due if now > due else 0.0
            self._started_late(late, now)
            fast = self._fast[key]
            if fast is not None:
                poller = self._poller
                if poller is None:
                    poller = self._poller = http.Poller(self._loop)  # type: ignore[arg-type]
                exchange = http.Exchange(
                    poller,
                    self._fast_done,
                    head_only=fast.head_only,
                    max_bytes=fast.check.monitor.max_response_bytes,
                )
                exchange.key, exchange.due, exchange.plan = key, due, fast
                exchange.started = time.monotonic()  # for the latency (the loop's clock is coarser)
                running[key] = exchange
                try:
                    fast.start(exchange)
                except Exception as error:  # pragma: no cover - a bug must not stop the others
                    log.exception("event=check_crashed check=%r", str(key))
                    self._loop.call_soon(exchange.fail, error)  # type: ignore[union-attr]
            else:
                self._start_task(key, due)

    def _started_late(self, late: float, now: float) -> None:
        self.lateness.append(late)
        self._on_lateness(late)
        self._late = late
        if late > BEHIND / 2:
            self._last_late_at = now
        if late > BEHIND and not self.behind:
            self.behind = True
            self._on_behind(True, self.load())
        elif self.behind and now - self._last_late_at >= CAUGHT_UP_AFTER:
            self.behind = False
            self._on_behind(False, self.load())

    def _start_task(self, key: K, due: float) -> None:
        run = _Run(key, due)
        self._running[key] = run
        loop = self._loop
        assert loop is not None
        run.task = loop.create_task(self._run_task(key, run), name=f"check {key}")

    async def _run_task(self, key: K, run: _Run) -> None:
        check = self._specs[key][0]
        loop = asyncio.get_running_loop()
        try:
            result = await run_check(check, clock=loop.time)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # pragma: no cover - a probe bug must not stop checking
            log.exception("event=check_crashed check=%r", str(key))
            result = Result(ok=False, reason=f"internal error: {error}", at=loop.time())
        if self._running.get(key) is run:
            self._finished(key, run.due, result)

    def _fast_done(
        self, exchange: http.Exchange, status: int, body: bytes, location: str | None, error: Exception | None
    ) -> None:
        key: K = exchange.key  # type: ignore[assignment]
        if self._running.get(key) is not exchange:
            return
        plan: FastHttp = exchange.plan  # type: ignore[assignment]
        assert self._loop is not None
        self._finished(
            key, exchange.due, plan.result(status, body, error, exchange.started, self._loop.time())
        )

    def _finished(self, key: K, due: float, result: Result) -> None:
        del self._running[key]
        self.runs += 1
        loop = self._loop
        assert loop is not None
        now = loop.time()
        spec = self._specs.get(key)
        if spec is not None:
            self._push(key, max(due + spec[1] * (1 - self._rng.uniform(0, JITTER)), now))
        if self._on_result is not None:
            try:
                self._on_result(key, result)
            except Exception:  # pragma: no cover - a bug there must not stop every other check
                log.exception("event=result_handler_crashed check=%r", str(key))
        else:
            if not self._results:  # the first of this pass: hand them over once the pass is done
                loop.call_soon(self._hand_over)
            self._results.append((key, result))
        self._start_queued(now)
        self._arm(now)

    def _hand_over(self) -> None:
        """The results of the pass that just ran, in one call (``on_results``)."""
        results, self._results = self._results, []
        if not results or self._on_results is None:
            return
        try:
            self._on_results(results)
        except Exception:  # a bug there must not stop every other check
            log.exception("event=result_handler_crashed checks=%d", len(results))
