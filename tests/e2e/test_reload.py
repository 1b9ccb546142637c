"""Reload end to end: a real `dynserver serve` process, its config file edited, then
reloaded by SIGHUP, by `dynserver reload` (the control socket) and by POST
/api/v1/reload. Real backends (tests/backends.py) show which checks run; NSD and Knot
as secondaries show that a reload reaches them by IXFR.

Each test edits the file the server was started with, as an operator does, and waits
for the reload's log line before looking; the few fixed waits assert that something
does *not* happen (a check that must not run) and say so.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.backends import Backend, Backends, backends
from tests.e2e.test_failover import (
    TTL,
    ZONE,
    Answer,
    answer,
    make_config,
    monitor,
    record,
    serial,
    serial_gt,
    target,
    wait_answer,
    wait_log,
    wait_up,
)
from tests.secondaries import PROGRAMS, Primary, secondary, stop
from tests.support import (
    ROOT,
    Server,
    dynserver,
    free_port,
    loopback,
    master_file,
    poll,
    require_program,
    wait_for_dns,
    wait_for_http,
)
from tests.test_cli import run
from tests.update.common import add

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LONG = 60.0  # seconds between checks: no check is due on its own while a test runs
QUIET = 1.5  # seconds a removed target is watched for checks it must not get


def reloaded(server: Server) -> int:
    """SIGHUP the server and wait for its reload's log line; returns where the log stood
    before (server.log_text()[mark:] is what came since)."""
    mark = len(server.log_text())
    server.process.send_signal(signal.SIGHUP)
    pattern = r"event=reloaded via=sighup actor=signal "
    poll(lambda: server.log_text()[mark:], lambda text: re.search(pattern, text) is not None, pattern)
    return mark


def http(pool: Backends, name: str) -> Backend:
    host = loopback()
    return pool.add("http", name, host, free_port(host))


def health_lines(log: str, name: str) -> list[str]:
    return re.findall(rf"event=target_health record=\S+ target={name} [^\n]*", log)


# -- health across a reload -------------------------------------------------------------


def test_a_reload_keeps_every_state_and_checks_a_new_target_at_once(tmp_path: Path) -> None:
    """Checks every 60 s: a up, c down (503). A reload that adds b keeps both states
    without a check of either, and checks b at once (not 60 s later)."""
    with backends(tmp_path) as pool:
        a, b, c = http(pool, "a"), http(pool, "b"), http(pool, "c")
        c.set(status=503)
        web = monitor("web", "http", path="/health", interval=LONG, consecutive_down=1, consecutive_up=1)
        config = make_config(tmp_path, web, record("app", "web", [target(a), target(c)]))
        with dynserver(config, zone=ZONE) as server:
            wait_up(server, "app", a)
            wait_log(server, r"event=target_health record=\S+ target=c previous=\w+ current=down")
            before = serial(server)
            checks = len(a.requests()), len(c.requests())

            added = f'  {{ name = "b", value = "{b.host}", priority = 1, port = {b.port} }},\n'
            config.write_text(config.read_text().replace('  { name = "c"', added + '  { name = "c"'))
            mark = reloaded(server)
            started = time.monotonic()
            wait_answer(server, "app", a, b)
            assert time.monotonic() - started < LONG / 4, "the new target waited for its interval"
            assert serial_gt(serial(server), before)
            assert (len(a.requests()), len(c.requests())) == checks, "a reload checked a kept target"
            after = server.log_text()[mark:]
            assert health_lines(after, "a") == [] and health_lines(after, "c") == [], after
            assert answer(server, "app") == Answer(tuple(sorted((a.host, b.host))), TTL)


def test_removing_a_target_stops_its_checks(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        a, b = http(pool, "a"), http(pool, "b")
        config = make_config(tmp_path, monitor("web", "http"), record("app", "web", [target(a), target(b)]))
        with dynserver(config, zone=ZONE) as server:
            wait_up(server, "app", a, b)
            config.write_text(re.sub(r'  \{ name = "b"[^\n]*\n', "", config.read_text()))
            reloaded(server)
            wait_answer(server, "app", a)
            time.sleep(0.5)  # a check of b already under way when the reload came may end
            b_checks, a_checks = len(b.requests()), len(a.requests())
            time.sleep(QUIET)  # wall-clock time for checks that must not happen
            assert len(b.requests()) == b_checks, "a removed target is still checked"
            assert len(a.requests()) > a_checks, "the kept target's checks stopped"


# -- the command and a bad file ---------------------------------------------------------


def test_the_reload_command_and_a_bad_file(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        a = http(pool, "a")
        config = make_config(tmp_path, monitor("web", "http"), record("app", "web", [target(a)]))
        with dynserver(config, zone=ZONE) as server:
            wait_up(server, "app", a)
            config.write_text(config.read_text().replace(f"ttl = {TTL}", "ttl = 60"))
            result = run("reload", "--config", str(config))
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("reloaded in "), result.stdout
            assert f"record app.{ZONE} A: ttl {TTL} -> 60" in result.stdout
            assert answer(server, "app") == Answer((a.host,), 60)  # live when the command returns
            assert "via=command actor=cli" in server.log_text()

            good = config.read_text()
            line = good.splitlines().index("ttl = 60") + 1
            for broken, expected in [
                (good.replace("ttl = 60", 'ttl = "soon"'), rf"dynserver\.toml:{line}: zones\..*\.ttl: "),
                (good.replace("ttl = 60", "ttl = = 60"), rf"dynserver\.toml:{line}: not valid TOML"),
            ]:
                config.write_text(broken)
                result = run("reload", "--config", str(config))
                assert result.returncode == 1, result.stdout
                assert re.search(expected, result.stderr), result.stderr
                assert "keeps the config it runs" in result.stderr
                assert answer(server, "app") == Answer((a.host,), 60)  # the old config, unchanged
            assert server.process.poll() is None


def test_the_command_without_a_server(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    result = run("reload", "--config", str(config))
    assert result.returncode == 1
    assert "is dynserver running?" in result.stderr


def test_reload_by_the_api(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        a, b = http(pool, "a"), http(pool, "b")
        config = make_config(tmp_path, monitor("web", "http"), record("app", "web", [target(a)]))
        secret = add(config, "admin", "--admin")
        host = loopback()
        url = f"http://{host}:{free_port(host)}"
        with dynserver(config, host=host, zone=ZONE, http=url.removeprefix("http://")) as server:
            wait_for_http(f"{url}/healthz")
            wait_up(server, "app", a)
            moved = config.read_text().replace(
                f'"{a.host}", priority = 1, port = {a.port}', f'"{b.host}", priority = 1, port = {b.port}'
            )
            config.write_text(moved)
            request = urllib.request.Request(
                f"{url}/api/v1/reload", method="POST", headers={"Authorization": f"Bearer {secret}"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.load(response)
            assert body["ok"] is True and any("target a: value" in c for c in body["changes"]), body
            wait_answer(server, "app", b)
            assert "via=api actor=admin" in server.log_text()

            config.write_text(config.read_text().replace("[monitors.web]", "[monitors.web"))
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 422
            assert "not valid TOML" in json.load(refused.value)["detail"]
            assert answer(server, "app").values == (b.host,)


# -- listeners --------------------------------------------------------------------------


@contextmanager
def serving_config_listeners(config: Path, host: str, port: int) -> Iterator[Server]:
    """`serve` without --dns: the listeners are the config's own, so a reload changes them."""
    log = config.parent / "dynserver.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dynserver", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        wait_for_dns(host, port, ZONE, process=process)
        yield Server(host, port, process, log)
    finally:
        stop(process)


