"""Monitors and dynamic records in the config (issue 3, section 1): the contract as
written works, every option lands where it should, and each mistake names the file, the
line and the key before anything is checked or served."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import Monitor, Target

# Issue 3, section 1, exactly: this contract must keep working.
CONTRACT = """\
[monitors.web]
type = "http"                 # http | https | tcp | dns | icmp
port = 18080
path = "/health"
interval = 1.0                # seconds; fractions allowed (down to 0.1)
timeout = 0.5
consecutive_down = 2
consecutive_up = 1

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]   # name relative to the zone; "@" is the apex
type = "A"                    # A | AAAA | CNAME
monitor = "web"
ttl = 5
targets = [
  { name = "charlie", value = "127.0.0.21", priority = 1 },
  { name = "echo",    value = "127.0.0.22", priority = 2 },
  { name = "bravo",   value = "127.0.0.23", priority = 3 },
]
"""


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "dynserver.toml"
    path.write_text(text)
    return config.load(path)


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value


def test_the_contract_of_the_issue_loads_as_written(tmp_path: Path) -> None:
    loaded = load(tmp_path, CONTRACT)
    assert loaded.monitors == (
        Monitor(
            name="web",
            type="http",
            port=18080,
            path="/health",
            interval=1.0,
            timeout=0.5,
            consecutive_down=2,
            expected_codes=((200, 299), (300, 399)),  # the default, 2xx and 3xx
        ),
    )
    (record,) = loaded.zones[0].records
    assert (record.type, record.monitor, record.ttl, record.policy, record.fallback) == (
        "A",
        "web",
        5,
        "failover",
        "preferred",
    )
    assert record.targets == (
        Target("charlie", "127.0.0.21", 1),
        Target("echo", "127.0.0.22", 2),
        Target("bravo", "127.0.0.23", 3),
    )


def test_every_monitor_option(tmp_path: Path) -> None:
    text = CONTRACT.replace(
        "consecutive_up = 1\n",
        """consecutive_up = 3
retries = 2
failback_delay = 30
method = "head"
header = { Host = ["www.example.test"], X-Check = "yes" }
expected_codes = "200,301-302"
expected_body = "status=OK"
unexpected_body = "ERROR"
follow_redirects = true
allow_insecure = true
max_response_bytes = 4096
user_agent = "okerr-compatible/1"
""",
    )
    (monitor,) = load(tmp_path, text).monitors
    assert (monitor.retries, monitor.consecutive_up, monitor.failback_delay) == (2, 3, 30.0)
    assert monitor.method == "HEAD"
    assert monitor.header == (("Host", "www.example.test"), ("X-Check", "yes"))
    assert monitor.expected_codes == ((200, 200), (301, 302))
    assert (monitor.expected_body, monitor.unexpected_body) == ("status=OK", "ERROR")
    assert (monitor.follow_redirects, monitor.allow_insecure) == (True, True)
    assert (monitor.max_response_bytes, monitor.user_agent) == (4096, "okerr-compatible/1")


def test_target_overrides_and_record_options(tmp_path: Path) -> None:
    text = CONTRACT.replace(
        '{ name = "echo",    value = "127.0.0.22", priority = 2 },',
        '{ name = "echo", value = "127.0.0.22", priority = 2, host = "echo.example.test", port = 8443,'
        ' path = "/ready", maintenance = true },',
    ).replace("ttl = 5\n", 'ttl = 5\npolicy = "check-only"\nfallback = "none"\nmin_up = 2\npending_ttl = 1\n')
    (record,) = load(tmp_path, text).zones[0].records
    echo = record.targets[1]
    assert (echo.host, echo.port, echo.path, echo.maintenance) == ("echo.example.test", 8443, "/ready", True)
    assert (record.policy, record.fallback, record.min_up, record.pending_ttl) == ("check-only", "none", 2, 1)


# (what to change in CONTRACT, the line of the error, its key, a fragment of the message)
MISTAKES = [
    ("timeout = 0.5", "timeout = 2", 6, "monitors.web.timeout", "at most the interval"),
    ("interval = 1.0 ", "interval = 0.01 ", 5, "monitors.web.interval", "0.1"),
    ('type = "http" ', 'type = "smtp" ', 2, "monitors.web.type", "one of"),
    ("port = 18080", 'port = 18080\nexpected_codes = "2xx,600"', 4, "monitors.web.expected_codes", "100-599"),
    ('path = "/health"', 'path = "/health check"', 4, "monitors.web.path", "without spaces"),
    ("port = 18080", 'port = 18080\nmethod = "GET /x"', 4, "monitors.web.method", "HTTP method"),
    (
        "port = 18080",
        'port = 18080\nheader = { X-Check = "a\\r\\nX-Injected: 1" }',
        4,
        "monitors.web.header.X-Check",
        "line break",
    ),
    (
        "port = 18080",
        'port = 18080\nheader = { "Bad Name" = "x" }',
        4,
        'monitors.web.header."Bad Name"',
        "header name",
    ),
    ("port = 18080", 'port = 18080\nuser_agent = "a\\nb"', 4, "monitors.web.user_agent", "line break"),
    ('monitor = "web"', 'monitor = "api"', 15, 'zones."dyn.example.test".records.app.monitor', "no monitor"),
    (
        "priority = 3 }",
        'priority = 3, host = "a b\\r\\n" }',
        17,
        'zones."dyn.example.test".records.app.targets',
        "target 'bravo'",
    ),
    (
        "priority = 3 }",
        'priority = 3, path = "/a b" }',
        17,
        'zones."dyn.example.test".records.app.targets',
        "without spaces",
    ),
]


@pytest.mark.parametrize(("old", "new", "line", "key", "says"), MISTAKES, ids=[m[4] for m in MISTAKES])
def test_mistakes_name_file_line_and_key(
    tmp_path: Path, old: str, new: str, line: int, key: str, says: str
) -> None:
    assert old in CONTRACT
    error = error_of(tmp_path, CONTRACT.replace(old, new, 1))
    assert (error.path, error.key) == (str(tmp_path / "dynserver.toml"), key), str(error)
    assert error.line == line, str(error)
    assert says in error.message, str(error)
    assert "expected" in error.message or "no monitor" in error.message, str(error)


def test_a_tcp_monitor_needs_a_port(tmp_path: Path) -> None:
    text = CONTRACT.replace('type = "http" ', 'type = "tcp" ').replace("port = 18080\n", "")
    error = error_of(tmp_path, text)
    assert (error.key, error.line) == ("monitors.web.port", 1)
    assert "needs a port" in error.message
