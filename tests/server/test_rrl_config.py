"""[server.rrl] and [server] cookie_secret as the config file gives them to the Guard:
defaults, every key, and the errors naming file, line and key."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import RrlConfig
from tests.support import master_file

ZONE = "a.test"


def load(folder: Path, server: str) -> config.Config:
    (folder / f"{ZONE}.zone").write_text(master_file(ZONE))
    path = folder / "dynserver.toml"
    path.write_text(f'{server}\n[zones."{ZONE}"]\nfile = "{ZONE}.zone"\n')
    return config.load(path)


def test_defaults_are_nsds(tmp_path: Path) -> None:
    server = load(tmp_path, "[server]\n").server
    assert server.rrl == RrlConfig(enabled=True, rate=200, slip=2, window=1.0, exempt=())
    assert server.cookie_secret is None


def test_every_key(tmp_path: Path) -> None:
    text = (
        '[server]\ncookie_secret = "00112233445566778899AABBCCDDEEFF"\n\n[server.rrl]\n'
        'enabled = false\nrate = 50\nslip = 0\nwindow = 2.5\nexempt = ["10.1.2.3/8", "2001:db8::/32"]\n'
    )
    server = load(tmp_path, text).server
    assert server.rrl == RrlConfig(
        enabled=False,
        rate=50,
        slip=0,
        window=2.5,
        exempt=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")),
    )
    assert server.cookie_secret == bytes.fromhex("00112233445566778899aabbccddeeff")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server.rrl]\nrate = "x"\n', "server.rrl.rate: expected a number from 1 to 10000000"),
        ("[server.rrl]\nrate = 0\n", "server.rrl.rate"),
        ("[server.rrl]\nslip = -1\n", "server.rrl.slip"),
        ("[server.rrl]\nbogus = 1\n", "server.rrl.bogus: unknown key"),
        ('[server.rrl]\nexempt = ["nope"]\n', "server.rrl.exempt: 'nope' is not a network"),
        ('[server.rrl]\nexempt = "10.0.0.0/8"\n', "server.rrl.exempt: expected a list of networks"),
        ('[server]\ncookie_secret = "abc"\n', "server.cookie_secret: expected 32 hexadecimal digits"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as caught:
        load(tmp_path, text if text.startswith("[server]") else "[server]\n" + text)
    assert "dynserver.toml:" in str(caught.value)
