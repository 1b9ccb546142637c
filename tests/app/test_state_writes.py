"""What a check result writes to the database, and when.

Every result adds a history sample at once. The target's state row is written at once
when its health changes; a result that changes nothing is written by the next refresh
(runtime.STATE_REFRESH) or at a clean stop, so thousands of checks a second do not each
rewrite a row that only differs in its counters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from dynserver import config
from dynserver import runtime as runtime_module
from dynserver.app import App
from dynserver.health.state import Result

CONFIG = """\
[server]
dns = ["127.0.0.1:0"]

[monitors.web]
type = "tcp"
port = 9
interval = 3600

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]
type = "A"
monitor = "web"
ttl = 30
targets = [{ name = "charlie", value = "192.0.2.21" }]
"""


def stored(database: Path) -> tuple[str, str, int]:
    with sqlite3.connect(database) as db:
        row = db.execute(
            "SELECT observed, last_reason, successes FROM target_state WHERE target = 'charlie'"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def samples(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM sample").fetchone()[0])


def test_transitions_go_to_disk_at_once_other_results_on_refresh_and_at_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dynserver.toml"
    path.write_text(CONFIG)
    database = tmp_path / "state.db"
    monkeypatch.setattr(runtime_module, "STATE_REFRESH", 0.5)

    async def main() -> None:
        app = App(dataclasses.replace(config.load(path), database=database))
        monkeypatch.setattr(app.runtime, "refresh_checks", lambda: None)  # results come from the test
        await app.start()
        app.runtime._check_targets = {
            key: targets for key, (_, _, targets) in app.runtime.engine.checks().items()
        }
        (key,) = app.runtime._check_targets
        loop = asyncio.get_running_loop()
        assert app.writer is not None
        try:
            app.runtime.on_result(key, Result(ok=True, reason="status 200", at=loop.time()))  # unknown -> up
            await app.writer.flush()
            assert stored(database) == ("up", "status 200", 1)
            app.runtime.on_result(key, Result(ok=True, reason="status 204", at=loop.time()))  # no change
            await app.writer.flush()
            assert stored(database) == ("up", "status 200", 1)  # not rewritten for this one
            assert samples(database) == 2  # but its history sample is there
            for _ in range(40):  # the sweeper's refresh (every 0.5 s here) writes it
                await asyncio.sleep(0.1)
                await app.writer.flush()
                if stored(database)[1] == "status 204":
                    break
            assert stored(database) == ("up", "status 204", 2)
            app.runtime.on_result(key, Result(ok=True, reason="status 202", at=loop.time()))
        finally:
            await app.stop()
        assert stored(database) == ("up", "status 202", 3)  # a clean stop writes the latest

    asyncio.run(main())
