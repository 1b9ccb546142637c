"""Credentials: made, hashed, verified, scoped, stored; the `credential` commands.

The commands run as users run them (a subprocess), also while the server runs: the
server reads credentials per request, so an added one works and a revoked one stops
working on the next request, without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dynserver import config
from dynserver.config import parse_name
from dynserver.store.db import Store
from dynserver.update import credentials
from dynserver.update.credentials import Principal
from dynserver.update.scopes import in_scope
from dynserver.update.targets import InvalidValue, Targets, parse_value
from tests.support import dynserver, free_port, loopback, wait_for_http
from tests.update.common import APP, BRAVO, add, cli, write_config

APP_NAME = parse_name(APP)


def test_the_secret_is_random_and_only_its_salted_hash_is_kept() -> None:
    first, secret = credentials.create("bravo-backup", admin=False, targets=[f"{APP}/bravo"], now=1.0)
    second, other = credentials.create("bravo-backup", admin=False, targets=[f"{APP}/bravo"], now=1.0)
    assert len(secret) == 43 and secret != other
    assert first.salt != second.salt and len(first.salt) == credentials.SALT_BYTES
    assert secret.encode() not in repr(first).encode()
    assert credentials.verify(first, secret)
    assert not credentials.verify(first, other)
    assert not credentials.verify(first, secret[:-1])
    assert not credentials.verify(first, "")


def test_create_is_deterministic_given_its_randomness() -> None:
    stored, secret = credentials.create(
        "x", admin=True, targets=[], now=5.0, token=lambda n: "t" * n, salt=lambda n: b"s" * n
    )
    assert secret == "t" * 32
    assert stored.digest == credentials.digest(b"s" * 16, "t" * 32)
    assert (stored.admin, stored.targets, stored.created) == (True, (), 5.0)


@pytest.mark.parametrize(
    ("name", "admin", "targets"),
    [
        ("has:colon", True, []),  # the Basic-auth user name cannot hold a colon
        ("", True, []),
        ("-dash-first", True, []),
        ("x" * 65, True, []),
        ("both", True, [f"{APP}/bravo"]),
        ("neither", False, []),
    ],
)
def test_bad_credentials_are_refused_with_the_rule(name: str, admin: bool, targets: list[str]) -> None:
    with pytest.raises(ValueError, match=r"expected|either admin"):
        credentials.create(name, admin=admin, targets=targets, now=0.0)


def test_a_bearer_token_finds_its_credential() -> None:
    made = [credentials.create(f"c{n}", admin=True, targets=[], now=0.0) for n in range(5)]
    stored = [c for c, _ in made]
    assert credentials.find_by_secret(stored, made[3][1]) == stored[3]
    assert credentials.find_by_secret(stored, "not-a-secret") is None
    assert credentials.find_by_secret([], made[0][1]) is None


def test_scopes() -> None:
    bravo = (APP_NAME, "A", "bravo")
    charlie = (APP_NAME, "A", "charlie")
    assert in_scope([f"{APP}/bravo"], bravo) and not in_scope([f"{APP}/bravo"], charlie)
    assert in_scope([f"{APP}/*"], charlie)
    assert Principal("root", True, ()).may_update(charlie)
    assert not Principal("b", False, (f"{APP}/bravo",)).may_update(charlie)


def test_scopes_are_checked_against_the_config(tmp_path: Path) -> None:
    loaded = config.load(write_config(tmp_path))
    targets = Targets.build(r for zone in loaded.zones for r in zone.records)
    assert targets.check_scope("APP.dyn.example.test./Bravo") == f"{APP}/bravo"
    assert targets.check_scope(f"{APP}/*") == f"{APP}/*"
    with pytest.raises(ValueError, match="known: charlie, bravo"):
        targets.check_scope(f"{APP}/zulu")
    with pytest.raises(ValueError, match=r"no dynamic record 'nope\.dyn\.example\.test'"):
        targets.check_scope("nope.dyn.example.test/bravo")
    with pytest.raises(ValueError, match="expected RECORD/TARGET"):
        targets.check_scope(BRAVO)
    assert targets.by_hostname("Bravo.App.dyn.example.test.") == (APP_NAME, "A", "bravo")


@pytest.mark.parametrize(
    ("rtype", "text", "value"),
    [
        ("A", " 192.0.2.1 ", "192.0.2.1"),
        ("AAAA", "2001:DB8:0:0::1", "2001:db8::1"),
        ("CNAME", "Host.Example.NET", "host.example.net."),
    ],
)
def test_values_are_canonical(rtype: str, text: str, value: str) -> None:
    assert parse_value(rtype, text) == value


@pytest.mark.parametrize(
    ("rtype", "text", "message"),
    [
        ("A", "2001:db8::1", "not an IPv4 address"),
        ("AAAA", "192.0.2.1", "not an IPv6 address"),
        ("A", "192.0.2.300", "not an IP address"),
        ("A", "", "empty"),
        ("CNAME", "bad..name", "not a host name"),
    ],
)
def test_bad_values_say_what_was_expected(rtype: str, text: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_value(rtype, text)


def test_migration_3_adds_credentials_to_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a version-2 database, as the previous release left it
        db.execute("CREATE TABLE target_state (record TEXT)")
        db.execute("PRAGMA user_version=2")

    async def run() -> None:
        store = await Store.open(path)
        try:
            stored, _ = credentials.create("a", admin=True, targets=[], now=1.0)
            assert await store.add_credential(stored)
            assert not await store.add_credential(stored)  # a name is never replaced
            await store.touch_credentials({"a": 9.0})
            await store.touch_credentials({"a": 5.0})  # an older use does not go back in time
            [row] = await store.credentials()
            assert row.last_used == 9.0 and row.digest == stored.digest
            assert await store.credential("a") == row
            assert await store.delete_credential("a")
            assert not await store.delete_credential("a")
        finally:
            await store.close()

    asyncio.run(run())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 3  # later migrations may follow


# -- the commands --------------------------------------------------------------------


def dyndns2(
    url: str, name: str, secret: str, hostname: str = BRAVO, myip: str = "192.0.2.77"
) -> tuple[int, str]:
    request = urllib.request.Request(f"{url}/nic/update?hostname={hostname}&myip={myip}")
    token = f"{name}:{secret}".encode()
    request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_add_prints_the_secret_last_and_stores_only_a_hash(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    scope = ["--target", f"{APP}/bravo", f"{APP}/*"]
    result = cli("add", "--config", str(path), "--name", "bravo-backup", *scope)
    assert result.returncode == 0, result.stderr
    secret = result.stdout.splitlines()[-1]
    assert len(secret) == 43 and secret not in "\n".join(result.stdout.splitlines()[:-1])
    assert f"may update {APP}/bravo, {APP}/*" in result.stdout
    database = (tmp_path / "dynserver.db").read_bytes()
    wal = tmp_path / "dynserver.db-wal"
    assert secret.encode() not in database + (wal.read_bytes() if wal.exists() else b"")

    listed = cli("list", "--config", str(path))
    assert listed.returncode == 0
    assert "bravo-backup" in listed.stdout and f"{APP}/bravo" in listed.stdout and "never" in listed.stdout
    assert secret not in listed.stdout

    again = cli("add", "--config", str(path), "--name", "bravo-backup", "--admin")
    assert again.returncode == 1 and "exists" in again.stderr

    with sqlite3.connect(tmp_path / "dynserver.db") as db:
        events = db.execute("SELECT kind, reason, actor FROM event WHERE kind = 'credential'").fetchall()
    assert events == [("credential", f"added: {APP}/bravo, {APP}/*", "cli")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--target", f"{APP}/zulu"], "has no target 'zulu'; known: charlie, bravo"),
        (["--name", "x", "--target", "app/bravo"], "no dynamic record 'app'"),
        (["--name", "x:y", "--admin"], "not a credential name"),
        (["--name", "x", "--target", "acme:other.test"], "'other.test' is not a name in a zone served here"),
    ],
)
def test_add_refuses_what_the_config_does_not_have(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("add", "--config", str(write_config(tmp_path)), *args)
    assert result.returncode == 1
    assert message in result.stderr


def test_add_an_acme_scope(tmp_path: Path) -> None:
    """acme:NAME (issue 18): the challenges of NAME and the names under it."""
    path = str(write_config(tmp_path))
    added = cli("add", "--config", path, "--name", "acmebot", "--target", "acme:App.Dyn.Example.Test.")
    assert added.returncode == 0, added.stderr
    assert "may update acme:app.dyn.example.test" in added.stdout
    listed = cli("list", "--config", path)
    assert "acme:app.dyn.example.test" in listed.stdout


def test_add_needs_exactly_one_scope(tmp_path: Path) -> None:
    path = str(write_config(tmp_path))
    assert cli("add", "--config", path, "--name", "x").returncode == 2
    assert cli("add", "--config", path, "--name", "x", "--admin", "--target", f"{APP}/bravo").returncode == 2


def test_database_option_and_a_config_without_one(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    other = tmp_path / "elsewhere.db"
    add(path, "a", "--admin")
    result = cli("add", "--config", str(path), "--database", str(other), "--name", "b", "--admin")
    assert result.returncode == 0
    assert "b " in cli("list", "--config", str(path), "--database", str(other)).stdout
    assert "b " not in cli("list", "--config", str(path)).stdout
    none = cli("list", "--config", str(path), "--database", "")
    assert none.returncode == 1 and "keeps no database" in none.stderr


def test_revoke_unknown_names_the_known(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    add(path, "a", "--admin")
    result = cli("revoke", "--config", str(path), "--name", "zz")
    assert result.returncode == 1 and "no credential 'zz'; known: a" in result.stderr


def test_the_running_server_obeys_add_and_revoke_at_once(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    host = loopback()
    http = f"{host}:{free_port(host)}"
    with dynserver(path, host=host, http=http) as server:
        url = f"http://{http}"
        wait_for_http(url + "/healthz")
        assert dyndns2(url, "bravo-backup", "x" * 43) == (401, "badauth\n")
        secret = add(path, "bravo-backup", "--target", f"{APP}/bravo")  # the server runs meanwhile
        assert dyndns2(url, "bravo-backup", secret) == (200, "good 192.0.2.77\n")
        assert dyndns2(url, "bravo-backup", secret, hostname=f"charlie.{APP}") == (200, "nohost\n")
        listed = cli("list", "--config", str(path)).stdout
        assert "never" not in listed.splitlines()[1]  # last used is recorded
        assert cli("revoke", "--config", str(path), "--name", "bravo-backup").returncode == 0
        assert dyndns2(url, "bravo-backup", secret, myip="192.0.2.78") == (401, "badauth\n")
        log = server.log_text()
    assert secret not in log
    assert "credential=bravo-backup" in log
