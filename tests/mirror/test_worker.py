"""The mirror worker against a scripted provider: coalescing, backoff, Retry-After,
permanent errors, drift, events and redaction, without a network. Times are short (tens
of milliseconds); waits poll the worker's state, never sleep for a fixed time to see
something happen."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from dynserver.mirror.base import Desired, MirrorError, Outcome
from dynserver.mirror.worker import MirrorWorker
from dynserver.model import DynamicRecord, MirrorRecord, Target
from dynserver.store.db import EventRow
from tests.support import until

TOKEN = "tok-Very-Secret-0123456789"
APP = (b"app", b"dyn", b"example", b"test")
WEB = (b"web", b"dyn", b"example", b"test")


def record(name: tuple[bytes, ...] = APP, mirror_name: str = "www.example.com") -> DynamicRecord:
    return DynamicRecord(
        zone=name[1:],
        name=name,
        type="A",
        ttl=30,
        targets=(Target("a", "192.0.2.1"), Target("b", "192.0.2.2", priority=2)),
        mirror=(MirrorRecord("cf", mirror_name, 60),),
    )


class Scripted:
    """A provider that holds records in a dict and fails as told."""

    kind = "cloudflare"

    def __init__(self) -> None:
        self.state: dict[str, tuple[str, ...]] = {}
        self.calls: list[tuple[float, Desired]] = []
        self.errors: list[MirrorError] = []
        self.gate: asyncio.Event | None = None  # when set: each sync waits for it

    @property
    def secrets(self) -> tuple[str, ...]:
        return (TOKEN,)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def sync(self, desired: Desired) -> Outcome:
        self.calls.append((time.monotonic(), desired))
        if self.gate is not None:
            await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)
        before = self.state.get(desired.name, ())
        self.state[desired.name] = desired.values
        actions = () if before == desired.values else (f"set {','.join(desired.values)}",)
        return Outcome(actions, before, desired.values, f"sync: {len(self.calls)}")


Scenario = Callable[[MirrorWorker, Scripted, list[EventRow]], Awaitable[None]]


def run(scenario: Scenario, *records: DynamicRecord, interval: float = 3600.0, **options: float) -> None:
    async def main() -> None:
        provider = Scripted()
        events: list[EventRow] = []
        settings = {"settle": 0.02, "first_backoff": 0.01, **options}
        worker = MirrorWorker(
            records or (record(),), {"cf": provider}, {"cf": interval}, event=events.append, **settings
        )
        try:
            await scenario(worker, provider, events)
        finally:
            await worker.stop()

    asyncio.run(main())


def test_start_pushes_the_current_answer_once() -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        await worker.start([(record(), ("192.0.2.1",))])
        await until(lambda: bool(events))
        assert [c[1].values for c in provider.calls] == [("192.0.2.1",)]
        assert (events[0].kind, events[0].result, events[0].target) == ("mirror", "ok", "cf")
        assert events[0].record == "app.dyn.example.test."
        assert events[0].reason == "www.example.com A at cf: set 192.0.2.1"
        [status] = worker.status()
        assert (status.state, status.in_sync, status.provider) == ("ok", True, ("192.0.2.1",))

    run(scenario)


def test_a_burst_of_changes_is_one_push_of_the_latest_answer() -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        await worker.start([(record(), ("192.0.2.1",))])
        await until(lambda: worker.status()[0].in_sync)
        for values in (("192.0.2.2",), ("192.0.2.1", "192.0.2.2"), ("192.0.2.3",), ("192.0.2.2",)):
            worker.submit(record(), values)
        await until(lambda: provider.state["www.example.com"] == ("192.0.2.2",))
        await asyncio.sleep(0.1)  # nothing else may follow
        assert [c[1].values for c in provider.calls] == [("192.0.2.1",), ("192.0.2.2",)]

    run(scenario)


def test_a_change_during_a_push_is_pushed_next_with_the_newest_answer() -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        provider.gate = asyncio.Event()
        await worker.start([(record(), ("192.0.2.1",))])
        await until(lambda: len(provider.calls) == 1)  # the push hangs at the provider
        worker.submit(record(), ("192.0.2.2",))
        worker.submit(record(), ("192.0.2.3",))
        provider.gate.set()
        await until(lambda: provider.state.get("www.example.com") == ("192.0.2.3",))
        assert [c[1].values for c in provider.calls] == [("192.0.2.1",), ("192.0.2.3",)]

    run(scenario)


def test_a_ttl_only_change_of_the_answer_is_not_pushed() -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        await worker.start([(record(), ("192.0.2.1",))])
        await until(lambda: worker.status()[0].in_sync)
        worker.submit(record(), ("192.0.2.1",))  # the pending TTL: same values
        await asyncio.sleep(0.1)
        assert len(provider.calls) == 1

    run(scenario)


def test_transient_errors_are_retried_with_backoff_and_reported_once() -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        provider.errors = [MirrorError("Cloudflare error: HTTP 502")] * 3
        await worker.start([(record(), ("192.0.2.1",))])
        await until(lambda: worker.status()[0].in_sync)
        times = [t for t, _ in provider.calls]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) == 4
        assert gaps[1] > gaps[0] * 1.5 and gaps[2] > gaps[1] * 1.5, gaps  # exponential
        assert [(e.result, e.reason) for e in events] == [
            ("error", "www.example.com A at cf: Cloudflare error: HTTP 502 (retrying with backoff)"),
            ("ok", "www.example.com A at cf: set 192.0.2.1 (after 4 attempts)"),
        ]

    run(scenario, first_backoff=0.05)  # 0.05, 0.1, 0.2 s: clear of a busy machine's jitter


def test_retry_after_is_waited_out_by_every_name_of_the_provider() -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        provider.errors = [MirrorError("rate limited (HTTP 429)", retry_after=0.3)]
        started = time.monotonic()
        app, web = record(), record(WEB, "web.example.com")
        await worker.start([(app, ("192.0.2.1",)), (web, ("192.0.2.2",))])
        await until(lambda: all(s.in_sync for s in worker.status()))
        # the first call was refused; both names' later calls waited for Retry-After
        later = [t for t, _ in provider.calls[1:]]
        assert len(later) >= 1 and all(t - started >= 0.3 for t in later[-2:]), provider.calls
        assert provider.state == {"www.example.com": ("192.0.2.1",), "web.example.com": ("192.0.2.2",)}
        assert any("Retry-After" in (e.reason or "") for e in events)

    run(scenario, record(), record(WEB, "web.example.com"), settle=0.0)


def test_a_permanent_error_stops_retrying_until_the_answer_changes() -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        provider.errors = [MirrorError(f"authentication failed for {TOKEN}", permanent=True)] * 2
        await worker.start([(record(), ("192.0.2.1",))])
        await until(lambda: worker.status()[0].state == "failed")
        await asyncio.sleep(0.1)
        assert len(provider.calls) == 1, "no retry after a permanent error"
        [status] = worker.status()
        assert status.permanent and status.last_error == "authentication failed for ***"
        assert [(e.result, e.reason) for e in events] == [
            (
                "permanent",
                "www.example.com A at cf: authentication failed for *** "
                "(permanent: fix it, then it is retried at the next change or reconcile)",
            )
        ]
        worker.submit(record(), ("192.0.2.2",))  # the next change tries again (and fails again)
        await until(lambda: len(provider.calls) == 2)
        await asyncio.sleep(0.05)
        assert len(events) == 1, "the same error is not reported twice"
        worker.submit(record(), ("192.0.2.1",))
        await until(lambda: worker.status()[0].state == "ok")
        assert events[-1].result == "ok"

    run(scenario)


def test_the_periodic_reconcile_restores_a_hand_edit_and_says_so() -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        await worker.start([(record(), ("192.0.2.1",))])
        await until(lambda: worker.status()[0].in_sync)
        quiet = len(events)
        await until(lambda: len(provider.calls) >= 3)  # reconciles that find nothing: no event
        assert len(events) == quiet
        provider.state["www.example.com"] = ("203.0.113.66",)  # edited in the dashboard
        await until(lambda: provider.state["www.example.com"] == ("192.0.2.1",))
        await until(lambda: len(events) > quiet)
        drift = events[-1]
        assert (drift.result, drift.previous, drift.current) == ("drift", "203.0.113.66", "192.0.2.1")
        assert drift.reason == "www.example.com A at cf: drift restored: set 192.0.2.1"
        assert worker.status()[0].drift_restored == 1

    run(scenario, interval=0.05)


def test_the_token_never_leaves_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(worker: MirrorWorker, provider: Scripted, events: list[EventRow]) -> None:
        provider.errors = [MirrorError(f"bad header Bearer {TOKEN}", reply=f"reply {TOKEN}")]
        await worker.start([(record(), ("192.0.2.1",))])
        await until(lambda: worker.status()[0].in_sync)

    caplog.set_level(logging.DEBUG)
    events: list[EventRow] = []

    async def capture(worker: MirrorWorker, provider: Scripted, seen: list[EventRow]) -> None:
        await scenario(worker, provider, seen)
        events.extend(seen)
        assert TOKEN not in repr(worker.status())

    run(capture)
    assert events and TOKEN not in repr(events)
    assert "***" in repr(events)
    assert TOKEN not in caplog.text


def test_every_attempt_is_reported_for_metrics_even_when_one_event_covers_several() -> None:
    attempts: list[tuple[str, str]] = []

    async def main() -> None:
        provider = Scripted()
        events: list[EventRow] = []
        worker = MirrorWorker(
            (record(),),
            {"cf": provider},
            {"cf": 3600.0},
            event=events.append,
            attempt=lambda mirror, result: attempts.append((mirror, result)),
            settle=0.02,
            first_backoff=0.01,
        )
        try:
            provider.errors = [MirrorError("Cloudflare error: HTTP 502")] * 2
            await worker.start([(record(), ("192.0.2.1",))])
            await until(lambda: worker.status()[0].in_sync)
            # The same error twice is one event (no flood), but two failed attempts.
            assert [e.result for e in events] == ["error", "ok"]
            provider.errors = [MirrorError("zone not found", permanent=True)]
            worker.submit(record(), ("192.0.2.2",))
            await until(lambda: worker.status()[0].state == "failed")
        finally:
            await worker.stop()

    asyncio.run(main())
    assert attempts == [("cf", "error"), ("cf", "error"), ("cf", "ok"), ("cf", "permanent")]