def answers(host: str, port: int) -> bool:
    """Whether host:port answers over TCP (a closed listener refuses the connection)."""
    try:
        dns.query.tcp(dns.message.make_query(f"{ZONE}.", "SOA"), host, port=port, timeout=2)
    except ConnectionRefusedError:
        return False
    return True


def test_listeners_added_and_removed(tmp_path: Path) -> None:
    first, second = loopback(), loopback()
    first_port, second_port = free_port(first), free_port(second)
    config = make_config(tmp_path)
    text = config.read_text()
    listen = 'dns = ["127.0.0.1:0"]'
    config.write_text(text.replace(listen, f'dns = ["{first}:{first_port}"]'))
    with serving_config_listeners(config, first, first_port) as server:
        config.write_text(text.replace(listen, f'dns = ["{first}:{first_port}", "{second}:{second_port}"]'))
        reloaded(server)
        assert answers(second, second_port) and answers(first, first_port)

        config.write_text(text.replace(listen, f'dns = ["{second}:{second_port}"]'))
        reloaded(server)
        assert answers(second, second_port)
        assert not answers(first, first_port), "a removed listener still answers"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((first, first_port))  # the UDP port is free again too


# -- secondaries ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nsd", "knot"])
def test_a_secondary_follows_a_reload_by_ixfr(tmp_path: Path, kind: str) -> None:
    program = require_program(*PROGRAMS[kind])
    host = loopback()
    port = free_port(host)
    peer = loopback()
    peer_port = free_port(peer)
    zone_file = tmp_path / f"{ZONE}.zone"
    config = make_config(tmp_path)
    config.write_text(
        config.read_text()
        + f'[zones."{ZONE}".transfer]\nsecondaries = [{{ address = "{peer}:{peer_port}" }}]\n'
    )
    zone_file.write_text(master_file(ZONE, "ns1 IN A 127.0.0.1\nwww IN A 192.0.2.10\n"))
    with ExitStack() as stack:
        server = stack.enter_context(dynserver(config, host=host, port=port, zone=ZONE))
        running = stack.enter_context(
            secondary(kind, program, tmp_path / kind, peer, peer_port, Primary(host, port, ZONE), None)
        )
        www = f"www.{ZONE}."
        poll(lambda: running.addresses(www), lambda found: found == {"192.0.2.10"}, f"{kind} serving www")
        before = serial(server)
        mark = len(server.log_text())

        zone_file.write_text(master_file(ZONE, "ns1 IN A 127.0.0.1\nwww IN A 192.0.2.11\n"))
        reloaded(server)
        assert serial_gt(serial(server), before)
        poll(lambda: running.addresses(www), lambda found: found == {"192.0.2.11"}, f"{kind} following")
        transfers = re.findall(
            rf"event=transfer type=(\S+) zone=\S+ serial=\d+ from=(\S+) peer={re.escape(peer)} ",
            server.log_text()[mark:],
        )
        assert transfers and all(kind_ == "IXFR" for kind_, _ in transfers), transfers
