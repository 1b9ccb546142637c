"""The control socket on its own: where it is, its mode, stale and foreign sockets, the
protocol (one JSON line each way), `dynserver reload` against it (exit codes, output),
and real servers sharing one socket path. What a reload does: tests/e2e/test_reload.py."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dynserver.control import ControlServer, control_socket, control_socket_of_file, request
from tests.dns.zones import DYN
from tests.support import dynserver, loopback, write_config
from tests.test_cli import run

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    errors: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    duration: float = 0.01


LIVE = Outcome(ok=True, changes=("record app.dyn.example.test: target charlie added",))
REFUSED = Outcome(ok=False, errors=("dynserver.toml:7: zones.x.records.app.ttl: expected a number",))


@contextmanager
def serving(path: Path, outcome: Outcome = LIVE) -> Iterator[list[int]]:
    """A ControlServer on an event loop of its own (a thread); yields the reloads asked."""
    reloads: list[int] = []
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="control", daemon=True)
    thread.start()
    server = ControlServer(path, reload=lambda: _reload(reloads, outcome))
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        yield reloads
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _reload(reloads: list[int], outcome: Outcome) -> Outcome:
    reloads.append(1)
    return outcome


# -- where the socket is -------------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "database", "expected"),
    [
        (None, Path("/var/lib/dynserver/dynserver.db"), "/var/lib/dynserver/dynserver.control"),
        (None, None, "/etc/dynserver/dynserver.control"),
        ("run/dyn.sock", None, "/etc/dynserver/run/dyn.sock"),
        ("/run/dynserver/control", Path("/var/lib/x.db"), "/run/dynserver/control"),
        ("", Path("/var/lib/x.db"), None),
    ],
)
def test_where_the_socket_is(control: str | None, database: Path | None, expected: str | None) -> None:
    found = control_socket(Path("/etc/dynserver/dynserver.toml"), control, database)
    assert found == (None if expected is None else Path(expected))


@pytest.mark.parametrize(
    ("text", "database", "expected"),
    [
        ("[server]\n", None, "dynserver.control"),
        ('[server]\ndatabase = "state/d.db"\n', None, "state/dynserver.control"),
        ('[server]\ndatabase = ""\ncontrol = "c.sock"\n', None, "c.sock"),
        ('[server]\ncontrol = ""\n', None, None),
        ("[server\nbroken", None, "dynserver.control"),  # the server reports what is wrong
        ("[server]\n", "/data/dynserver.db", "/data/dynserver.control"),
    ],
)
def test_the_reload_command_finds_the_socket_from_the_file(
    tmp_path: Path, text: str, database: str | None, expected: str | None
) -> None:
    config = tmp_path / "dynserver.toml"
    config.write_text(text)
    found = control_socket_of_file(config, database)
    assert found == (None if expected is None else tmp_path / expected)


# -- the socket ----------------------------------------------------------------------


def test_the_socket_is_mode_0600_and_removed_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.control"
    with serving(path):
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
    assert not path.exists()


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.control"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left:
        left.bind(str(path))  # bound, never listening: what a killed server leaves
    with serving(path) as reloads:
        assert request(path, "reload")["ok"] is True
        assert reloads == [1]


def test_a_path_that_is_not_a_socket_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.control"
    path.write_text("someone's file")
    with pytest.raises(OSError, match="exists and is not a socket"), serving(path):
        pass
    assert path.read_text() == "someone's file"


def test_a_socket_another_server_answers_on_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.control"
    with serving(path):
        with pytest.raises(OSError, match="another dynserver answers on it"), serving(path):
            pass
        assert request(path, "reload")["ok"] is True  # the first one still answers


# -- the protocol --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (LIVE, {"ok": True, "changes": list(LIVE.changes), "errors": [], "duration": 0.01}),
        (REFUSED, {"ok": False, "changes": [], "errors": list(REFUSED.errors), "duration": 0.01}),
    ],
)
def test_a_reload_is_answered_with_its_outcome(tmp_path: Path, outcome: Outcome, expected: object) -> None:
    path = tmp_path / "dynserver.control"
    with serving(path, outcome):
        assert request(path, "reload") == expected


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"command": "stop"}\n', "unknown command 'stop'; expected reload"),
        (b"[1, 2]\n", "unknown command None; expected reload"),
        (b"reload\n", 'expected one JSON line, e.g. {"command": "reload"}'),
    ],
)
def test_anything_else_is_refused_and_reloads_nothing(tmp_path: Path, line: bytes, error: str) -> None:
    path = tmp_path / "dynserver.control"
    with serving(path) as reloads, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(line)
        with sock.makefile("rb") as stream:
            reply = json.loads(stream.readline())
        assert reply == {"ok": False, "changes": [], "errors": [error], "duration": 0.0}
        assert reloads == []


def test_a_reload_that_crashes_is_answered_too(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.control"

    async def crash() -> Outcome:
        raise RuntimeError("a bug")

    loop = asyncio.new_event_loop()
    server = ControlServer(path, reload=crash)
    try:
        loop.run_until_complete(server.start())
        reply = loop.run_until_complete(asyncio.to_thread(request, path, "reload"))
        loop.run_until_complete(server.stop())
    finally:
        loop.close()
    assert reply["ok"] is False
    assert reply["errors"] == ["the reload failed unexpectedly (RuntimeError('a bug')); see the server's log"]


def test_without_a_server_the_client_gets_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        request(tmp_path / "dynserver.control", "reload")


# -- `dynserver reload` --------------------------------------------------------------


def reload_command(*args: str) -> subprocess.CompletedProcess[str]:
    return run("reload", *args)


def test_the_command_prints_the_changes_and_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "dynserver.toml"
    config.write_text("[server]\n")
    with serving(tmp_path / "dynserver.control"):
        result = reload_command("--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "record app.dyn.example.test: target charlie added" in result.stdout
    assert result.stdout.startswith("reloaded in ")


def test_the_command_prints_the_errors_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "dynserver.toml"
    config.write_text("[server]\n")
    with serving(tmp_path / "dynserver.control", REFUSED):
        result = reload_command("--config", str(config))
    assert result.returncode == 1
    assert REFUSED.errors[0] in result.stderr
    assert "keeps the config it runs" in result.stderr


def test_the_command_with_an_explicit_socket(tmp_path: Path) -> None:
    config = tmp_path / "dynserver.toml"
    config.write_text('[server]\ncontrol = ""\n')
    (tmp_path / "run").mkdir()
    with serving(tmp_path / "run" / "c"):
        result = reload_command("--config", str(config), "--control", str(tmp_path / "run" / "c"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\n", "is dynserver running?"),
        ('[server]\ncontrol = ""\n', 'has no control socket ([server] control = "")'),
    ],
)
def test_the_command_without_a_server_exits_1(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "dynserver.toml"
    config.write_text(text)
    result = reload_command("--config", str(config))
    assert result.returncode == 1
    assert message in result.stderr


# -- with real servers ---------------------------------------------------------------


def test_one_server_per_socket_and_a_killed_ones_is_replaced(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"dyn.example.test": DYN})
    socket_path = tmp_path / "dynserver.control"
    with dynserver(config) as first:
        second = run("serve", "--config", str(config), "--dns", f"{loopback()}:0", "--database", "")
        assert second.returncode == 1
        assert f"control socket {socket_path}: another dynserver answers on it" in second.stderr
        assert run("reload", "--config", str(config)).returncode == 0  # the first still answers
        first.process.kill()  # SIGKILL: its socket stays behind
        first.process.wait()
    assert stat.S_ISSOCK(os.lstat(socket_path).st_mode)
    with dynserver(config):
        result = run("reload", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith(" s: no change\n"), result.stdout
