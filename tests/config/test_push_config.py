"""[monitors.NAME] type = "push" and heartbeat (issue 17): what loads, and each mistake
names the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import Heartbeat, Monitor, MonitorType

BASE = """\
[monitors.beat]
# keys

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]
type = "A"
monitor = "beat"
targets = [{ name = "a", value = "127.0.0.21" }]
"""


def monitor(tmp_path: Path, keys: str) -> Monitor:
    path = tmp_path / "dynserver.toml"
    path.write_text(BASE.replace("# keys", keys))
    (loaded,) = config.load(path).monitors
    return loaded


def test_a_push_monitor(tmp_path: Path) -> None:
    beat = monitor(tmp_path, 'type = "push"\ninterval = 300\nconsecutive_down = 2')
    assert (beat.type, beat.interval, beat.consecutive_down, beat.heartbeat) == (
        MonitorType.PUSH,
        300.0,
        2,
        Heartbeat.PUSH,
    )


def test_updates_as_heartbeats(tmp_path: Path) -> None:
    beat = monitor(tmp_path, 'type = "push"\nheartbeat = "updates"\nfailback_delay = 60')
    assert (beat.heartbeat, beat.failback_delay) == (Heartbeat.UPDATES, 60.0)


@pytest.mark.parametrize(
    ("keys", "line", "key", "says"),
    [
        (
            'type = "http"\nheartbeat = "updates"',
            3,
            "heartbeat",
            'expected a monitor of type = "push", got http',
        ),
        ('type = "push"\nheartbeat = "cron"', 3, "heartbeat", "expected push or updates"),
        ('type = "push"\npath = "/health"', 3, "path", "a push monitor probes nothing; expected only:"),
        (
            'type = "push"\nport = 80',
            3,
            "port",
            "expected only: consecutive_down, consecutive_up, failback_delay",
        ),
        ('type = "pull"', 2, "type", "expected one of: dns, http, https, icmp, push, tcp"),
    ],
)
def test_mistakes_name_file_line_and_key(tmp_path: Path, keys: str, line: int, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        monitor(tmp_path, keys)
    error = caught.value
    assert (error.line, error.key) == (line, f"monitors.beat.{key}")
    assert says in error.message
