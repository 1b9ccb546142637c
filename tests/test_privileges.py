"""[server] user: a process started as root binds, then becomes the user with no capability
left (read from /proc, every thread); a user that does not exist is a config error.

The process tests need root: they skip with the reason when not run as root, and fail
under CI=true, where the suite runs as root. They become `nobody`, and touch only what
works without reading the interpreter's files again: here Python lives under /root
(0700), where `nobody` cannot import a module that was not imported before the drop.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from dynserver import privileges
from dynserver.config import load
from dynserver.errors import ConfigError
from tests.support import (
    DEADLINE,
    IN_CI,
    ROOT,
    dynserver,
    free_port,
    loopback,
    master_file,
    poll,
    require_program,
)

pytestmark = pytest.mark.timeout(120)

USER = "nobody"
ZONE = "dyn.example.test"


def _require_root() -> None:
    if os.geteuid() == 0:
        return
    message = "dropping privileges needs a process started as root; run the tests as root"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder the user owns, reachable by it (pytest's tmp_path is under a 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="dynserver-privileges-", dir="/tmp"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        account = pwd.getpwnam(USER)
        os.chown(path, account.pw_uid, account.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _config(folder: Path, user: str) -> Path:
    (folder / f"{ZONE}.zone").write_text(master_file(ZONE, "ns1 IN A 192.0.2.53\n"))
    config = folder / "dynserver.toml"
    config.write_text(
        f'[server]\ndns = ["127.0.0.1:0"]\nuser = "{user}"\ndatabase = "dynserver.db"\n\n'
        f'[zones."{ZONE}"]\nfile = "{ZONE}.zone"\n'
    )
    return config


# -- the config ------------------------------------------------------------------------


def test_a_user_that_does_not_exist_is_a_config_error_when_root(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    config = _config(folder, "no-such-user-dynserver")
    with pytest.raises(ConfigError) as raised:
        load(config)
    assert raised.value.key == "server.user"
    assert raised.value.line == 3
    assert "no user 'no-such-user-dynserver' on this system" in str(raised.value)
    assert "useradd --system" in str(raised.value)


def test_the_user_is_not_looked_up_when_not_root(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config checked in CI or on a laptop need not name a user that exists there."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert load(_config(folder, "no-such-user-dynserver")).server.user == "no-such-user-dynserver"


def test_the_user_is_optional(folder: Path) -> None:
    config = folder / "plain.toml"
    (folder / f"{ZONE}.zone").write_text(master_file(ZONE))
    config.write_text(f'[zones."{ZONE}"]\nfile = "{ZONE}.zone"\n')
    assert load(config).server.user is None


def test_no_user_changes_nothing() -> None:
    before = (os.getuid(), os.getgid(), privileges.capability_sets())
    privileges.drop_privileges(None, None)
    assert (os.getuid(), os.getgid(), privileges.capability_sets()) == before


def test_capability_sets_read_a_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(
        "Name:\tdynserver\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000400\n"
        "CapEff:\t0000000000000400\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000400\n"
    )
    assert privileges.capability_sets(status) == {"CapInh": 0, "CapPrm": 1024, "CapEff": 1024, "CapAmb": 1024}


# -- a real process started as root ---------------------------------------------------


def _status(pid: int | str, task: str = "") -> dict[str, str]:
    path = Path(f"/proc/{pid}/task/{task}/status") if task else Path(f"/proc/{pid}/status")
    fields = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def test_started_as_root_it_binds_then_becomes_the_user_with_no_capability(folder: Path) -> None:
    _require_root()
    account = pwd.getpwnam(USER)
    config = _config(folder, USER)
    host = loopback()
    http = f"{host}:{free_port(host)}"
    with dynserver(config, host=host, http=http, zone=ZONE) as server:
        pid = server.process.pid
        poll(lambda: "event=privileges_dropped" in server.log_text(), bool, "the drop logged")
        status = _status(pid)
        ids = {str(account.pw_uid)}, {str(account.pw_gid)}
        assert set(status["Uid"].split()) == ids[0]  # real, effective, saved, filesystem
        assert set(status["Gid"].split()) == ids[1]
        assert set(status["Groups"].split()) <= {str(g) for g in os.getgrouplist(USER, account.pw_gid)}
        assert status["NoNewPrivs"] == "1"
        assert int(status["CapBnd"], 16) == 0
        # Every thread (the event loop's, aiosqlite's, the executor's): glibc changes the
        # user of all of them, and the kernel then clears what they held.
        threads = os.listdir(f"/proc/{pid}/task")
        for task in threads:
            thread = _status(pid, task)
            assert set(thread["Uid"].split()) == ids[0], task
            for name in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                assert int(thread[name], 16) == 0, (task, name, thread[name])

        # Still serving: the listeners bound as root stay, the database is the user's.
        query = dns.message.make_query(ZONE, "SOA")
        assert dns.query.udp(query, server.host, port=server.port, timeout=5).rcode() == dns.rcode.NOERROR
        assert dns.query.tcp(query, server.host, port=server.port, timeout=5).rcode() == dns.rcode.NOERROR
        with urllib.request.urlopen(f"http://{http}/healthz", timeout=5) as response:
            assert response.status == 200
        for name in ("dynserver.db", "dynserver.control"):
            assert (folder / name).stat().st_uid == account.pw_uid, name

        # A reload reads the config as the user, and keeps serving.
        server.process.send_signal(signal.SIGHUP)
        poll(lambda: "event=reload" in server.log_text(), bool, "the reload logged")
        assert dns.query.udp(query, server.host, port=server.port, timeout=5).rcode() == dns.rcode.NOERROR

        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(DEADLINE) == 0, server.log_text()
    log = server.log_text()
    assert "Traceback" not in log and "level=error" not in log, log


def test_started_as_root_with_a_user_that_does_not_exist_it_exits_with_the_reason(folder: Path) -> None:
    _require_root()
    config = _config(folder, "no-such-user-dynserver")
    command = [sys.executable, "-m", "dynserver", "serve", "--config", str(config)]
    command += ["--dns", f"{loopback()}:0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert "dynserver.toml:3: server.user: no user 'no-such-user-dynserver' on this system" in result.stderr


# -- the systemd unit --------------------------------------------------------------------

UNIT = ROOT / "contrib" / "dynserver.service"


def _unit_settings() -> dict[str, list[str]]:
    """Each key's values, continuation lines joined and comments dropped."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().replace("\\\n", " ").splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(" ".join(value.split()))
    return settings


def test_the_unit_reloads_with_sighup_and_binds_port_53_as_a_user_of_its_own() -> None:
    settings = _unit_settings()
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["ExecStart"][0].split()[1:3] == ["serve", "--config"]
    assert settings["DynamicUser"] == ["yes"]
    assert settings["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert settings["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]  # nothing more, even by exec
    assert "User" not in settings  # the dynamic user: [server] user is for a start as root


def test_systemd_rates_the_unit_exposure_at_most_2() -> None:
    program = require_program("systemd-analyze", "systemd")
    result = subprocess.run(
        [program, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for dynserver\.service: (\d+\.\d)", result.stdout)
    assert found, result.stdout + result.stderr
    # 1.5 with systemd 252 (the unit's header and docs/security.md); other versions weigh
    # the options a little differently, so only the bound is held here.
    assert float(found.group(1)) <= 2.0, result.stdout
