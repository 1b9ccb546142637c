"""[zones."NAME".transfer]: the example of issue 7 loads as written, and every mistake is
located (file:line: key) and says what was expected."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import Secondary

SECRET = "ZHluc2VydmVyLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk="
HEAD = f"""\
[server]
dns = ["127.0.0.1:0"]

[keys.xfr]
secret = "{SECRET}"

[keys.other]
secret = "{SECRET}"

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".transfer]
"""


def load(tmp_path: Path, transfer: str) -> config.Config:
    path = tmp_path / "dynserver.toml"
    path.write_text(HEAD + transfer)
    return config.load(path)


def test_the_example_of_the_issue(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        'secondaries = [{ address = "127.0.0.51:15353", key = "xfr" }]\nallow = ["127.0.0.0/8"]\n',
    )
    transfer = loaded.zones[0].transfer
    assert transfer is not None
    assert transfer.secondaries == (Secondary("127.0.0.51", 15353, "xfr"),)
    assert transfer.allow == (ipaddress.ip_network("127.0.0.0/8"),)
    assert transfer.journal == 1000


def test_every_key(tmp_path: Path) -> None:
    transfer = (
        load(
            tmp_path,
            'secondaries = [{ address = "192.0.2.53" }, { address = "[2001:db8::53]:5353", key = "XFR." }]\n'
            'allow = ["198.51.100.7", "2001:db8::/32"]\nallow_keys = ["other"]\njournal = 0\n',
        )
        .zones[0]
        .transfer
    )
    assert transfer is not None
    assert transfer.secondaries == (Secondary("192.0.2.53", 53, None), Secondary("2001:db8::53", 5353, "xfr"))
    assert [str(n) for n in transfer.allow] == ["198.51.100.7/32", "2001:db8::/32"]
    assert transfer.allow_keys == ("other",)
    assert transfer.journal == 0


def test_no_transfer_table_means_none(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.toml"
    path.write_text(HEAD.replace('[zones."dyn.example.test".transfer]\n', ""))
    assert config.load(path).zones[0].transfer is None


@pytest.mark.parametrize(
    ("transfer", "line", "message"),
    [
        (
            "secondary = []\n",
            14,
            "transfer.secondary: unknown key; expected one of: allow, allow_keys, journal, secondaries",
        ),
        ('secondaries = "192.0.2.53"\n', 14, "expected a list of tables"),
        ('secondaries = [{ adress = "192.0.2.53" }]\n', 14, "secondary 1: unknown key 'adress'"),
        ('secondaries = [{ key = "xfr" }]\n', 14, "secondary 1: no address; expected its IP address"),
        (
            'secondaries = [{ address = "ns1.example.net" }]\n',
            14,
            "secondary 1: address 'ns1.example.net': not an IP address",
        ),
        ('secondaries = [{ address = "192.0.2.53:0" }]\n', 14, "port 0"),
        (
            'secondaries = [{ address = "192.0.2.53", key = "nope" }]\n',
            14,
            "secondary 1: key: no [keys.nope]",
        ),
        (
            'secondaries = [{ address = "192.0.2.53" }, { address = "192.0.2.53:53" }]\n',
            14,
            "secondary 2: 192.0.2.53:53 is listed twice",
        ),
        ('allow = "127.0.0.0/8"\n', 14, "transfer.allow: expected a list of strings"),
        ('allow = ["127.0.0.0/33"]\n', 14, "'127.0.0.0/33' is not an address or network"),
        ('allow_keys = ["nope"]\n', 14, "transfer.allow_keys: no [keys.nope]; expected one of: other, xfr"),
        ("journal = -1\n", 14, "transfer.journal: expected a number from 0 to 100000"),
    ],
)
def test_mistakes_are_located(tmp_path: Path, transfer: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, transfer)
    text = str(caught.value)
    assert f"dynserver.toml:{line}:" in text
    assert message in text, text
