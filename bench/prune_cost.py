"""Disk per sample row and the retention prune, old statement against Store.prune (issue 19).

    python bench/prune_cost.py [--rows 5000000] [--dir /tmp]

Fills a fresh database with ``rows`` samples as 20,000 targets (4,000 records x 5) write
them, spread over 48 h, in time order with the (record, at) index in place, then prints the
file size per row; copies the file and deletes the oldest hour (then minute) from each copy, once with the
old ``DELETE FROM sample WHERE at < ?`` and once with ``Store.prune``, back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from dynserver.store.db import Store

T0 = 1.78e9
SPAN = 48 * 3600.0


async def prune(path: Path, cutoff: float, old: bool) -> tuple[int, float]:
    store = await Store.open(path)
    try:
        start = time.perf_counter()
        if old:
            async with store._db.execute("DELETE FROM sample WHERE at < ?", (cutoff,)) as cursor:
                removed = cursor.rowcount
            await store.commit()
        else:
            removed = await store.prune(cutoff)
        return removed, time.perf_counter() - start
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    base = args.dir / "prune_cost.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{base}{suffix}").unlink(missing_ok=True)
    asyncio.run(_create(base))
    start = time.perf_counter()
    with closing(sqlite3.connect(base)) as db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)"
            " INSERT INTO sample SELECT ? + i * ? / ?, 'r' || (i % 4000) || '.dyn.example.test',"
            " 't' || ((i / 4000) % 5), 1, 0.001 + (abs(random()) % 100000) / 1e6, 'up' FROM n",
            (args.rows, T0, SPAN, args.rows),
        )
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = base.stat().st_size
    took = time.perf_counter() - start
    print(f"fill {args.rows} rows: {took:.1f} s, {size} bytes, {size / args.rows:.1f} B/row")
    for span in (3600.0, 60.0):  # the oldest hour; the oldest minute (what the scan alone costs)
        for name, old in (("old DELETE WHERE at < ?", True), ("Store.prune", False)):
            copy = args.dir / f"prune_cost_{int(old)}.db"
            shutil.copyfile(base, copy)
            removed, took = asyncio.run(prune(copy, T0 + span, old))
            print(f"oldest {span:.0f} s, {name}: {removed} rows removed in {took:.2f} s")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{copy}{suffix}").unlink(missing_ok=True)
    base.unlink()


async def _create(path: Path) -> None:
    store = await Store.open(path)
    await store.close()


if __name__ == "__main__":
    main()
