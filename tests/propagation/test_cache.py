"""The Checker's cache and budget, with a fake clock: shared checks, Busy past the
budget, a bounded chain cache, failures never cached."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from dynserver import propagation as p
from dynserver.propagation import Endpoint, Reply, cache
from tests.propagation.replies import ZONE, plan


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting(calls: list[str]) -> p.Ask:
    async def ask(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Reply:
        calls.append(qname)
        await asyncio.sleep(0.01)
        return Reply(None, "timeout after 1 s")

    return ask


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_a_recent_or_running_check_is_shared() -> None:
    async def test() -> None:
        calls: list[str] = []
        clock = Clock()
        checker = p.Checker(ask=counting(calls), clock=clock)
        the_plan = plan(secondaries=(Endpoint("192.0.2.1"),))
        (first, _), (second, _) = await asyncio.gather(checker.report(the_plan), checker.report(the_plan))
        assert first is second and checker.new_checks == 1  # one in flight, shared
        clock.now += p.CACHE_SECONDS - 0.1
        third, age3 = await checker.report(the_plan)
        assert third is first and age3 == pytest.approx(p.CACHE_SECONDS - 0.1)
        clock.now += 0.2
        fourth, _ = await checker.report(the_plan)
        assert fourth is not first and checker.new_checks == 2
        assert len(calls) == 4  # two checks of one secondary: record + SOA each

    run(test)


def test_out_of_budget_the_last_result_is_served_or_busy_is_raised() -> None:
    async def test() -> None:
        clock = Clock()
        checker = p.Checker(ask=counting([]), clock=clock, rate=0.5, burst=2)
        one, two, three = (plan(name=f"r{i}.{ZONE}") for i in range(3))
        await checker.report(one)
        await checker.report(two)
        with pytest.raises(p.Busy) as busy:
            await checker.report(three)
        assert busy.value.retry_after == pytest.approx(2.0)  # one token per 2 s
        clock.now += 10  # the cache expired; the bucket holds 2 again
        await checker.report(three)
        await checker.report(two)
        _, age = await checker.report(one)  # no token left: the old result, with its age
        assert age == pytest.approx(10.0)
        assert checker.new_checks == 4

    run(test)


def test_the_chain_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "CHAIN_CACHE_LIMIT", 3)  # the module Checker reads it from

    async def test() -> None:
        calls: list[str] = []
        checker = p.Checker(ask=counting(calls), clock=Clock(), burst=100)
        for i in range(5):
            await checker.chain(f"h{i}.example.com", "A", Endpoint("192.0.2.53"))
        assert list(k[0] for k in checker._chains) == ["h2.example.com", "h3.example.com", "h4.example.com"]
        await checker.chain("h4.example.com", "A", Endpoint("192.0.2.53"))
        assert len(calls) == 5  # the last one came from the cache

    run(test)


def test_a_failed_check_is_not_served_from_the_cache() -> None:
    async def test() -> None:
        attempts = []

        async def broken(where: Endpoint, qname: str, qtype: str, recursion: bool) -> Reply:
            attempts.append(qname)
            raise RuntimeError("a bug")

        checker = p.Checker(ask=broken, clock=Clock())
        the_plan = plan(secondaries=(Endpoint("192.0.2.1"),))
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await checker.report(the_plan)
        assert checker.new_checks == 2

    run(test)
