"""Real clients, unmodified, against a real dynserver process on 127.0.0.x.

ddclient and inadyn (Debian packages) are configured as docs/updates.md tells users to,
run once in the foreground with their caches in the test's folder, and `dig` asks
dynserver for the target's address afterwards. A wrong password makes ddclient report
failure and inadyn exit with its authentication error, and nothing changes. curl sends
seed 000's JSON call to the REST API, and the dyndns2 call of a dial-up script.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Server, dynserver, free_port, loopback, require_program, wait_for_http
from tests.update.common import APP, BRAVO, add, write_config

pytestmark = pytest.mark.timeout(120)


@dataclass
class Live:
    server: Server
    http: str  # host:port of the web listener
    folder: Path
    secret: str  # of "bravo-backup", scoped to bravo

    def dig(self, name: str = BRAVO) -> list[str]:
        dig = require_program("dig", "dnsutils")
        result = subprocess.run(
            [
                dig,
                f"@{self.server.host}",
                "-p",
                str(self.server.port),
                "+short",
                "+norec",
                "+time=2",
                name,
                "A",
            ],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        )
        return result.stdout.split()


@contextmanager
def serving(folder: Path, extra: str = "") -> Iterator[Live]:
    """`dynserver serve` with the test config (plus ``extra`` lines) and one credential."""
    config = write_config(folder, extra)
    secret = add(config, "bravo-backup", "--target", f"{APP}/bravo")  # as users do: the CLI
    host = loopback()
    http = f"{host}:{free_port(host)}"
    with dynserver(config, host=host, http=http) as server:
        wait_for_http(f"http://{http}/healthz")
        yield Live(server, http, folder, secret)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with serving(tmp_path) as running:
        yield running


# -- ddclient -------------------------------------------------------------------------


def ddclient(
    live: Live, password: str, address: str, *, login: str = "bravo-backup", hostname: str = BRAVO
) -> subprocess.CompletedProcess[str]:
    program = require_program("ddclient", "ddclient")
    usage = subprocess.run([program, "-help"], capture_output=True, text=True, timeout=30).stdout
    # ddclient 3.10 deprecates use=ip for usev4=ipv4; older versions know only use=ip.
    how = f"usev4=ipv4, ipv4={address}" if "-usev4" in usage else f"use=ip, ip={address}"
    conf = live.folder / "ddclient.conf"
    conf.write_text(
        "ssl=no\n"
        "protocol=dyndns2\n"
        f"server={live.http}\n"
        f"login={login}\n"
        f"password='{password}'\n"
        f"{how}\n"
        f"{hostname}\n"
    )
    os.chmod(conf, 0o600)  # ddclient warns about a config others can read
    cache = live.folder / "ddclient.cache"
    cache.unlink(missing_ok=True)  # no memory of earlier runs: always send the update
    return subprocess.run(
        [
            program,
            "-daemon=0",
            "-foreground",
            "-noquiet",
            "-verbose",
            "-file",
            str(conf),
            "-cache",
            str(cache),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ddclient_updates_a_target(live: Live) -> None:
    result = ddclient(live, live.secret, "192.0.2.61")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS:  updating {BRAVO}: good: IP address set to 192.0.2.61" in output
    assert live.dig() == ["192.0.2.61"]
    again = ddclient(live, live.secret, "192.0.2.61")  # the same address: nochg, still a success
    assert again.returncode == 0 and "nochg" in again.stdout + again.stderr


def test_ddclient_with_a_wrong_password_fails_and_changes_nothing(live: Live) -> None:
    assert ddclient(live, live.secret, "192.0.2.61").returncode == 0
    result = ddclient(live, "wrong-secret", "192.0.2.62")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"FAILED:   updating {BRAVO}: authorization failed" in output
    assert live.dig() == ["192.0.2.61"]
    assert "wrong-secret" not in live.server.log_text()


# -- inadyn ---------------------------------------------------------------------------


def inadyn(live: Live, password: str, address: str) -> subprocess.CompletedProcess[str]:
    program = require_program("inadyn", "inadyn")
    conf = live.folder / "inadyn.conf"
    conf.write_text(
        "period = 300\n"
        "custom dynserver {\n"
        "    ssl             = false\n"
        "    username        = bravo-backup\n"
        f'    password        = "{password}"\n'
        f'    ddns-server     = "{live.http}"\n'
        '    ddns-path       = "/nic/update?hostname=%h&myip=%i"\n'
        "    ddns-response   = { good, nochg }\n"
        f'    checkip-command = "echo {address}"\n'
        f'    hostname        = "{BRAVO}"\n'
        "}\n"
    )
    cache = live.folder / "inadyn-cache"
    cache.mkdir(exist_ok=True)
    for old in cache.iterdir():
        old.unlink()  # no memory of earlier runs: always send the update
    return subprocess.run(
        [
            program,
            "--once",
            "--foreground",
            "--config",
            str(conf),
            f"--cache-dir={cache}",
            "--pidfile",
            str(live.folder / "inadyn.pid"),
            "--loglevel=info",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_inadyn_updates_a_target(live: Live) -> None:
    result = inadyn(live, live.secret, "192.0.2.64")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Successful alias table update for {BRAVO} => new IP# 192.0.2.64" in output
    assert live.dig() == ["192.0.2.64"]


def test_inadyn_with_a_wrong_password_exits_with_its_auth_error(live: Live) -> None:
    assert inadyn(live, live.secret, "192.0.2.64").returncode == 0
    result = inadyn(live, "wrong-secret", "192.0.2.65")
    output = result.stdout + result.stderr
    assert result.returncode == 50, output  # inadyn's RC_DDNS_RSP_AUTH_FAIL
    assert "Authentication failure" in output
    assert live.dig() == ["192.0.2.64"]


# -- curl -----------------------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    program = require_program("curl", "curl")
    return subprocess.run([program, "-sS", *args], capture_output=True, text=True, timeout=30)


def test_curl_seed_000_json_call(live: Live) -> None:
    result = curl(
        "-X",
        "PUT",
        "-H",
        f"Authorization: Bearer {live.secret}",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"ip":"192.0.2.66","name":"bravo"}',
        "-w",
        "\n%{http_code}",
        f"http://{live.http}/api/v1/records/{APP}/targets/bravo",
    )
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200", result.stdout + result.stderr
    assert '"changed":true' in body and '"value":"192.0.2.66"' in body
    assert live.dig() == ["192.0.2.66"]


def test_curl_dial_up_script_line(live: Live) -> None:
    """docs/updates.md's line for a dial-up script: no myip, the source address is used."""
    url = f"http://{live.http}/nic/update?hostname={BRAVO}"
    result = curl("--interface", "127.0.0.1", "-u", f"bravo-backup:{live.secret}", url)
    assert result.stdout == "good 127.0.0.1\n", result.stderr
    assert live.dig() == ["127.0.0.1"]
    wrong = curl("-u", "bravo-backup:nope", "-w", "%{http_code}", url)
    assert wrong.stdout == "badauth\n401"


