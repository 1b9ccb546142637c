"""Combined checks in the config (issue 17): monitor = "web" as before, a list of monitors
with require = "all" / "any" / N on a record or a target; mistakes name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import DynamicRecord, monitors_of, required
from tests.dns.zones import DYN

HEAD = """\
[server]
dns = ["127.0.0.1:15353"]

[monitors.web]
type = "http"

[monitors.db]
type = "tcp"
port = 5432

[monitors.ssh]
type = "tcp"
port = 22

[zones."dyn.example.test"]
file = "dyn.example.test.zone"

[zones."dyn.example.test".records.app]
{record}
targets = [
  {target},
]
"""
TARGET = '{ name = "t", value = "192.0.2.1" }'
FILE_LINE = 19  # the record's first key


def load(tmp_path: Path, record: str, target: str = TARGET) -> DynamicRecord:
    (tmp_path / "dyn.example.test.zone").write_text(DYN)
    path = tmp_path / "dynserver.toml"
    path.write_text(HEAD.format(record=record, target=target))
    (loaded,) = config.load(path).zones[0].records
    return loaded


def test_one_monitor_is_as_before(tmp_path: Path) -> None:
    record = load(tmp_path, 'monitor = "web"')
    assert (record.monitor, record.monitors, record.require) == ("web", (), None)
    assert monitors_of(record, record.targets[0]) == ("web",)


@pytest.mark.parametrize(
    ("require", "need"), [("", 3), ('require = "all"', 3), ('require = "any"', 1), ("require = 2", 2)]
)
def test_several_monitors_and_require(tmp_path: Path, require: str, need: int) -> None:
    record = load(tmp_path, f'monitor = ["web", "db", "ssh"]\n{require}')
    assert (record.monitor, record.monitors) == ("web", ("web", "db", "ssh"))
    assert required(record, record.targets[0]) == need


def test_a_target_names_its_own(tmp_path: Path) -> None:
    record = load(
        tmp_path,
        'monitor = "web"',
        '{ name = "t", value = "192.0.2.1", monitor = ["web", "db"], require = "any" }',
    )
    target = record.targets[0]
    assert (monitors_of(record, target), required(record, target)) == (("web", "db"), 1)


def test_a_target_without_monitors_of_a_record_without_one_is_unchecked(tmp_path: Path) -> None:
    record = load(tmp_path, 'type = "A"')
    assert monitors_of(record, record.targets[0]) == ()


@pytest.mark.parametrize(
    ("record", "key", "says"),
    [
        ('monitor = ["web", "nope"]', "monitor", "no monitor named 'nope'; expected one of: db, ssh, web"),
        ("monitor = []", "monitor", 'expected a monitor name or a list of them, e.g. "web" or ["web", "db"]'),
        ('monitor = ["web", 1]', "monitor", "expected a monitor name or a list of them"),
        ("monitor = 3", "monitor", "expected a monitor name or a list of them"),
        ('monitor = ["web", "web"]', "monitor", "a monitor is named twice; expected each once"),
        ('monitor = ["web", "db"]\nrequire = 3', "require", "expected a whole number from 1 to 2"),
        ('monitor = ["web", "db"]\nrequire = 0', "require", "expected a whole number from 1 to 2"),
        ('monitor = ["web", "db"]\nrequire = "most"', "require", 'expected "all", "any" or a whole number'),
        ('monitor = ["web", "db"]\nrequire = true', "require", 'expected "all", "any" or a whole number'),
        ("require = 1", "require", "expected a monitor beside it"),
    ],
)
def test_record_mistakes_name_file_line_and_key(tmp_path: Path, record: str, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, record)
    error = caught.value
    full = f'zones."dyn.example.test".records.app.{key}'
    line = FILE_LINE + record.split("\n").index(next(p for p in record.split("\n") if p.startswith(key)))
    assert (error.path, error.line, error.key) == (str(tmp_path / "dynserver.toml"), line, full)
    assert says in error.message


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ('{ name = "t", value = "192.0.2.1", monitor = ["web", "x"] }', "target 't': no monitor named 'x'"),
        ('{ name = "t", value = "192.0.2.1", monitor = ["web", "db"], require = 5 }', "from 1 to 2"),
        ('{ name = "t", value = "192.0.2.1", monitor = "web", require = "some" }', 'expected "all", "any"'),
    ],
)
def test_target_mistakes_name_file_line_and_key(tmp_path: Path, target: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, 'monitor = "web"', target)
    error = caught.value
    assert (error.line, error.key) == (FILE_LINE + 1, 'zones."dyn.example.test".records.app.targets')
    assert says in error.message and "expected" in error.message
