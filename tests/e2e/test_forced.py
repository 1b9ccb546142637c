"""Forced states end to end (issue 17, gdnsd's admin_state): a real dynserver with real
HTTP backends; the API (admin only) forces the healthy primary down, DNS answers the
backup (dig-equivalent queries), the state survives a restart, a short one expires by
itself, and clearing returns to what the checks say."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.backends import backends
from tests.e2e.test_failover import (
    ZONE,
    answer,
    make_config,
    monitor,
    reason,
    record,
    target,
    wait_log,
    wait_up,
)
from tests.support import Server, dynserver, free_port, loopback, poll, wait_for_http
from tests.update.common import add

LIMITS = "[web.limits]\nburst = 1000\nrate = 1000\n\n"


def forced_line(current: str, previous: str) -> str:
    """The log line of a forced transition (kind forced); its reason is the first group."""
    record = re.escape(f"app.{ZONE}.")
    transition = f"previous={previous} current={current}"
    return rf"event=target_forced record={record} target=primary {transition} reason=('[^']*'|\"[^\"]*\")"


def forced_reason(server: Server, current: str, previous: str) -> str:
    return reason(wait_log(server, forced_line(current, previous)).group(1))


def call(
    base: str, secret: str, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + "/api/v1" + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_force_down_survives_a_restart_expires_and_clears(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        hosts = loopback(), loopback()
        primary = pool.add("http", "primary", hosts[0], free_port(hosts[0]))
        backup = pool.add("http", "backup", hosts[1], free_port(hosts[1]))
        config = make_config(
            tmp_path,
            LIMITS,
            monitor("web", "http"),
            record("app", "web", [target(primary, 1), target(backup, 2)]),
        )
        admin = add(config, "ops", "--admin")
        scoped = add(config, "line", "--target", f"app.{ZONE}/backup")
        host = loopback()
        http = f"{host}:{free_port(host)}"
        forced = f"/records/app.{ZONE}/targets/primary/forced"
        with dynserver(config, zone=ZONE, http=http) as server:
            base = f"http://{http}"
            wait_for_http(base + "/healthz")
            wait_up(server, "app", primary, backup)

            assert call(base, scoped, "PUT", forced, {"state": "down"})[0] == 403  # admin only
            status, body = call(base, admin, "PUT", forced, {"state": "sideways"})
            assert status == 422 and "expected e.g." in body["detail"]
            status, body = call(base, admin, "PUT", forced, {"state": "down", "duration": -5})
            assert status == 422 and "Expected `float` > 0" in body["detail"]
            status, body = call(base, admin, "PUT", forced, {"state": "down", "reason": "kernel update"})
            assert status == 200 and body["changed"] is True
            target_body = body["target"]
            assert (target_body["health"], target_body["observed"]) == ("down", "up")  # checks go on
            assert target_body["forced"]["state"] == "down" and target_body["forced"]["actor"] == "ops"
            assert (target_body["forced"]["until"], target_body["forced"]["reason"]) == (
                None,
                "kernel update",
            )
            assert answer(server, "app").values == (backup.host,)
            why = forced_reason(server, "down", "up")
            assert why == "forced down by ops until cleared: kernel update"

        with dynserver(config, zone=ZONE, http=http) as server:  # the same database: still forced
            base = f"http://{http}"
            wait_for_http(base + "/healthz")
            assert answer(server, "app").values == (backup.host,), "forced from the first answer on"
            assert len(primary.requests()) > 0
            seen = len(primary.requests())
            poll(lambda: len(primary.requests()), lambda n: n > seen, "checks go on while forced")
            assert answer(server, "app").values == (backup.host,)
            status, body = call(base, admin, "GET", f"/records/app.{ZONE}/targets/primary")
            assert body["forced"]["actor"] == "ops" and body["health"] == "down"

            # A forced state for 2 s replaces it and ends by itself.
            status, body = call(
                base, admin, "PUT", forced, {"state": "down", "duration": 2, "reason": "short"}
            )
            assert status == 200 and body["target"]["forced"]["until"] is not None
            why = forced_reason(server, "up", "down")
            assert why == "forced down ended: back to its checks"
            poll(lambda: answer(server, "app").values, lambda v: v == (primary.host,), "back after expiry")
            events = call(base, admin, "GET", "/events?kind=forced&target=primary")[1]["events"]
            assert [e["actor"] for e in events][:2] == ["system", "ops"]
            assert events[1]["detail"]["forced"]["reason"] == "short"

            # Forced up while its checks fail; DELETE clears, back to the checks.
            primary.kill()
            poll(lambda: answer(server, "app").values, lambda v: v == (backup.host,), "failed over")
            assert call(base, admin, "PUT", forced, {"state": "up"})[0] == 200
            assert answer(server, "app").values == (primary.host,)
            status, body = call(base, admin, "DELETE", forced)
            assert (status, body["changed"], body["target"]["health"]) == (200, True, "down")
            assert "forced" not in body["target"]
            assert answer(server, "app").values == (backup.host,)
            assert call(base, admin, "DELETE", forced)[1]["changed"] is False
