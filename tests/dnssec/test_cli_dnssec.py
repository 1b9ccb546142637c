"""`dynserver dnssec ds|status|rollover` on keys in a key_directory and in the database,
with no server running (tests/e2e/test_dnssec.py runs them, as a user does, against one).
The command line runs in this process on a fake clock, so a roll's waits take no time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from dynserver.cli import main
from dynserver.dnssec import keys
from dynserver.dnssec.keystore import DirectoryKeys

ZONE = "signed.example.test"
ZONE_FILE = f"""\
$ORIGIN {ZONE}.
$TTL 1
@    IN SOA ns1 hostmaster 1 3600 600 86400 1
     IN NS  ns1
ns1  IN A   192.0.2.53
www  7 IN A 192.0.2.10
"""


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    return fake


Run = Callable[..., Done]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """`dynserver dnssec ARGS --config CONFIG ZONE`, in this process."""

    def command(config: Path, *args: str) -> Done:
        capsys.readouterr()
        code = main(["dnssec", *args, "--config", str(config), ZONE])
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return command


def write(folder: Path, dnssec: str) -> Path:
    (folder / f"{ZONE}.zone").write_text(ZONE_FILE)
    config = folder / "dynserver.toml"
    config.write_text(
        f'[server]\ndns = ["127.0.0.1:0"]\ncontrol = ""\n\n[zones."{ZONE}"]\nfile = "{ZONE}.zone"\n{dnssec}'
    )
    return config


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, keys.Key]:
    config = write(tmp_path, f'\n[zones."{ZONE}".dnssec]\nenabled = true\nkey_directory = "keys"\n')
    key = keys.generate(
        tuple(label.encode() for label in ZONE.split(".")), keys.ECDSAP256SHA256, time.time() - 60
    )
    DirectoryKeys(tmp_path / "keys").save(key)
    return config, key


def test_ds_prints_the_sha256_ds_of_the_key(signed: tuple[Path, keys.Key], run: Run) -> None:
    config, key = signed
    done = run(config, "ds")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    owner, _cls, rdtype, *fields = line.split()
    assert (owner, rdtype) == (f"{ZONE}.", "DS")
    # Checked with dnspython, independently of our code: the DS of this DNSKEY, SHA-256.
    dnskey = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.DNSKEY, key.dnskey_text().split(" DNSKEY ")[1]
    )
    expected = dns.dnssec.make_ds(dns.name.from_text(ZONE), dnskey, "SHA256")
    assert dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, " ".join(fields)) == expected
    assert fields[2] == "2"


def test_a_zone_without_keys_or_not_signed_is_refused(tmp_path: Path, run: Run) -> None:
    config = write(tmp_path, f'\n[zones."{ZONE}".dnssec]\nenabled = true\nkey_directory = "keys"\n')
    done = run(config, "ds")
    assert done.returncode == 1 and "no key yet" in done.stderr
    (tmp_path / "plain").mkdir()
    plain = write(tmp_path / "plain", "")
    done = run(plain, "status")
    assert done.returncode == 1 and "is not signed" in done.stderr, done.stderr


def test_a_rollover_step_by_step(signed: tuple[Path, keys.Key], clock: Clock, run: Run) -> None:
    config, old = signed
    assert "phase: idle" in run(config, "status").stdout
    waits = ["--propagation", "3", "--parent-ds-ttl", "1m", "--parent-propagation", "0"]
    started = run(config, "rollover", *waits)
    assert started.returncode == 0, started.stderr
    assert "phase: publishing" in started.stdout
    assert "no server answers" not in started.stdout  # control = "": nothing to ask
    found = DirectoryKeys(config.parent / "keys").load(old.zone)
    assert len(found) == 2
    new = next(k for k in found if k.tag != old.tag)
    assert new.publish == new.activate and new.sync_publish == new.publish + 4  # SOA TTL 1 + Dprp 3
    # The old key stays the parent's until then; ds prints it alone.
    assert run(config, "ds").stdout.split()[3] == str(old.tag)
    again = run(config, "rollover", *waits)
    assert again.returncode == 1 and "one key in use" in again.stderr
    early = run(config, "rollover", "--ds-published", *waits)
    assert early.returncode == 1 and "too early" in early.stderr
    clock.now = new.sync_publish
    status = run(config, "status").stdout
    assert "phase: submit-ds" in status and f"key {new.tag}'s" in status, status
    assert run(config, "ds").stdout.split()[3] == str(new.tag)
    done = run(config, "rollover", "--ds-published", *waits)
    assert done.returncode == 0, done.stderr
    assert "phase: retiring" in done.stdout
    removed = next(k for k in DirectoryKeys(config.parent / "keys").load(old.zone) if k.tag == old.tag)
    # max(now + 0 + TTL(DS) 60, t0 + 3 + max TTL 7): the parent's DS TTL decides.
    assert removed.delete is not None and removed.delete == removed.inactive
    assert removed.delete == clock.now + 60
    clock.now += 60
    status = run(config, "status").stdout
    assert "phase: idle" in status and "removed" in status, status
    assert run(config, "ds").stdout.split()[3] == str(new.tag)


def test_keys_in_the_database(tmp_path: Path, run: Run) -> None:
    (tmp_path / f"{ZONE}.zone").write_text(ZONE_FILE)
    config = tmp_path / "dynserver.toml"
    config.write_text(
        f'[server]\ndns = ["127.0.0.1:0"]\ncontrol = ""\ndatabase = "db.sqlite"\n\n'
        f'[zones."{ZONE}"]\nfile = "{ZONE}.zone"\n\n[zones."{ZONE}".dnssec]\nenabled = true\n'
    )
    assert "no key yet" in run(config, "ds").stderr
    started = run(config, "rollover")
    assert started.returncode == 1 and "one key in use" in started.stderr


def test_a_rollover_keeps_the_current_keys_algorithm(tmp_path: Path, run: Run) -> None:
    """The config asks for Ed25519, the zone's key is ECDSA: the roll makes an ECDSA key
    (an algorithm change is another procedure, RFC 6781 4.1.4)."""
    config = write(
        tmp_path, f'\n[zones."{ZONE}".dnssec]\nenabled = true\nkey_directory = "keys"\nalgorithm = 15\n'
    )
    old = keys.generate(
        tuple(label.encode() for label in ZONE.split(".")), keys.ECDSAP256SHA256, time.time() - 60
    )
    DirectoryKeys(tmp_path / "keys").save(old)
    assert run(config, "rollover").returncode == 0
    found = DirectoryKeys(tmp_path / "keys").load(old.zone)
    assert sorted(k.algorithm for k in found) == [keys.ECDSAP256SHA256, keys.ECDSAP256SHA256]
