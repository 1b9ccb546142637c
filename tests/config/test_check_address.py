"""A target's check_address and check_port (issue 17): what the probe connects to when it
is not the value DNS answers; good values load, bad ones name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import Target
from tests.dns.zones import DYN

HEAD = """\
[server]
dns = ["127.0.0.1:15353"]

[monitors.web]
type = "http"

[zones."dyn.example.test"]
file = "dyn.example.test.zone"

[zones."dyn.example.test".records.app]
type = "{kind}"
monitor = "web"
targets = [
"""


def load(tmp_path: Path, target: str, kind: str = "A") -> Target:
    (tmp_path / "dyn.example.test.zone").write_text(DYN)
    path = tmp_path / "dynserver.toml"
    path.write_text(HEAD.format(kind=kind) + f"  {target},\n]\n")
    (record,) = config.load(path).zones[0].records
    (loaded,) = record.targets
    return loaded


def test_a_nat_server_checks_its_inside_address(tmp_path: Path) -> None:
    target = load(
        tmp_path, '{ name = "nat", value = "203.0.113.7", check_address = "10.0.0.7", check_port = 8080 }'
    )
    assert (target.value, target.check_address, target.port) == ("203.0.113.7", "10.0.0.7", 8080)


def test_without_a_check_address_the_value_is_checked(tmp_path: Path) -> None:
    target = load(tmp_path, '{ name = "plain", value = "192.0.2.1", port = 8080 }')
    assert (target.check_address, target.port) == (None, 8080)


@pytest.mark.parametrize(
    ("kind", "value", "check"),
    [
        ("A", "192.0.2.1", "2001:db8::1"),  # a sidecar may be checked over the other family
        ("AAAA", "2001:db8::1", "10.0.0.1"),
        ("CNAME", "lb.example.net", "10.0.0.2"),  # replaces the host name the probe connects to
    ],
)
def test_any_family_for_any_record_type(tmp_path: Path, kind: str, value: str, check: str) -> None:
    target = load(tmp_path, f'{{ name = "t", value = "{value}", check_address = "{check}" }}', kind)
    assert target.check_address == check


def test_the_address_is_normalised(tmp_path: Path) -> None:
    target = load(tmp_path, '{ name = "t", value = "192.0.2.1", check_address = "2001:DB8:0::1" }')
    assert target.check_address == "2001:db8::1"


def test_a_target_without_a_value_may_have_a_check_address(tmp_path: Path) -> None:
    target = load(tmp_path, '{ name = "t", check_address = "10.0.0.9" }')
    assert (target.value, target.check_address) == (None, "10.0.0.9")


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ('{ name = "t", value = "192.0.2.1", check_address = "sidecar.example.net" }', "check_address"),
        ('{ name = "t", value = "192.0.2.1", check_address = "10.0.0.300" }', "not an IP address"),
        ('{ name = "t", value = "192.0.2.1", check_address = 10 }', "check_address must be a string"),
        ('{ name = "t", value = "192.0.2.1", check_port = 0 }', "check_port must be 1-65535"),
        ('{ name = "t", value = "192.0.2.1", check_port = 65536 }', "check_port must be 1-65535"),
        ('{ name = "t", value = "192.0.2.1", check_port = "80" }', "check_port must be 1-65535"),
        ('{ name = "t", value = "192.0.2.1", port = 80, check_port = 81 }', "port and check_port"),
        (
            '{ name = "t", value = "192.0.2.1", check_host = "x" }',
            "expected one of: check_address, check_port,",
        ),
    ],
)
def test_mistakes_name_file_line_and_key(tmp_path: Path, target: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, target)
    error = caught.value
    key = 'zones."dyn.example.test".records.app.targets'
    assert (error.path, error.line, error.key) == (str(tmp_path / "dynserver.toml"), 13, key)
    assert str(error).startswith(f"{tmp_path / 'dynserver.toml'}:13: {key}: ")
    assert error.message.startswith(("target 't'", "target 1")) and says in error.message
    assert "expected" in error.message, "every message says what was expected"
