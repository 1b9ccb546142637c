"""The scheduler: first runs spread with the number of checks; a burst queues for a
slot instead of timing itself out; check-now runs at once."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics

import pytest
import uvloop

from dynserver.health import scheduler as scheduler_module
from dynserver.health.probes import Check
from dynserver.health.scheduler import Scheduler
from dynserver.health.state import Result
from dynserver.metrics import Metrics
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


def test_a_cap_too_small_to_keep_up_is_said_and_so_is_catching_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back pressure: with one check in flight at a time and checks that take 0.1 s, ten
    checks due every 0.5 s cannot all start on time; the scheduler says it is behind
    (once), with how much waits, never more than the cap in flight. When checks become
    quick it says it caught up."""
    monkeypatch.setattr(scheduler_module, "BEHIND", 0.3)
    monkeypatch.setattr(scheduler_module, "CAUGHT_UP_AFTER", 0.5)
    work = 0.1
    running = peak = 0

    async def fake_check(spec: Check, clock: object = None) -> Result:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(work)
        running -= 1
        return Result(ok=True, reason="ok", at=asyncio.get_running_loop().time())

    monkeypatch.setattr(scheduler_module, "run_check", fake_check)
    said: list[tuple[bool, scheduler_module.Load]] = []

    async def main() -> tuple[float, scheduler_module.Load | None]:
        nonlocal work
        sched: Scheduler[int] = Scheduler(
            lambda key, result: None,
            rng=random.Random(3),
            max_in_flight=1,
            on_behind=lambda behind, load: said.append((behind, load)),
        )
        sched.set_checks({n: (check(n), 0.5) for n in range(10)})
        behind_load = None
        for _ in range(60):
            await asyncio.sleep(0.05)
            if sched.behind and behind_load is None:
                behind_load = sched.load()
        worst = max(sched.lateness)
        work = 0.0  # the checks become quick: the queue drains
        for _ in range(80):
            await asyncio.sleep(0.05)
            if not sched.behind:
                break
        await sched.stop()
        return worst, behind_load

    worst, load = asyncio.run(main())
    assert peak == 1
    assert worst > 0.3
    assert load is not None and load.behind and load.max_in_flight == 1 and load.in_flight <= 1
    assert said[0][0] is True and said[0][1].waiting > 0 and said[0][1].late > 0.3
    assert [behind for behind, _ in said] == [True, False]


def test_metrics_show_the_cap_and_the_load() -> None:
    load = scheduler_module.Load(checks=20, in_flight=3, max_in_flight=4, waiting=7, behind=True, late=1.5)
    text = Metrics(checks=lambda: load, process=False).render().decode()
    assert "dynserver_checks_in_flight 3.0" in text
    assert "dynserver_checks_in_flight_limit 4.0" in text
    assert "dynserver_checks_waiting 7.0" in text
    assert "dynserver_checks_behind 1.0" in text
    assert "dynserver_checks_scheduled 20.0" in text


def test_plain_http_checks_in_flight_never_pass_the_cap() -> None:
    """The raw-socket path (http.Exchange) counts against the same cap: against a server
    that accepts and never answers, at most max_in_flight sockets are open at once, and
    the rest wait for a slot (their timeout starts when they get one)."""
    from dynserver.model import MonitorType

    monitor = Monitor(name="web", type=MonitorType.HTTP, timeout=0.3)
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    async def main() -> tuple[int, int, list[Result]]:
        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        results: list[Result] = []
        sched: Scheduler[int] = Scheduler(lambda key, result: results.append(result), max_in_flight=5)
        sched.set_checks(
            {
                n: (Check(monitor=monitor, address="127.0.0.1", port=port, path=f"/{n}", headers=()), 60.0)
                for n in range(30)
            }
        )
        sched.check_now()
        peak_in_flight = 0
        for _ in range(40):
            await asyncio.sleep(0.05)
            peak_in_flight = max(peak_in_flight, sched.load().in_flight)
        await sched.stop()
        for writer in held:
            writer.close()
        server.close()
        return peak_in_flight, len(held), results

    peak, accepted, results = asyncio.run(main())
    assert peak == 5
    assert len(results) >= 20 and all(r.reason == "timeout" for r in results)
    assert accepted >= 20