def test_brute_force_over_http_is_locked_out_and_others_keep_working(live: Live) -> None:
    """Ten wrong secrets from one address: that address gets `abuse`, even with the right
    secret; the owner from another address, and other credentials, still work."""
    other = add(live.folder / "dynserver.toml", "charlie-backup", "--target", f"{APP}/charlie")
    # A credential of its own: the wrong-password tests of ddclient and inadyn count
    # against bravo-backup too (clients retry), and 30 failures lock a credential.
    secret = add(live.folder / "dynserver.toml", "bravo-line", "--target", f"{APP}/bravo")
    attacker, owner = loopback(), loopback()
    url = f"http://{live.http}/nic/update?hostname={BRAVO}&myip=192.0.2.70"
    replies = [curl("--interface", attacker, "-u", f"bravo-line:guess{n}", url).stdout for n in range(11)]
    assert replies == ["badauth\n"] * 10 + ["abuse\n"]
    assert curl("--interface", attacker, "-u", f"bravo-line:{secret}", url).stdout == "abuse\n"
    answer = curl("--interface", owner, "-u", f"bravo-line:{secret}", url).stdout
    locks = [line for line in live.server.log_text().splitlines() if "locked" in line]
    assert answer == "good 192.0.2.70\n", locks
    charlie = f"http://{live.http}/nic/update?hostname=charlie.{APP}&myip=192.0.2.71"
    assert curl("--interface", owner, "-u", f"charlie-backup:{other}", charlie).stdout == "good 192.0.2.71\n"
    assert live.dig() == ["192.0.2.70"]
    assert f"client={attacker}" in live.server.log_text()


def test_limits_from_the_config_file(tmp_path: Path) -> None:
    """[web.limits] reaches the running server: a burst of 3 then `abuse` for that line
    only, and a lockout after 2 wrong secrets instead of the default 10."""
    limits = "\n[web.limits]\nburst = 3\nrate = 0.001\nclient_failures = 2\ncredential_failures = 5\n"
    with serving(tmp_path, limits) as live:
        url = f"http://{live.http}/nic/update?hostname={BRAVO}&myip=192.0.2.80"
        busy, other, guesser = loopback(), loopback(), loopback()
        login = f"bravo-backup:{live.secret}"
        replies = [curl("--interface", busy, "-u", login, url).stdout for _ in range(4)]
        assert replies == ["good 192.0.2.80\n", "nochg 192.0.2.80\n", "nochg 192.0.2.80\n", "abuse\n"]
        assert curl("--interface", other, "-u", login, url).stdout == "nochg 192.0.2.80\n"
        guesses = [curl("--interface", guesser, "-u", f"bravo-backup:guess{n}", url).stdout for n in range(3)]
        assert guesses == ["badauth\n", "badauth\n", "abuse\n"]
        assert live.dig() == ["192.0.2.80"]
