"""The command line as users run it: `python -m dynserver ...` in a subprocess.

The contract of issue 2, section 2: `serve --config PATH [--dns HOST:PORT]... [--http
HOST:PORT]` (the flags override the config's listeners), `check-config --config PATH`
(exit 0, or 1 with a message naming file, line and key), `--version`. A broken config
makes `serve` exit 1 before anything is served.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from dynserver import __version__
from tests.dns.zones import DYN
from tests.support import ROOT, dynserver, free_port, loopback, stop, wait_for_dns

pytestmark = pytest.mark.timeout(60)


def run(*args: str, cwd: Path = ROOT, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynserver", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def write(folder: Path, text: str) -> Path:
    (folder / "dyn.example.test.zone").write_text(DYN)
    path = folder / "dynserver.toml"
    path.write_text(text)
    return path


def zone_config(listener: str = "127.0.0.1:0") -> str:
    return f'[server]\ndns = ["{listener}"]\n\n[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n'


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dynserver {__version__}"


def test_the_installed_script_runs() -> None:
    script = Path(sys.executable).parent / "dynserver"
    if not script.exists():
        pytest.skip("dynserver is not installed as a script in this environment")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout.strip()) == (0, f"dynserver {__version__}")


def test_without_a_command_it_shows_usage() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: dynserver" in result.stderr


def test_check_config_ok(tmp_path: Path) -> None:
    path = write(tmp_path, zone_config())
    result = run("check-config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: OK")
    assert "dyn.example.test." in result.stdout


def test_check_config_with_a_relative_path_from_elsewhere(tmp_path: Path) -> None:
    """Paths in the config are relative to the config file, not to the working directory."""
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", zone_config())
    result = run("check-config", "--config", "conf/dynserver.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (zone_config() + "bogus = 1\n", 'dynserver.toml:6: zones."dyn.example.test".bogus: unknown key'),
        (
            '[server]\ndns = ["127.0.0.1"]\n',
            "dynserver.toml:2: server.dns: '127.0.0.1': expected \"host:port\"",
        ),
        (
            zone_config() + '[zones."Dyn.Example.Test."]\nfile = "dyn.example.test.zone"\n',
            'dynserver.toml:6: zones."Dyn.Example.Test.": duplicate zone',
        ),
        (
            '[zones."dyn.example.test"]\nttl = 60\n',
            'dynserver.toml:1: zones."dyn.example.test".nameservers: ',
        ),
        ('[server]\ndns = [\n\n[zones."x"]\n', "dynserver.toml:4: not valid TOML"),
        (
            '[zones."dyn.example.test"]\nfile = "bad.zone"\n',
            "bad.zone:3: SOA: no SOA record at the zone apex",
        ),
    ],
    ids=[
        "unknown key",
        "bad listener",
        "duplicate zone",
        "no file, no nameservers",
        "bad TOML",
        "master file",
    ],
)
def test_check_config_reports_the_first_mistake(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    (tmp_path / "bad.zone").write_text("$TTL 300\n\n@ NS ns1.example.net.\n")
    result = run("check-config", "--config", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    message = result.stderr.strip()
    assert message.startswith(f"dynserver: config error: {tmp_path}/"), message
    assert where in message, message
    assert "expected" in message
    assert len(message.splitlines()) == 1, "one clear line, no traceback"


def test_check_config_of_a_missing_file(tmp_path: Path) -> None:
    result = run("check-config", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert f"{tmp_path / 'nope.toml'}: cannot read config" in result.stderr


def test_serve_refuses_a_broken_config_and_serves_nothing(tmp_path: Path) -> None:
    host = loopback()
    port = free_port(host)
    path = write(tmp_path, zone_config(f"{host}:{port}") + "typo = true\n")
    result = run("serve", "--config", str(path), "--http", f"{host}:{free_port(host)}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f'dynserver: config error: {path}:6: zones."dyn.example.test".typo: unknown key; '
        "expected one of: dnssec, file, records, transfer"
    )
    assert not (tmp_path / "dynserver.db").exists(), "nothing was started, not even the database"


@pytest.mark.parametrize(
    "database",
    [
        'database = ""',
        "",
    ],
    ids=["no database", "default database"],
)
def test_serve_on_a_busy_port_exits_1(tmp_path: Path, database: str) -> None:
    host = loopback()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((host, 0))
        port = busy.getsockname()[1]
        path = write(tmp_path, zone_config(f"{host}:{port}").replace("[zones", f"{database}\n\n[zones", 1))
        try:
            # 20 s: a start and stop take 2-6 s when the machine is loaded (8 timed out).
            result = run("serve", "--config", str(path), cwd=tmp_path, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("serve did not exit")
    assert result.returncode == 1
    error = f"dynserver: cannot listen: [Errno 98] DNS listener {host}:{port}: Address already in use"
    assert result.stderr.strip() == error, "one clear line naming the address, no traceback"


def test_serve_on_a_busy_web_port_exits_1_having_answered_nothing(tmp_path: Path) -> None:
    # Issue 15: the DNS listeners are read only once everything else has started, so a
    # start that fails answers no query (a client never sees a server that answers once
    # and is then gone). Before, uvicorn's own bind raised SystemExit in its task: the
    # loop ended under the database's thread, and the process hung, DNS closed.
    host = loopback()
    port = free_port(host)
    path = write(tmp_path, zone_config(f"{host}:{port}"))
    answered: list[bytes] = []
    done = threading.Event()

    def ask() -> None:  # from before the start to its end, a query every 2 ms
        query = dns.message.make_query("dyn.example.test", "SOA").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(0.002)
            while not done.is_set():
                client.sendto(query, (host, port))
                with contextlib.suppress(TimeoutError, ConnectionRefusedError):
                    answered.append(client.recv(4096))

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((host, 0))
        busy.listen()
        web = f"{host}:{busy.getsockname()[1]}"
        asker = threading.Thread(target=ask)
        asker.start()
        try:
            result = run("serve", "--config", str(path), "--http", web, cwd=tmp_path, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("serve did not exit")
        finally:
            done.set()
            asker.join()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error = f"dynserver: cannot listen: [Errno 98] web listener {web}: Address already in use"
    assert result.stderr.strip().splitlines()[-1] == error
    assert not answered, f"{len(answered)} queries answered by a server that did not start"


def test_serve_with_a_bad_listener_flag() -> None:
    result = run("serve", "--config", "whatever.toml", "--dns", "localhost")
    assert result.returncode == 2
    assert 'expected "host:port"' in result.stderr


def answers(host: str, port: int, timeout: float = 2.0) -> bool:
    query = dns.message.make_query("www.dyn.example.test", "A")
    try:
        reply = dns.query.udp(query, host, port=port, timeout=timeout)
    except dns.exception.Timeout:
        return False
    return [rdata.to_text() for rdata in reply.answer[0]] == ["192.0.2.10"]


def test_the_flags_override_the_listeners(tmp_path: Path) -> None:
    configured = loopback()
    configured_port = free_port(configured)
    path = write(
        tmp_path,
        f'[server]\ndns = ["{configured}:{configured_port}"]\nhttp = "{configured}:{free_port(configured)}"\n'
        'database = ""\n\n[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n',
    )
    second = loopback()
    second_port = free_port(second)
    http_host = loopback()
    http_port = free_port(http_host)
    with dynserver(
        path, http=f"{http_host}:{http_port}", extra=["--dns", f"{second}:{second_port}"]
    ) as server:
        assert answers(server.host, server.port)
        assert answers(second, second_port), "--dns may be repeated"
        assert not answers(configured, configured_port, timeout=0.5), "the config's listener is replaced"
        with urllib.request.urlopen(f"http://{http_host}:{http_port}/healthz", timeout=5) as response:
            assert response.status == 200


def test_python_dash_m_serves_the_minimal_config(tmp_path: Path) -> None:
    """The issue's minimal config, served as it is (its own listeners, no flags)."""
    host = loopback()
    port = free_port(host)
    path = write(
        tmp_path,
        f'[server]\ndns = ["{host}:{port}"]\nhttp = "{host}:{free_port(host)}"\n\n'
        '[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n',
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "dynserver", "serve", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        wait_for_dns(host, port, "dyn.example.test", process=process)
        assert answers(host, port)
    finally:
        stop(process)
    assert process.returncode == 0, "SIGTERM is a clean stop"


def test_once_serving_start_up_objects_are_frozen_and_young_scans_are_rarer() -> None:
    import gc

    from dynserver import cli

    threshold = gc.get_threshold()
    built = [{"start-up": n} for n in range(1000)]  # stands for zones, snapshots, check tasks
    try:
        cli._settle_gc()
        assert gc.get_threshold() == (cli.GC_YOUNG_THRESHOLD, *threshold[1:])
        assert gc.get_freeze_count() >= len(built)  # out of every later scan
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
