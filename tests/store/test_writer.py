"""The background writer against a real SQLite file: what it coalesces, in what order it
writes, when it writes on its own, and that flush, stop and a failed write lose nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from dynserver.store.db import EventRow, JournalRow, Sample, Store
from dynserver.store.writer import Writer
from tests.store.common import run, state
from tests.support import until

HOUR = 3600.0  # an interval the loop never reaches in a test: only events, flush and stop write


def event(reason: str) -> EventRow:
    return EventRow(kind="health", record="app.dyn.example.test", target="charlie", reason=reason, at=5.0)


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    """What another connection sees: only what the writer committed."""
    with closing(sqlite3.connect(database)) as db:
        return [tuple(row) for row in db.execute(sql).fetchall()]


def events_on_disk(database: Path) -> list[str]:
    return [str(r[0]) for r in rows(database, "SELECT reason FROM event ORDER BY id")]


def states_on_disk(database: Path) -> list[tuple[Any, ...]]:
    return rows(database, "SELECT target, observed, successes FROM target_state ORDER BY target")


def test_flush_writes_the_latest_state_per_target_and_everything_else_in_order(tmp_path: Path) -> None:
    database = tmp_path / "state.db"

    async def test(store: Store) -> None:
        writer = Writer(store, interval=HOUR)
        for successes in (1, 2, 3):  # coalesced: only the newest state of charlie is written
            writer.state(state("charlie", successes=successes))
        writer.state(state("bravo", observed="down"))
        for reason in ("first", "second", "third"):
            writer.event(event(reason))
        writer.sample(Sample(1.0, "app.dyn.example.test", "charlie", True, 0.01, "up"))
        writer.sample(Sample(2.0, "app.dyn.example.test", "charlie", False, None, "up"))
        writer.serial("dyn.example.test", 7, "digest-7")
        writer.serial("dyn.example.test", 8, "digest-8")  # the newest serial wins
        writer.journal("dyn.example.test", JournalRow(1, 6, 7, b"one"), first=1)
        writer.journal("dyn.example.test", JournalRow(2, 7, 8, b"two"), first=2)  # seq 1 goes
        assert events_on_disk(database) == []  # nothing is written before a flush (no loop runs)
        await writer.flush()
        assert states_on_disk(database) == [("bravo", "down", 1), ("charlie", "up", 3)]
        assert events_on_disk(database) == ["first", "second", "third"]
        assert [(s.at, s.ok) for s in await store.samples("app.dyn.example.test", 0.0)] == [
            (1.0, True),
            (2.0, False),
        ]
        assert await store.serials() == {"dyn.example.test": (8, "digest-8")}
        assert await store.journal() == {"dyn.example.test": [JournalRow(2, 7, 8, b"two")]}

    run(database, test)


def test_everything_pending_goes_in_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "state.db"

    async def test(store: Store) -> None:
        commits = 0
        commit = store.commit

        async def counted() -> None:
            nonlocal commits
            commits += 1
            await commit()

        monkeypatch.setattr(store, "commit", counted)
        writer = Writer(store, interval=HOUR)
        for n in range(50):
            writer.state(state(f"target-{n}"))
            writer.event(event(f"event-{n}"))
        await writer.flush()
        assert commits == 1
        assert len(states_on_disk(database)) == 50 and len(events_on_disk(database)) == 50
        await writer.flush()  # nothing pending: no empty transaction
        assert commits == 1

    run(database, test)


def test_an_event_is_written_soon_a_state_waits_for_the_interval(tmp_path: Path) -> None:
    database = tmp_path / "state.db"

    async def test(store: Store) -> None:
        slow = Writer(store, interval=HOUR)
        slow.start()
        try:
            slow.state(state("charlie"))
            slow.event(event("went down"))  # wakes the loop: the state goes with it
            await until(lambda: events_on_disk(database) == ["went down"], "the event on disk")
            assert states_on_disk(database) == [("charlie", "up", 1)]
            slow.state(state("charlie", successes=2))  # no event: stays queued for the hour
            await asyncio.sleep(0.2)  # nothing to await: this checks that no write happens
            assert states_on_disk(database) == [("charlie", "up", 1)]
        finally:
            await slow.stop()
        assert states_on_disk(database) == [("charlie", "up", 2)]

        fast = Writer(store, interval=0.05)
        fast.start()
        try:
            fast.state(state("charlie", successes=3))
            await until(
                lambda: states_on_disk(database) == [("charlie", "up", 3)], "the state on the interval"
            )
        finally:
            await fast.stop()

    run(database, test)


def test_flush_waits_for_the_batch_the_loop_is_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "state.db"

    async def test(store: Store) -> None:
        gate = asyncio.Event()
        entered = asyncio.Event()
        add_events = store.add_events

        async def held(events: list[EventRow], *, commit: bool = True) -> None:
            entered.set()
            await gate.wait()
            await add_events(events, commit=commit)

        monkeypatch.setattr(store, "add_events", held)
        writer = Writer(store, interval=HOUR)
        writer.start()
        try:
            writer.event(event("taken by the loop"))
            await entered.wait()  # the loop has taken its batch and is writing it
            writer.state(state("charlie"))
            flush = asyncio.create_task(writer.flush())
            await asyncio.sleep(0.05)  # would be done by now if it did not wait for the loop
            assert not flush.done()
            gate.set()
            await flush
            assert events_on_disk(database) == ["taken by the loop"]
            assert states_on_disk(database) == [("charlie", "up", 1)]
        finally:
            gate.set()
            await writer.stop()

    run(database, test)


def test_stop_writes_everything_queued(tmp_path: Path) -> None:
    database = tmp_path / "state.db"

    async def test(store: Store) -> None:
        writer = Writer(store, interval=HOUR)
        writer.start()
        writer.state(state("charlie", observed="down"))
        writer.sample(Sample(3.0, "app.dyn.example.test", "charlie", False, None, "down"))
        writer.serial("dyn.example.test", 9, "digest-9")
        writer.journal("dyn.example.test", JournalRow(3, 8, 9, b"three"), first=3)
        writer.event(event("last words"))
        await writer.stop()
        assert states_on_disk(database) == [("charlie", "down", 1)]
        assert events_on_disk(database) == ["last words"]
        assert len(await store.samples("app.dyn.example.test", 0.0)) == 1
        assert await store.serials() == {"dyn.example.test": (9, "digest-9")}
        assert await store.journal() == {"dyn.example.test": [JournalRow(3, 8, 9, b"three")]}

    run(database, test)


def test_a_failed_write_is_retried_and_later_writes_still_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "state.db"

    async def test(store: Store) -> None:
        failures = [sqlite3.OperationalError("database or disk is full")]
        add_samples = store.add_samples

        async def failing_once(samples: list[Sample], *, commit: bool = True) -> None:
            if failures:  # after the states and events of the same batch were sent
                raise failures.pop()
            await add_samples(samples, commit=commit)

        monkeypatch.setattr(store, "add_samples", failing_once)
        writer = Writer(store, interval=0.05)
        writer.start()
        try:
            writer.state(state("charlie", successes=1))
            writer.sample(Sample(1.0, "app.dyn.example.test", "charlie", True, 0.01, "up"))
            writer.event(event("before the failure"))
            await until(lambda: writer.failures == 1, "the failed write")
            writer.state(state("charlie", successes=2))  # newer than the batch put back: it wins
            writer.event(event("after the failure"))
            await writer.flush()
        finally:
            await writer.stop()
        assert events_on_disk(database) == ["before the failure", "after the failure"]  # once each
        assert states_on_disk(database) == [("charlie", "up", 2)]
        assert len(await store.samples("app.dyn.example.test", 0.0)) == 1
        assert "event=store_write_failed" in caplog.text

    run(database, test)
