"""Push (heartbeat) monitors end to end (issue 17): a real dynserver, tokens made with
`dynserver push add`, heartbeats sent with curl (GET and POST, Uptime Kuma's status and
msg) and, for heartbeat = "updates", by ddclient's dyndns2 updates; the target goes down
when the heartbeats stop, and DNS (dig) follows. Short intervals: seconds, not minutes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.backends import backends
from tests.e2e.test_failover import (
    ZONE,
    answer,
    health_line,
    make_config,
    monitor,
    reason,
    record,
    wait_reason,
)
from tests.support import ROOT, Server, dynserver, free_port, loopback, poll, require_program, wait_for_http
from tests.update.common import add
from tests.update.test_clients import Live, ddclient

JOB = "127.0.0.77"  # the value the cron target answers (nothing listens: nothing is probed)
LIMITS = "[web.limits]\nburst = 1000\nrate = 1000\nclient_failures = 3\n\n"


def push_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynserver", "push", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def transition(server: Server, label: str, name: str, current: str, starting: str) -> str:
    """The reason of a transition of the target to ``current`` whose reason starts so (a
    target goes down more than once here: the earlier ones do not count)."""
    line = re.compile(health_line(label, name, current))

    def found() -> list[str]:
        return [r for m in line.finditer(server.log_text()) if (r := reason(m.group(1))).startswith(starting)]

    return poll(found, bool, f"{name} of {label} {current}: {starting}...")[-1]


def curl(url: str, *args: str) -> tuple[int, Any]:
    program = require_program("curl", "curl")
    done = subprocess.run(
        [program, "-sS", "-m", "5", "-w", "\n%{http_code}", *args, url],
        capture_output=True,
        text=True,
        timeout=15,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else None


def test_curl_heartbeats_keep_a_target_up_and_silence_takes_it_down(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        LIMITS,
        '[monitors.beat]\ntype = "push"\ninterval = 0.5\nconsecutive_down = 2\n\n',  # down after 1 s
        record("cron", "beat", [{"name": "job", "value": JOB}], fallback="none"),
    )
    refused = push_cli(config, "add", f"cron.{ZONE}/nope")
    assert refused.returncode == 1 and "has no target 'nope'" in refused.stderr
    made = push_cli(config, "add", f"cron.{ZONE}/job")
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    assert f"/api/v1/push/{token}" in made.stdout and "curl -fsS" in made.stdout
    again = push_cli(config, "add", f"cron.{ZONE}/job")
    assert again.returncode == 1 and "has a push token; remove it first, or pass --replace" in again.stderr
    listed = push_cli(config, "list")
    assert f"cron.{ZONE}/job" in listed.stdout and token not in listed.stdout

    host = loopback()
    http = f"{host}:{free_port(host)}"
    with dynserver(config, zone=ZONE, http=http) as server:
        base = f"http://{http}/api/v1/push/"
        wait_for_http(f"http://{http}/healthz")
        assert answer(server, "cron").values == ()  # no heartbeat yet: not answered

        status, body = curl(base + token)  # GET: a cron one-liner
        assert status == 200 and body["ok"] is True and body["target"] == f"job.cron.{ZONE}"
        assert (body["monitors"], body["health"]) == (["beat"], "up")
        assert answer(server, "cron").values == (JOB,)

        status, body = curl(base + token + "?status=down&msg=disk%20full", "-X", "POST")
        assert (status, body["health"]) == (200, "down")
        assert wait_reason(server, "cron", "job", "down", "up") == "heartbeat: down: disk full"
        assert answer(server, "cron").values == ()

        assert curl(base + token + "?status=up&msg=OK&ping=12", "-X", "POST")[0] == 200
        assert answer(server, "cron").values == (JOB,)
        # Silence: down within the window (1 s) and the sweeper's second.
        why = transition(server, "cron", "job", "down", "no heartbeat for ")
        assert why.endswith("(expected within 1 s)")
        poll(lambda: answer(server, "cron").values, lambda v: v == (), "no answer after silence")

        status, body = curl(base + token + "?status=maybe")
        assert (status, body["error"]) == (400, "bad_request") and "expected up or down" in body["detail"]
        # Wrong tokens: 404, and the client is locked out after client_failures of them.
        for _ in range(3):
            status, body = curl(base + "A" * 32)
            assert (status, body["error"]) == (404, "not_found")
        status, body = curl(base + token)
        assert (status, body["error"]) == (429, "too_many_requests"), "locked out, even with the right token"
        assert token not in server.log_text(), "the token is never logged"

    removed = push_cli(config, "remove", f"cron.{ZONE}/job")
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert "no push tokens" in push_cli(config, "list").stdout


def test_ddclient_updates_are_the_dial_up_backups_heartbeats(tmp_path: Path) -> None:
    require_program("ddclient", "ddclient")
    with backends(tmp_path) as pool:
        primary = loopback()
        web = pool.add("http", "primary", primary, free_port(primary))
        config = make_config(
            tmp_path,
            LIMITS,
            monitor("web", "http", port=web.port),
            '[monitors.dialup]\ntype = "push"\nheartbeat = "updates"\n',
            "interval = 1.5\nconsecutive_down = 2\n\n",
            record(
                "app",
                "web",
                [
                    {"name": "primary", "value": primary, "priority": 1},
                    {"name": "backup", "value": "192.0.2.60", "priority": 2, "monitor": "dialup"},
                ],
                fallback="none",
            ),
        )
        secret = add(config, "backup-line", "--target", f"app.{ZONE}/backup")
        host = loopback()
        http = f"{host}:{free_port(host)}"
        with dynserver(config, zone=ZONE, http=http) as server:
            wait_for_http(f"http://{http}/healthz")
            live = Live(server, http, tmp_path, secret)
            # Nothing updated it yet: down after the window (3 s).
            assert wait_reason(server, "app", "backup", "down", "unknown").startswith(
                "no heartbeat yet after"
            )

            def update(address: str) -> None:
                done = ddclient(live, secret, address, login="backup-line", hostname=f"backup.app.{ZONE}")
                assert done.returncode == 0, done.stdout + done.stderr

            update("192.0.2.61")
            assert wait_reason(server, "app", "backup", "up", "down") == "heartbeat: update via dyndns2"

            # The primary fails while the backup keeps updating (the same address: nochg).
            stop = threading.Event()

            def keep_updating() -> None:
                while not stop.is_set():
                    update("192.0.2.61")
                    stop.wait(0.3)

            updater = threading.Thread(target=keep_updating, daemon=True)
            updater.start()
            try:
                web.kill()
                poll(
                    lambda: answer(server, "app").values,
                    lambda v: v == ("192.0.2.61",),
                    "the backup answered",
                )
                threading.Event().wait(4.0)  # longer than the window: the nochg updates keep it up
                assert answer(server, "app").values == ("192.0.2.61",)
            finally:
                stop.set()
                updater.join(60)
            # The backup stopped updating (its line is down): no longer answered.
            why = transition(server, "app", "backup", "down", "no heartbeat for ")
            assert why.endswith("(expected within 3 s)")
            poll(lambda: answer(server, "app").values, lambda v: v == (), "nothing answered")
            update("192.0.2.62")  # back online, with a new address
            poll(lambda: answer(server, "app").values, lambda v: v == ("192.0.2.62",), "the backup again")
