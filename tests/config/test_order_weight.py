"""A record's ``order`` and a target's ``weight`` (issue 17): rotation and weighted first
places; good values load, bad ones name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import DynamicRecord, Order
from tests.dns.zones import DYN

HEAD = """\
[server]
dns = ["127.0.0.1:15353"]

[zones."dyn.example.test"]
file = "dyn.example.test.zone"

[zones."dyn.example.test".records.app]
type = "{kind}"
{extra}
targets = [
"""
CONFIG = "dynserver.toml"


def load(tmp_path: Path, *targets: str, kind: str = "A", extra: str = "") -> DynamicRecord:
    (tmp_path / "dyn.example.test.zone").write_text(DYN)
    path = tmp_path / CONFIG
    path.write_text(HEAD.format(kind=kind, extra=extra) + "".join(f"  {t},\n" for t in targets) + "]\n")
    (record,) = config.load(path).zones[0].records
    return record


def test_defaults_rotate_with_equal_weights(tmp_path: Path) -> None:
    record = load(tmp_path, '{ name = "a", value = "192.0.2.1" }', '{ name = "b", value = "192.0.2.2" }')
    assert record.order is Order.ROTATE
    assert [t.weight for t in record.targets] == [1, 1]


def test_order_and_weights_load(tmp_path: Path) -> None:
    record = load(
        tmp_path,
        '{ name = "a", value = "192.0.2.1", weight = 3 }',
        '{ name = "b", value = "192.0.2.2", weight = 1000 }',
        extra='order = "fixed"',
    )
    assert record.order is Order.FIXED
    assert [t.weight for t in record.targets] == [3, 1000]


def error_of(tmp_path: Path, *targets: str, kind: str = "A", extra: str = "") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, *targets, kind=kind, extra=extra)
    error = caught.value
    assert error.path == str(tmp_path / CONFIG)
    assert str(error).startswith(f"{tmp_path / CONFIG}:{error.line}: {error.key}: ")
    assert "expected" in error.message, "every message says what was expected"
    return error


@pytest.mark.parametrize(
    "weight",
    ["0", "-1", "1001", "1.5", '"2"', "true"],
    ids=["zero", "negative", "big", "float", "str", "bool"],
)
def test_a_bad_weight_names_file_line_and_key(tmp_path: Path, weight: str) -> None:
    error = error_of(tmp_path, f'{{ name = "a", value = "192.0.2.1", weight = {weight} }}')
    assert (error.line, error.key) == (10, 'zones."dyn.example.test".records.app.targets')
    assert error.message.startswith("target 'a': weight ")
    assert error.message.endswith("not a whole number 1-1000; expected its share of first places, such as 3")


def test_a_bad_order_names_file_line_and_key(tmp_path: Path) -> None:
    error = error_of(tmp_path, '{ name = "a", value = "192.0.2.1" }', extra='order = "random"')
    assert (error.line, error.key) == (9, 'zones."dyn.example.test".records.app.order')
    assert "rotate or fixed" in error.message


@pytest.mark.parametrize(
    ("target", "extra", "line", "key"),
    [
        ('{ name = "a", value = "a.example.net", weight = 2 }', "", 10, "targets"),
        ('{ name = "a", value = "a.example.net" }', 'order = "rotate"', 9, "order"),
    ],
)
def test_a_cname_answers_one_target_so_neither_applies(
    tmp_path: Path, target: str, extra: str, line: int, key: str
) -> None:
    error = error_of(tmp_path, target, kind="CNAME", extra=extra)
    assert (error.line, error.key) == (line, f'zones."dyn.example.test".records.app.{key}')
    assert "a CNAME answers one target" in error.message
