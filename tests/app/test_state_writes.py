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
from dynserver.model import Target

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


# One record of many targets: the refresh finds each target's configuration by name, not
# by scanning its record (with one record of 20,000 targets a scan per target held the
# event loop ~5 s every refresh: bench/check_scale.py table --point 20000:1).
TARGETS = 300
DRAINED = {True: "true", False: "false"}
BIG = (
    CONFIG.split("[zones.")[0]
    + """[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.big]
type = "A"
monitor = "web"
targets = [
"""
    + "".join(
        f'  {{ name = "t{n}", value = "10.0.{n // 250}.{n % 250 + 1}", maintenance = {DRAINED[n == 7]} }},\n'
        for n in range(TARGETS)
    )
    + "]\n"
)


class Scans(tuple[Target, ...]):
    """A record's targets that count how often something walks through them."""

    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        Scans.walks += 1
        return super().__iter__()


def test_the_refresh_finds_targets_by_name_and_saves_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dynserver.toml"
    path.write_text(BIG)

    async def main() -> None:
        app = App(dataclasses.replace(config.load(path), database=tmp_path / "state.db"))
        runtime = app.runtime
        monkeypatch.setattr(runtime, "refresh_checks", lambda: None)  # results come from the test
        await app.start()
        try:
            loop = asyncio.get_running_loop()
            runtime._check_targets = {key: found for key, (_, _, found) in runtime.engine.checks().items()}
            checks = list(runtime._check_targets)
            assert len(checks) == TARGETS
            ok = Result(ok=True, reason="ok", at=loop.time())
            runtime.on_results([(key, ok) for key in checks])
            again = Result(ok=True, reason="ok", at=loop.time())
            runtime.on_results([(key, again) for key in checks])  # no transition: left for the refresh
            assert len(runtime._unsaved) == TARGETS
            (record,) = runtime.engine.records.values()
            object.__setattr__(record, "targets", Scans(record.targets))
            Scans.walks = 0
            runtime._save_unsaved()
            assert Scans.walks < 5, f"the refresh walked the record's targets {Scans.walks} times"
            assert not runtime._unsaved
            assert app.writer is not None and app.store is not None
            await app.writer.flush()
            rows = {row.target: row for row in await app.store.load_states()}
        finally:
            await app.stop()
        assert len(rows) == TARGETS
        assert all(row.last_ok for row in rows.values())
        assert [name for name, row in rows.items() if row.config_maintenance] == ["t7"]

    asyncio.run(main())


def test_a_record_finds_its_targets_by_name_after_a_replace_too() -> None:
    record = config.load_text(BIG, "inline.toml").zones[0].records[0]
    assert record.target("t299") is record.targets[-1]
    assert "t300" not in record.by_name
    with pytest.raises(KeyError):
        record.target("t300")
    fewer = dataclasses.replace(record, targets=record.targets[:2])
    assert set(fewer.by_name) == {"t0", "t1"} and fewer.target("t1") is record.targets[1]
    # Derived, not part of the record's identity: equal records stay equal.
    assert dataclasses.replace(record) == record and hash(dataclasses.replace(record)) == hash(record)
