"""Retention of the sample history (issue 19): ``Store.prune`` finds the old rows by a
binary search over rowid (samples come in time order; there is no index on ``at``) and
deletes them in committed chunks, never a row at or after the cutoff."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from dynserver.store.db import Sample, Store
from tests.store.common import run

APP = "app.dyn.example.test"


def fill(database: Path, ats: list[float]) -> None:
    """A fresh database whose sample table holds one row per ``at``, in this order."""
    run(database, lambda store: asyncio.sleep(0))  # creates the schema
    with closing(sqlite3.connect(database)) as db:
        db.execute("DROP INDEX sample_record")  # built after: faster
        db.executemany("INSERT INTO sample VALUES (?,?,'t1',1,0.01,'up')", ((at, APP) for at in ats))
        db.execute("CREATE INDEX sample_record ON sample (record, at)")
        db.commit()


def remaining(database: Path) -> list[float]:
    """The samples committed to the file, in rowid order (read on a new connection)."""
    with closing(sqlite3.connect(database)) as db:
        return [row[0] for row in db.execute("SELECT at FROM sample ORDER BY rowid")]


def test_prune_removes_exactly_the_older_rows_in_time_order(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    ats = [float(i) for i in range(1000)]
    fill(database, ats)
    for cutoff, chunk in ((0.0, 7), (0.5, 7), (333.0, 7), (333.0, 50), (640.5, 1000), (2000.0, 64)):

        async def test(store: Store, cutoff: float = cutoff, chunk: int = chunk) -> None:
            before = len(remaining(database))
            assert await store.prune(cutoff, chunk=chunk) == before - len([a for a in ats if a >= cutoff])

        run(database, test)
        assert remaining(database) == [a for a in ats if a >= cutoff]


def test_a_clock_step_back_never_loses_a_row_at_or_after_the_cutoff(tmp_path: Path) -> None:
    # The wall clock went from 600 back to 300: rowids no longer follow time.
    database = tmp_path / "state.db"
    ats = [float(i) for i in range(600)] + [float(i) for i in range(300, 900)]
    fill(database, ats)
    for cutoff in (100.0, 450.0, 599.5, 650.0, 1000.0):
        kept_before = remaining(database)

        async def test(store: Store, cutoff: float = cutoff, kept_before: list[float] = kept_before) -> None:
            assert await store.prune(cutoff, chunk=32) == len(kept_before) - len(remaining(database))

        run(database, test)
        kept = remaining(database)
        assert [a for a in kept_before if a >= cutoff] == [a for a in kept if a >= cutoff]
        # every old row is gone but some of the stepped-back ones after the boundary
        assert all(a >= cutoff or index >= 600 for index, a in enumerate(ats) if a in kept)
    assert remaining(database) == []


def test_prune_deletes_in_chunks_and_a_write_in_between_is_kept(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    fill(database, [float(i) for i in range(10_000)])
    statements: list[str] = []

    async def test(store: Store) -> None:
        await store._db.set_trace_callback(statements.append)
        inserted = 0

        async def writer() -> None:
            nonlocal inserted
            while not pruning.done():
                async with store.transaction:  # as the store writer does
                    await store.add_samples([Sample(20_000.0 + inserted, APP, "t2", True, 0.02, "up")])
                inserted += 1
                await asyncio.sleep(0)

        pruning = asyncio.create_task(store.prune(5000.0, chunk=1000))
        await writer()
        assert await pruning == 5000
        assert inserted >= 2

    run(database, test)
    kinds = [s.split()[0] for s in statements if s.startswith(("DELETE FROM sample", "INSERT INTO sample"))]
    assert kinds.count("DELETE") == 5
    first, last = kinds.index("DELETE"), len(kinds) - 1 - kinds[::-1].index("DELETE")
    assert "INSERT" in kinds[first:last]  # the writes went in between the chunks
    rows = remaining(database)
    assert rows[:5000] == [float(i) for i in range(5000, 10_000)]
    assert rows[5000:] == [20_000.0 + i for i in range(len(rows) - 5000)]
    assert len(rows) - 5000 == kinds.count("INSERT")  # every insert committed, none lost


def test_pruning_a_small_old_slice_does_not_read_the_whole_table(tmp_path: Path) -> None:
    # 1 million rows; the oldest 10,000 go. A scan (DELETE ... WHERE at < ?) runs the
    # VM over every row: the progress handler (every 1,000 VM instructions) counts that.
    database = tmp_path / "state.db"
    rows = 1_000_000
    fill(database, [])
    with closing(sqlite3.connect(database)) as db:  # 2,000 samples a second from 1e9 on
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)"
            " INSERT INTO sample SELECT 1e9 + i / 2000.0, ?, 't1', 1, 0.01, 'up' FROM n",
            (rows, APP),
        )
        db.commit()
    cutoff = 1e9 + 10_000 / 2000

    async def count_steps(store: Store) -> int:
        steps = 0

        def step() -> int:
            nonlocal steps
            steps += 1
            return 0

        await store._db.set_progress_handler(step, 1000)
        assert await store.prune(cutoff) == 10_000
        await store._db.set_progress_handler(None, 1000)
        return steps

    async def test(store: Store) -> None:
        steps = await count_steps(store)
        # A scan runs ~4 VM instructions a row (4,100 calls here for DELETE ... WHERE at < ?);
        # deleting the 10,000 rows and the binary search take ~150.
        assert steps * 1000 < rows / 5, steps
        async with store._db.execute("EXPLAIN QUERY PLAN " + _SAMPLE_DELETE, (0, 1, cutoff)) as cursor:
            plan = " ".join(str(row[-1]) for row in await cursor.fetchall())
        assert "SEARCH sample USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plan

    run(database, test)
    assert len(remaining(database)) == rows - 10_000


_SAMPLE_DELETE = "DELETE FROM sample WHERE rowid >= ? AND rowid < ? AND at < ?"
