"""The checks a web page or API client starts: shared while running or recent, and paid for
from a budget, so a public page cannot make dynserver spray queries at the world."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dynserver.errors import RequestError
from dynserver.propagation.chain import Chain, follow_chain
from dynserver.propagation.gathering import DEFAULT_TIMEOUT, dns_asker, gather
from dynserver.propagation.model import Ask, Endpoint, Expected, Plan, Report

CACHE_SECONDS = 2.0  # a result is reused this long (per record, per hostname)
BUDGET_RATE = 2.0  # new (uncached) checks per second, over all records and hostnames...
BUDGET_BURST = 20  # ... with this many at once
CHAIN_CACHE_LIMIT = 256  # hostnames remembered


class Busy(RequestError):
    """Too many new checks right now; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many propagation checks; try again in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class _Cached:
    at: float
    task: asyncio.Future[Any]


@dataclass
class Checker:
    """Runs checks, shares a running or recent one (``cache_seconds``) between every
    page and API client, and spends a budget (a token bucket: ``rate`` per second,
    ``burst`` at once) on new ones. Out of budget, the last result is served even if
    older, or Busy is raised. ``ask`` replaces the network (tests, other transports)."""

    timeout: float = DEFAULT_TIMEOUT
    ask: Ask | None = None
    cache_seconds: float = CACHE_SECONDS
    rate: float = BUDGET_RATE
    burst: int = BUDGET_BURST
    clock: Callable[[], float] = time.monotonic
    _reports: dict[tuple[str, str], _Cached] = field(default_factory=dict)
    _chains: OrderedDict[tuple[str, str], _Cached] = field(default_factory=OrderedDict)
    _tokens: float = -1.0
    _refilled: float = 0.0
    new_checks: int = 0  # how many checks were started (not served from the cache)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._refilled = self.clock()
        if self.ask is None:
            self.ask = dns_asker(self.timeout)

    def _spend(self) -> float | None:
        """Take a token; None if one was there, else the seconds until there is one."""
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate

    async def _cached(
        self, table: dict[tuple[str, str], _Cached], key: tuple[str, str], start: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, float]:
        """The result for ``key`` and its age in seconds."""
        now = self.clock()
        entry = table.get(key)
        usable = entry is not None and not _failed(entry.task)
        if entry is not None and usable and (not entry.task.done() or now - entry.at < self.cache_seconds):
            return await asyncio.shield(entry.task), now - entry.at
        wait = self._spend()
        if wait is not None:
            if entry is not None and usable and entry.task.done():
                return entry.task.result(), now - entry.at
            raise Busy(wait)
        self.new_checks += 1
        fresh = _Cached(now, asyncio.ensure_future(start()))
        table[key] = fresh
        if isinstance(table, OrderedDict):
            table.move_to_end(key)
            while len(table) > CHAIN_CACHE_LIMIT:
                table.popitem(last=False)
        return await asyncio.shield(fresh.task), 0.0

    async def report(self, plan: Plan, current: Callable[[], Expected] | None = None) -> tuple[Report, float]:
        """A check of ``plan``'s record (recent ones are shared) and its age in seconds."""
        assert self.ask is not None
        ask = self.ask
        result, age = await self._cached(
            self._reports, (plan.name, plan.type), lambda: gather(plan, ask, current)
        )
        return result, age

    async def chain(self, hostname: str, qtype: str, resolver: Endpoint | None) -> Chain:
        assert self.ask is not None
        ask = self.ask
        result, _ = await self._cached(
            self._chains, (hostname, qtype), lambda: follow_chain(hostname, qtype, resolver, ask)
        )
        return result  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Cancel checks still running (at shutdown)."""
        pending = [e.task for t in (self._reports, self._chains) for e in t.values() if not e.task.done()]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _failed(task: asyncio.Future[Any]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)
