"""The journal survives a clean restart (secondaries go on with IXFR), and is dropped
when the zone comes back under a serial it does not lead to."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import dns.zone

from dynserver.app import App
from tests.xfr.common import ORIGIN, contents, make_config, served, transfer

APEX = (b"dyn", b"example", b"test")
APP = (b"app", *APEX)


async def run(app: App, *values: str) -> None:
    """Start, set alpha's address durably (as an update does) to each value, stop."""
    await app.start()
    try:
        for value in values:
            await app.runtime.update_target((APP, "A", "alpha"), value, actor="test")
    finally:
        await app.stop()


def test_a_clean_restart_keeps_the_journal(tmp_path: Path) -> None:
    config = make_config(tmp_path, database="state.db")
    secondary = dns.zone.Zone(ORIGIN)
    first = App(config)
    asyncio.run(run(first))
    transfer(first, secondary, serial=None)
    asyncio.run(run(App(config), "192.0.2.101", "192.0.2.102"))  # changes the secondary missed

    async def after_restart() -> None:
        again = App(config)
        await again.start()
        try:
            assert len(again.transfers.journals[APEX]) == 2
            transfer(again, secondary)
            assert again.transfers.served["IXFR"] == 1
            assert contents(secondary) == served(again)
        finally:
            await again.stop()

    asyncio.run(after_restart())


def test_a_journal_that_no_longer_leads_to_the_serial_is_dropped(tmp_path: Path) -> None:
    config = make_config(tmp_path, database="state.db")
    asyncio.run(run(App(config), "192.0.2.101"))
    with sqlite3.connect(tmp_path / "state.db") as db:  # as after a crash: content unknown
        db.execute("UPDATE zone_serial SET digest = ''")

    async def after_restart() -> int:
        again = App(config)
        await again.start()
        await again.stop()
        return len(again.transfers.journals[APEX])

    assert asyncio.run(after_restart()) == 0
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM xfr_journal").fetchone() == (0,)
