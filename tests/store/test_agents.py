"""The agent table: added once, listed, touched forward, deleted; another process's
change is seen through data_version; a database of an older version gains the table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dynserver.store.db import Store, StoredAgent
from tests.store.common import run


def test_agents_are_added_once_touched_forward_and_deleted(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        paris = StoredAgent("paris", b"salt", b"digest", created=100.0, canary="127.0.0.1:9")
        assert await store.add_agent(paris)
        assert not await store.add_agent(StoredAgent("paris", b"other", b"other", created=1.0))
        assert await store.add_agent(StoredAgent("berlin", b"s", b"d", created=101.0))
        assert [a.name for a in await store.agents()] == ["berlin", "paris"]
        assert (await store.agents())[1] == paris  # nothing replaced
        await store.touch_agents({"paris": (200.0, "1.2.0")})
        await store.touch_agents({"paris": (150.0, "0.9.0")})  # older: ignored
        await store.touch_agents({"paris": (250.0, None)})  # no version heard: kept
        touched = (await store.agents())[1]
        assert (touched.last_contact, touched.version) == (250.0, "1.2.0")
        assert await store.delete_agent("paris")
        assert not await store.delete_agent("paris")
        assert [a.name for a in await store.agents()] == ["berlin"]

    run(tmp_path / "state.db", test)


def test_data_version_moves_when_another_connection_commits(tmp_path: Path) -> None:
    database = tmp_path / "state.db"

    async def test(store: Store) -> None:
        before = await store.data_version()
        await store.add_agent(StoredAgent("own", b"s", b"d", created=1.0))
        assert await store.data_version() == before  # our own commit: not a change from outside
        with sqlite3.connect(database) as other:
            other.execute("DELETE FROM agent WHERE name = 'own'")
        assert await store.data_version() != before
        assert await store.agents() == []

    run(database, test)


def test_a_version_4_database_gains_the_agent_table(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    run(database, lambda store: store.commit())
    with sqlite3.connect(database) as db:
        db.execute("DROP TABLE agent")
        db.execute("PRAGMA user_version=4")

    async def test(store: Store) -> None:
        assert await store.add_agent(StoredAgent("paris", b"s", b"d", created=1.0))

    run(database, test)
