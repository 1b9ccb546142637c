"""The scheduler: first runs spread with the number of checks; a burst queues for a
slot instead of timing itself out; check-now runs at once."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from dynserver.health import scheduler as scheduler_module
from dynserver.health.probes import Check
from dynserver.health.scheduler import Scheduler
from dynserver.health.state import Result
from dynserver.model import Monitor

MONITOR = Monitor(name="m", type="tcp", port=1)


def check(n: int) -> Check:
    return Check(monitor=MONITOR, address=f"127.0.0.{n % 250 + 1}", port=n, path="/", headers=())


def run(
    monkeypatch: pytest.MonkeyPatch, count: int, interval: float, seconds: float, work: float = 0.0
) -> tuple[list[float], int]:
    """Start ``count`` fake checks; return each first start time and the peak in flight."""
    starts: dict[int, float] = {}
    peak = 0
    running = 0

    async def fake_check(spec: Check, clock: object = None) -> Result:
        nonlocal running, peak
        loop = asyncio.get_running_loop()
        starts.setdefault(spec.port or 0, loop.time())
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(work)
        running -= 1
        return Result(ok=True, reason="ok", at=loop.time())

    monkeypatch.setattr(scheduler_module, "run_check", fake_check)

    async def main() -> None:
        sched: Scheduler[int] = Scheduler(lambda key, result: None, rng=random.Random(1))
        began = asyncio.get_running_loop().time()
        sched.set_checks({n: (check(n), interval) for n in range(count)})
        await asyncio.sleep(seconds)
        await sched.stop()
        for key in starts:
            starts[key] -= began

    asyncio.run(main())
    return sorted(starts.values()), peak


def test_a_few_checks_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    starts, _ = run(monkeypatch, 3, interval=10.0, seconds=1.2)
    assert len(starts) == 3 and max(starts) <= 1.0


def test_thousands_of_first_runs_are_spread_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_module, "FIRST_RUNS_PER_SECOND", 1000)
    monkeypatch.setattr(scheduler_module, "MAX_IN_FLIGHT", 50)
    starts, peak = run(monkeypatch, 2000, interval=10.0, seconds=2.3, work=0.05)
    # 2000 checks at 1000/s: spread over ~2 s, not bunched into the first second
    assert len(starts) > 1500
    assert max(starts) > 1.5
    assert sum(1 for s in starts if s < 1.0) < 1300
    assert peak <= 50


def test_interval_is_the_longest_wait_between_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits are jittered below the interval, never above: a failure is always seen within
    interval + timeout. Due times (start minus lateness) are what the scheduler chose,
    whatever the machine's load did to the starts."""
    monkeypatch.setattr(scheduler_module, "JITTER", 0.1)
    interval = 0.2
    starts: list[float] = []

    async def fake_check(spec: Check, clock: object = None) -> Result:
        loop = asyncio.get_running_loop()
        starts.append(loop.time())
        return Result(ok=True, reason="ok", at=loop.time())

    monkeypatch.setattr(scheduler_module, "run_check", fake_check)

    async def main() -> list[float]:
        sched: Scheduler[int] = Scheduler(lambda key, result: None, rng=random.Random(7))
        sched.set_checks({1: (check(1), interval)})
        await asyncio.sleep(2.5)
        await sched.stop()
        return [start - late for start, late in zip(starts, sched.lateness, strict=True)]

    dues = asyncio.run(main())
    gaps = [later - earlier for earlier, later in itertools.pairwise(dues)]
    assert len(gaps) >= 10
    # (a check that starts over an interval late would restart the cadence from "now":
    # on this idle loop, with checks that take no time, that needs a 0.18 s stall)
    assert all(0.9 * interval - 1e-6 <= gap <= interval + 1e-6 for gap in gaps), gaps
    assert len({round(gap, 4) for gap in gaps}) > len(gaps) // 2  # not a fixed cadence
    assert sum(gaps) / len(gaps) < 0.99 * interval
