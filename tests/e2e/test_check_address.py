"""check_address end to end (issue 17): a real dynserver answers a target's value, an
address where nothing listens, while its probe checks a real HTTP backend on 127.0.0.x
(a NAT'd server checked at its inside address). The backend stops: the target goes down.
An update moves the answer, never the check."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.backends import Backend, backends
from tests.e2e.test_failover import (
    KILL_REASONS,
    ZONE,
    answer,
    make_config,
    monitor,
    record,
    wait_reason,
    wait_up,
)
from tests.support import dynserver, free_port, loopback, poll, wait_for_http
from tests.update.common import add
from tests.update.test_credentials import dyndns2

NOTHING = "127.0.0.250"  # the answered value: no server listens there
MOVED = "127.0.0.249"  # the value an update gives it: nothing listens there either
DYNDNS2 = "127.0.0.248"  # ... and then a dyndns2 update


def _api(base: str, secret: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        base + "/api/v1" + path,
        data=json.dumps(body).encode() if body is not None else None,
        method="PUT" if body is not None else "GET",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_the_check_address_is_checked_and_the_value_answered(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        host = loopback()
        inside: Backend = pool.add("http", "nat", host, free_port(host))
        config = make_config(
            tmp_path,
            monitor("web", "http"),
            record(
                "app",
                "web",
                [
                    {
                        "name": "nat",
                        "value": NOTHING,
                        "check_address": inside.host,
                        "check_port": inside.port,
                        "host": "www.example.test",  # Host stays the configured one
                    }
                ],
                fallback="none",
            ),
        )
        secret = add(config, "test", "--admin")
        web = loopback()
        http = f"{web}:{free_port(web)}"
        with dynserver(config, zone=ZONE, http=http) as server:
            base = f"http://{http}"
            wait_for_http(base + "/healthz")
            wait_up(server, "app", inside)
            assert answer(server, "app").values == (NOTHING,)
            assert inside.requests(), "the probe connected to the check address"
            assert {r["host"] for r in inside.requests()} == {"www.example.test"}

            body = _api(base, secret, f"/records/app.{ZONE}/targets/nat")
            assert (body["value"], body["check_address"], body["health"]) == (NOTHING, inside.host, "up")
            page = urllib.request.urlopen(f"{base}/records/app.{ZONE}", timeout=5).read().decode()
            assert f"checked at {inside.host}" in page

            # An update moves the answer; the check stays at the inside address.
            _api(base, secret, f"/records/app.{ZONE}/targets/nat", {"value": MOVED})
            poll(lambda: answer(server, "app").values, lambda v: v == (MOVED,), "the moved answer")
            seen = len(inside.requests())
            poll(lambda: len(inside.requests()), lambda n: n >= seen + 2, "checks after the update")
            body = _api(base, secret, f"/records/app.{ZONE}/targets/nat")
            assert (body["value"], body["check_address"], body["health"]) == (MOVED, inside.host, "up")
            # The same through dyndns2 (RFC 2136 takes the same path: Runtime.update_target).
            assert dyndns2(base, "test", secret, f"nat.app.{ZONE}", DYNDNS2) == (200, f"good {DYNDNS2}\n")
            poll(lambda: answer(server, "app").values, lambda v: v == (DYNDNS2,), "the dyndns2 answer")
            seen = len(inside.requests())
            poll(lambda: len(inside.requests()), lambda n: n >= seen + 2, "checks after dyndns2")
            assert _api(base, secret, f"/records/app.{ZONE}/targets/nat")["health"] == "up"

            inside.kill()
            assert wait_reason(server, "app", "nat", "down") in KILL_REASONS
            poll(lambda: answer(server, "app").values, lambda v: v == (), "no answer once down")
