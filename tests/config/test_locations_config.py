"""[locations] (issue 13): the table, its defaults, a monitor's quorum, and mistakes that
name the file, the line and the key. No table: nothing changes (config.locations is None)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import LocationsConfig

BASE = """\
[monitors.web]
type = "http"
port = 18080
# monitor

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]
type = "A"
monitor = "web"
targets = [{ name = "a", value = "127.0.0.21" }]
# locations
"""


def load(tmp_path: Path, locations: str = "", monitor: str = "") -> config.Config:
    path = tmp_path / "dynserver.toml"
    path.write_text(BASE.replace("# locations", locations).replace("# monitor", monitor))
    return config.load(path)


def test_no_table_no_locations(tmp_path: Path) -> None:
    loaded = load(tmp_path)
    assert loaded.locations is None
    assert loaded.monitors[0].quorum is None


def test_the_issue_example_and_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, '[locations]\nquorum = 2\nlocal = true\nname = "local"\nstale_after = 3\n')
    assert loaded.locations == LocationsConfig(quorum=2, local=True, name="local", stale_after=3, canary=None)
    assert load(tmp_path, "[locations]\n").locations == LocationsConfig()


def test_every_key(tmp_path: Path) -> None:
    text = (
        '[locations]\nquorum = 3\nlocal = false\nname = "fra-1"\nstale_after = 5\ncanary = "127.0.0.9:443"\n'
    )
    assert load(tmp_path, text).locations == LocationsConfig(3, False, "fra-1", 5, "127.0.0.9:443")


def test_monitor_quorum(tmp_path: Path) -> None:
    assert load(tmp_path, "[locations]\n", "quorum = 1").monitors[0].quorum == 1


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("[locations]\nquorum = 0\n", "locations.quorum", "expected a number from 1 to 100"),
        ('[locations]\nname = "a b"\n', "locations.name", "is not a location name"),
        ('[locations]\ncanary = "nowhere"\n', "locations.canary", 'expected "host:port"'),
        ("[locations]\nvoters = 2\n", "locations.voters", "unknown"),
        ('[locations]\nlocal = "yes"\n', "locations.local", "true or false"),
    ],
)
def test_mistakes_name_file_line_and_key(tmp_path: Path, text: str, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    message = str(error.value)
    assert "dynserver.toml:14: " in message  # the key's own line ([locations] is on 13)
    assert key in message and says in message
