"""maintenance_windows through the real config loader (issue 17): on a record and on a
target they load; every mistake names file, line and key and says what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import DynamicRecord
from tests.dns.zones import DYN

HEAD = """\
[server]
dns = ["127.0.0.1:15353"]

[zones."dyn.example.test"]
file = "dyn.example.test.zone"

[zones."dyn.example.test".records.app]
type = "A"
maintenance_windows = {record}
targets = [
  {{ name = "db", value = "192.0.2.31", maintenance_windows = {target} }},
]
"""
RECORD_KEY = 'zones."dyn.example.test".records.app.maintenance_windows'
TARGET_KEY = 'zones."dyn.example.test".records.app.targets'
NIGHTLY = '[{ cron = "0 2 * * *", duration = 3600, timezone = "Europe/Berlin" }]'


def load(tmp_path: Path, record: str = "[]", target: str = "[]") -> DynamicRecord:
    (tmp_path / "dyn.example.test.zone").write_text(DYN)
    path = tmp_path / "dynserver.toml"
    path.write_text(HEAD.format(record=record, target=target))
    (loaded,) = config.load(path).zones[0].records
    return loaded


def test_windows_load_on_a_record_and_a_target(tmp_path: Path) -> None:
    weekend = '[{ weekdays = ["sat", "sun"], from = "22:00", to = "02:00" }]'
    record = load(tmp_path, record=NIGHTLY, target=weekend)
    (nightly,) = record.maintenance_windows
    (target,) = record.targets
    (weekends,) = target.maintenance_windows
    assert (nightly.cron, nightly.duration, nightly.timezone) == ("0 2 * * *", 3600, "Europe/Berlin")
    assert weekends.cron == "0 22 * * 6,0"


BAD = [
    ('"0 2 * * *"', "maintenance_windows must be a list of windows"),
    ('[{ cron = "every night", duration = 3600 }]', "maintenance window 1: cron 'every night' is not a cron"),
    ('[{ cron = "0 2 * * *", duration = 5 }]', "maintenance window 1: duration must be seconds from 60"),
    ('[{ cron = "0 2 * * *", duration = 60, timezone = "Mars/Olympus" }]', "is not a time zone"),
    ('[{ start = "tomorrow", end = "2026-12-24T20:00:00Z" }]', "is not a date and time"),
    ("[{ start = 2026-12-24T20:00:00Z, end = 2026-12-24T19:00:00Z }]", "end must come after start"),
    ('[{ weekdays = ["someday"], from = "02:00", to = "03:00" }]', "weekdays must be a list of days"),
    ('[{ weekdays = ["sat"], from = "2am", to = "03:00" }]', "is not a time of day"),
    ('[NIGHTLY, { start = "2026-12-24T20:00:00Z" }]', "maintenance window 2: expected one of"),
]


@pytest.mark.parametrize(("windows", "says"), BAD)
@pytest.mark.parametrize("where", ["record", "target"])
def test_mistakes_name_file_line_and_key(tmp_path: Path, where: str, windows: str, says: str) -> None:
    windows = windows.replace("NIGHTLY", NIGHTLY[1:-1])
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **{where: windows})
    error = caught.value
    line, key = (9, RECORD_KEY) if where == "record" else (10, TARGET_KEY)
    assert (error.path, error.line, error.key) == (str(tmp_path / "dynserver.toml"), line, key)
    assert str(error).startswith(f"{tmp_path / 'dynserver.toml'}:{line}: {key}: ")
    assert says in error.message
    if where == "target":
        assert error.message.startswith("target 'db': "), "a target's window says whose it is"
    assert "expect" in error.message, "every message says what was expected"
