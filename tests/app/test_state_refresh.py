"""The 30 s state refresh writes every target with a newer result, and finds each target's
configuration by name, not by scanning its record: with one record of 20,000 targets a
scan per target held the event loop for ~5 s every refresh (bench/check_scale.py table
--point 20000:1, docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from dynserver import config
from dynserver.app import App
from dynserver.health.state import Result
from dynserver.model import Target

ZONE = "dyn.example.test"
TARGETS = 300
DRAINED = {True: "true", False: "false"}
CONFIG = (
    f"""\
[server]
dns = ["127.0.0.1:0"]

[monitors.web]
type = "tcp"
port = 9
interval = 3600

[zones."{ZONE}"]
nameservers = ["ns1.example.net"]

[zones."{ZONE}".records.big]
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
    path.write_text(CONFIG)

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
    record = config.load_text(CONFIG, "inline.toml").zones[0].records[0]
    assert record.target("t299") is record.targets[-1]
    assert "t300" not in record.by_name
    with pytest.raises(KeyError):
        record.target("t300")
    fewer = dataclasses.replace(record, targets=record.targets[:2])
    assert set(fewer.by_name) == {"t0", "t1"} and fewer.target("t1") is record.targets[1]
    # Derived, not part of the record's identity: equal records stay equal.
    assert dataclasses.replace(record) == record and hash(dataclasses.replace(record)) == hash(record)
