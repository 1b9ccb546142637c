"""Combined checks end to end (issue 17): a real dynserver checks one target with an HTTP
and a TCP monitor (a web server and its database, each a real backend on 127.0.0.x),
require = "all"; the database stops: the target goes down with a reason naming the
database monitor, in the log, the API, the events and the dashboard; DNS answers the
backup; the database comes back: the answer does too."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.backends import backends
from tests.e2e.test_failover import (
    ZONE,
    answer,
    make_config,
    monitor,
    record,
    wait_answer,
    wait_reason,
)
from tests.support import dynserver, free_port, loopback, poll, wait_for_http
from tests.update.common import add


def _get(base: str, secret: str, path: str) -> Any:
    request = urllib.request.Request(base + "/api/v1" + path, headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_a_failing_database_monitor_takes_the_web_target_down(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        primary, backup = loopback(), loopback()
        web = pool.add("http", "web", primary, free_port(primary))
        db = pool.add("tcp", "db", primary, free_port(primary))
        spare = pool.add("http", "spare", backup, free_port(backup))
        config = make_config(
            tmp_path,
            monitor("web", "http", port=web.port),
            monitor("db", "tcp", port=db.port),
            record(
                "app",
                ["web", "db"],  # type: ignore[arg-type]
                [
                    {"name": "primary", "value": primary, "priority": 1},
                    # The backup has no database of its own: its web check alone decides.
                    {"name": "backup", "value": backup, "priority": 2, "monitor": "web", "port": spare.port},
                ],
                require="all",
            ),
        )
        secret = add(config, "test", "--admin")
        host = loopback()
        http = f"{host}:{free_port(host)}"
        with dynserver(config, zone=ZONE, http=http) as server:
            base = f"http://{http}"
            wait_for_http(base + "/healthz")
            poll(lambda: answer(server, "app").values, lambda v: v == (primary,), "the primary answered")
            # The primary may be answered before its first checks (a target starts up);
            # both monitors then check it within their interval.
            poll(lambda: bool(web.requests() and db.requests()), bool, "both monitors check the primary")
            body = _get(base, secret, f"/records/app.{ZONE}/targets/primary")
            assert body["require"] == 2
            assert [(m["monitor"], m["health"]) for m in body["monitors"]] == [("web", "up"), ("db", "up")]
            assert "monitors" not in _get(base, secret, f"/records/app.{ZONE}/targets/backup")
            assert _get(base, secret, f"/records/app.{ZONE}")["monitors"] == ["web", "db"]

            db.kill()
            why = wait_reason(server, "app", "primary", "down", "up")
            assert why.startswith("1 of 2 monitors up, all required (db: connection ")
            assert "web" not in why, "only the failing monitor is named"
            poll(lambda: answer(server, "app").values, lambda v: v == (backup,), "the backup answered")
            body = _get(base, secret, f"/records/app.{ZONE}/targets/primary")
            states = {m["monitor"]: m for m in body["monitors"]}
            assert (body["health"], states["web"]["health"], states["db"]["health"]) == ("down", "up", "down")
            assert states["db"]["last_result"]["reason"].startswith("connection ")
            events = _get(base, secret, "/events?kind=health&target=primary")["events"]
            down = next(e for e in events if e["current"] == "down")
            assert "db: connection" in down["reason"]
            assert down["detail"]["monitors"]["db"]["health"] == "down"
            assert down["detail"]["monitors"]["web"]["health"] == "up"
            page = urllib.request.urlopen(f"{base}/records/app.{ZONE}", timeout=5).read().decode()
            assert 'data-monitor="db"' in page and "db down" in page

            db.start()
            wait_reason(server, "app", "primary", "up", "down")
            wait_answer(server, "app", web)
            assert _get(base, secret, f"/records/app.{ZONE}/targets/backup")["health"] == "up"