def test_checks_due_together_start_in_one_wake_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """One timer for all checks, woken at most every BATCH seconds: 2,000 checks spread
    over a second need about 1 / BATCH wake-ups, not 2,000."""
    monkeypatch.setattr(scheduler_module, "FIRST_RUNS_PER_SECOND", 2000)
    ticks = 0
    original = Scheduler._tick

    def counting(self: Scheduler[int]) -> None:
        nonlocal ticks
        ticks += 1
        original(self)

    monkeypatch.setattr(Scheduler, "_tick", counting)
    starts, _ = run(monkeypatch, 2000, interval=10.0, seconds=1.3)
    assert len(starts) == 2000
    assert ticks <= 1.3 / scheduler_module.BATCH + 5


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_results_of_one_loop_pass_are_handed_over_in_one_call(
    monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    """on_results: the results that came during one pass of the loop arrive together,
    right after that pass (not one call each, not a timer later); a later pass's results
    are another call; stop hands over results not handed over yet. On both loops
    (dynserver serves on uvloop, whose I/O callbacks run outside its ready queue)."""
    gate: asyncio.Event | None = None

    async def fake_check(spec: Check, clock: object = None) -> Result:
        assert gate is not None
        await gate.wait()  # every check ends in the same pass: the one after gate.set()
        return Result(ok=True, reason=f"ok {spec.port}", at=asyncio.get_running_loop().time())

    monkeypatch.setattr(scheduler_module, "run_check", fake_check)
    calls: list[list[int]] = []

    async def main() -> None:
        nonlocal gate
        gate = asyncio.Event()
        sched: Scheduler[int] = Scheduler(
            on_results=lambda results: calls.append([key for key, _ in results]), rng=random.Random(3)
        )
        with pytest.raises(TypeError):
            Scheduler(lambda key, result: None, on_results=lambda results: None)
        sched.set_checks({n: (check(n), 60.0) for n in range(10)})
        while sched.load().in_flight < 10:  # all started, all waiting at the gate
            await asyncio.sleep(0.01)
        gate.set()
        await asyncio.sleep(0)  # runs after the checks end (same pass), before the hand-over
        assert calls == []
        await asyncio.sleep(0)
        assert len(calls) == 1 and sorted(calls[0]) == list(range(10))  # in the order they ended
        gate = asyncio.Event()
        sched.check_now([3, 4])
        while sched.load().in_flight < 2:
            await asyncio.sleep(0.01)
        gate.set()
        await asyncio.sleep(0)
        assert len(calls) == 1  # ended, not handed over yet: stop hands them over
        await sched.stop()
        assert len(calls) == 2 and sorted(calls[1]) == [3, 4]

    (uvloop.run if loop == "uvloop" else asyncio.run)(main())


def test_due_times_sit_in_slots_and_checks_start_in_the_order_they_fell_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2,000 checks due within a second: a slot per BATCH seconds (not a heap entry per
    check), each check started at its due time or at most a slot (and the loop's
    wake-up) after it, never before, and in the order they fell due."""
    monkeypatch.setattr(scheduler_module, "FIRST_RUNS_PER_SECOND", 2000)
    started: list[tuple[int, float]] = []

    async def fake_check(spec: Check, clock: object = None) -> Result:
        loop = asyncio.get_running_loop()
        started.append((spec.port or 0, loop.time()))
        return Result(ok=True, reason="ok", at=loop.time())

    monkeypatch.setattr(scheduler_module, "run_check", fake_check)

    async def main() -> tuple[dict[int, float | None], int, float]:
        sched: Scheduler[int] = Scheduler(lambda key, result: None, rng=random.Random(5), max_in_flight=5000)
        sched.set_checks({n: (check(n), 60.0) for n in range(2000)})
        due = sched.scheduled()
        slots = len(sched._slot_order)
        await asyncio.sleep(1.3)
        await sched.stop()
        return due, slots, statistics.median(sched.lateness)

    due, slots, late = asyncio.run(main())
    assert slots <= 1 / scheduler_module.BATCH + 2
    # Woken when a slot begins, what is due of it starts then: half a slot late on
    # average, as with one heap (woken at a slot's end it was a whole slot).
    assert late < scheduler_module.BATCH
    assert len(started) == 2000
    for key, at in started:
        when = due[key]
        assert when is not None and when - 0.002 <= at <= when + scheduler_module.BATCH + 0.1
    order = [key for key, _ in started]
    assert order == sorted(order, key=lambda key: due[key] or 0.0)
