"""`dynserver agent add|list|remove` as users run them (a subprocess on the server's
database), and `agent run`'s arguments: it needs no config file."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import run
from tests.update.common import write_config

pytestmark = pytest.mark.timeout(60)

LOCATIONS = '\n[locations]\nquorum = 2\nname = "home"\n'


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return run("agent", *args)


def events(folder: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(folder / "dynserver.db") as db:
        rows = db.execute("SELECT kind, reason, actor, detail FROM event WHERE kind = 'agent' ORDER BY id")
        return rows.fetchall()


def test_add_prints_the_token_last_and_stores_only_a_hash(tmp_path: Path) -> None:
    path = str(write_config(tmp_path, LOCATIONS))
    added = agent("add", "--config", path, "--name", "paris", "--canary", "127.0.0.1:9")
    assert added.returncode == 0, added.stderr
    *lines, token = added.stdout.splitlines()
    assert len(token) == 43 and token not in "\n".join(lines)
    assert "agent paris added (canary 127.0.0.1:9)" in added.stdout
    database = (tmp_path / "dynserver.db").read_bytes()
    wal = tmp_path / "dynserver.db-wal"
    assert token.encode() not in database + (wal.read_bytes() if wal.exists() else b"")

    again = agent("add", "--config", path, "--name", "paris")
    assert again.returncode == 1 and "agent 'paris' exists" in again.stderr
    assert events(tmp_path) == [("agent", "added", "cli", '{"location": "paris"}')]


def test_list_shows_name_last_contact_and_version_never_tokens(tmp_path: Path) -> None:
    path = str(write_config(tmp_path, LOCATIONS))
    assert agent("list", "--config", path).stdout == "no agents\n"
    tokens = [
        agent("add", "--config", path, "--name", name).stdout.splitlines()[-1] for name in ("rome", "oslo")
    ]
    with sqlite3.connect(tmp_path / "dynserver.db") as db:
        db.execute("UPDATE agent SET last_contact = 86400, version = '9.9.9' WHERE name = 'rome'")
    listed = agent("list", "--config", path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "NAME  LAST CONTACT         VERSION",
        "oslo  never                -",
        "rome  1970-01-02 00:00:00Z 9.9.9",
    ]
    assert not any(added.splitlines()[-1] in listed.stdout for added in tokens)


def test_remove_deletes_and_records_it(tmp_path: Path) -> None:
    path = str(write_config(tmp_path, LOCATIONS))
    agent("add", "--config", path, "--name", "paris")
    removed = agent("remove", "--config", path, "--name", "paris")
    assert removed.returncode == 0, removed.stderr
    assert "agent paris removed" in removed.stdout
    assert agent("list", "--config", path).stdout == "no agents\n"
    assert events(tmp_path)[-1] == ("agent", "removed", "cli", '{"location": "paris"}')
    unknown = agent("remove", "--config", path, "--name", "paris")
    assert unknown.returncode == 1 and "no agent 'paris'; known: none" in unknown.stderr


@pytest.mark.parametrize(
    ("extra", "args", "message"),
    [
        (LOCATIONS, ["--name", "home"], "this server's own location name"),
        ("", ["--name", "local"], "this server's own location name"),  # the default name
        (LOCATIONS, ["--name", "pa ris"], "not an agent name"),
        (LOCATIONS, ["--name", "x" * 33], "not an agent name"),
        (LOCATIONS, ["--name", "paris", "--canary", "example.net:443"], "not an IP address"),
    ],
)
def test_add_refuses_a_name_or_canary_it_cannot_use(
    tmp_path: Path, extra: str, args: list[str], message: str
) -> None:
    result = agent("add", "--config", str(write_config(tmp_path, extra)), *args)
    assert result.returncode == 1
    assert message in result.stderr


def test_without_locations_add_works_and_says_so(tmp_path: Path) -> None:
    result = agent("add", "--config", str(write_config(tmp_path)), "--name", "paris")
    assert result.returncode == 0, result.stderr
    assert "no [locations] table" in result.stdout


def test_a_config_without_a_database(tmp_path: Path) -> None:
    result = agent("list", "--config", str(write_config(tmp_path, LOCATIONS)), "--database", "")
    assert result.returncode == 1 and "agents are stored in it" in result.stderr


def test_run_takes_a_server_and_a_token_file_and_no_config() -> None:
    helped = agent("run", "--help")
    assert helped.returncode == 0
    assert "--server" in helped.stdout and "--token-file" in helped.stdout and "--config" not in helped.stdout
    assert agent("run", "--server", "http://127.0.0.1:1").returncode == 2  # no --token-file
