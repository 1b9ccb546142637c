"""The store on a real SQLite file: a reopened database resumes where it stopped, a health
write never touches an address set by an update, the event log reads newest first with
its filters and pages, retention drops only what is older, credentials are never
replaced by a second add."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

from dynserver.store.db import SCHEMA_VERSION, EventRow, Sample, Store, StoredCredential
from tests.store.common import run, state

APP = "app.dyn.example.test"


def test_a_reopened_database_has_what_was_committed(tmp_path: Path) -> None:
    database = tmp_path / "state.db"

    async def first(store: Store) -> None:
        await store.save_states([state("charlie", value="192.0.2.77"), state("bravo", observed="down")])
        await store.save_serials({"dyn.example.test": (5, "digest")})
        await store.add_events([EventRow(kind="system", reason="started", detail={"version": "1"})])

    async def second(store: Store) -> None:
        with closing(sqlite3.connect(database)) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert sorted(await store.load_states(), key=lambda s: s.target) == [
            state("bravo", observed="down"),
            state("charlie", value="192.0.2.77"),
        ]
        assert await store.serials() == {"dyn.example.test": (5, "digest")}
        [started] = await store.events()
        assert (started.kind, started.reason, started.detail) == ("system", "started", {"version": "1"})
        assert started.at > 0  # 0 means "now" when written

    run(database, first)
    run(database, second)


def test_a_health_write_keeps_the_address_an_update_set(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        await store.save_states([state("charlie", value="192.0.2.77")])  # an update
        await store.save_states([state("charlie", observed="down", successes=0)], with_value=False)
        [stored] = await store.load_states()
        assert (stored.observed, stored.value, stored.value_set_at) == ("down", "192.0.2.77", 3.0)

    run(tmp_path / "state.db", test)


def test_events_newest_first_filtered_and_paged(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        await store.add_events(
            [
                EventRow(kind="health", record=APP, target="charlie", current="down", at=10.0),
                EventRow(kind="answer", record=APP, current="192.0.2.22", at=11.0),
                EventRow(kind="health", record=APP, target="bravo", current="up", at=12.0),
                EventRow(kind="health", record="www.dyn.example.test", target="echo", at=13.0),
            ]
        )
        every = await store.events()
        assert [e.at for e in every] == [13.0, 12.0, 11.0, 10.0]
        assert [e.at for e in await store.events(kind="health", record=APP)] == [12.0, 10.0]
        assert [e.target for e in await store.events(target="charlie")] == ["charlie"]
        assert [e.at for e in await store.events(since=11.0, until=13.0)] == [12.0, 11.0]
        page = await store.events(limit=2)
        assert [e.at for e in page] == [13.0, 12.0]
        assert page[-1].id is not None
        assert [e.at for e in await store.events(limit=2, before_id=page[-1].id)] == [11.0, 10.0]

    run(tmp_path / "state.db", test)


def test_retention_drops_only_older_events_and_samples(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        await store.add_events([EventRow(kind="system", reason=str(at), at=at) for at in (1.0, 2.0, 3.0)])
        await store.add_samples([Sample(at, APP, "charlie", True, 0.01, "up") for at in (1.0, 2.0, 3.0)])
        assert await store.prune(before=2.5) == 4
        assert [e.reason for e in await store.events()] == ["3.0"]
        assert [s.at for s in await store.samples(APP, 0.0)] == [3.0]

    run(tmp_path / "state.db", test)


def test_credentials_are_added_once_touched_forward_and_deleted(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        now = time.time()
        backup = StoredCredential("bravo-backup", b"salt", b"digest", False, (f"{APP}/bravo",), now)
        assert await store.add_credential(backup)
        other = StoredCredential("bravo-backup", b"other", b"other", True, (), now)
        assert not await store.add_credential(other)  # the name is taken: nothing replaced
        assert await store.credential("bravo-backup") == backup
        await store.touch_credentials({"bravo-backup": now + 10})
        await store.touch_credentials({"bravo-backup": now + 5})  # older: ignored
        touched = await store.credential("bravo-backup")
        assert touched is not None and touched.last_used == now + 10
        assert [c.name for c in await store.credentials()] == ["bravo-backup"]
        assert await store.delete_credential("bravo-backup")
        assert not await store.delete_credential("bravo-backup")
        assert await store.credential("bravo-backup") is None

    run(tmp_path / "state.db", test)
