"""Runtime with [locations]: agents' results reach the vote in the same turn, the answer
follows the vote, silent and cut-off locations stop counting, and it all says so."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import dns.message
import dns.rdatatype

from dynserver import config
from dynserver.app import App
from dynserver.config import parse_name
from dynserver.health.state import Health, Result
from dynserver.locations.protocol import check_id
from dynserver.notify.sender import Alert

ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1
ns1 IN A 192.0.2.53
"""
CONFIG = """\
[server]
dns = ["127.0.0.1:0"]

[locations]
quorum = 2
local = false
stale_after = 3

[monitors.web]
type = "tcp"
port = 9
interval = 1
timeout = 0.5

[zones."dyn.example.test"]
file = "zone"

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
monitor = "web"
targets = [
  { name = "primary", value = "127.0.0.21", priority = 1 },
  { name = "backup", value = "127.0.0.22", priority = 2 },
]
"""
APP = parse_name("app.dyn.example.test")
PRIMARY = (APP, "A", "primary")


class Recorder:
    """A notifier that keeps the alerts it is given (every destination gets the same)."""

    enabled = True

    def __init__(self, alerts: list[Alert]) -> None:
        self.alerts = alerts

    def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def stop(self) -> None:
        pass


def answer(app: App) -> list[str]:
    query = dns.message.make_query("app.dyn.example.test", dns.rdatatype.A)
    reply = app.runtime.answer(query.to_wire(), False)
    assert isinstance(reply, bytes)
    return sorted(r.to_text() for rrset in dns.message.from_wire(reply).answer for r in rrset)


def ids(app: App) -> dict[str, str]:
    """address -> check id, as the hub hands them to agents."""
    _, checks = app.runtime.agent_checks()
    return {check.address: cid for cid, (check, _) in checks.items()}


async def started(tmp_path: Path, text: str = CONFIG) -> App:
    (tmp_path / "zone").write_text(ZONE)
    path = tmp_path / "dynserver.toml"
    path.write_text(text)
    app = App(config.load(path))
    await app.start()
    return app


def report(app: App, location: str, address: str, ok: bool) -> bool:
    now = asyncio.get_running_loop().time()
    reason = "connected" if ok else "timeout"
    return app.runtime.on_location_result(location, ids(app)[address], Result(ok=ok, reason=reason, at=now))


def test_agents_vote_and_the_answer_follows(tmp_path: Path) -> None:
    async def run() -> None:
        app = await started(tmp_path)
        runtime = app.runtime
        try:
            assert app.scheduler.running == 0  # local = false: only agents check
            runtime.set_agents(["fra", "nyc", "sfo"])
            for name in ("fra", "nyc", "sfo"):
                assert report(app, name, "127.0.0.21", True)
                assert report(app, name, "127.0.0.22", True)
            assert answer(app) == ["127.0.0.21"]
            report(app, "fra", "127.0.0.21", False)
            assert answer(app) == ["127.0.0.21"]  # one location's bad path: no failover
            assert runtime.target_vote(PRIMARY).down == 1
            alerts: list[Alert] = []
            runtime.notifier = Recorder(alerts)  # type: ignore[assignment]
            report(app, "nyc", "127.0.0.21", False)  # two agree: moved in the same turn
            assert answer(app) == ["127.0.0.22"]
            # The notification says which locations agreed, and what each saw.
            assert [(a.event, a.reason) for a in alerts] == [
                ("failure", "down at 2 of 3 locations (fra: timeout; nyc: timeout)")
            ]
            views = {v.name: v for v in runtime.target_locations(PRIMARY)}
            assert views["fra"].health is Health.DOWN and views["sfo"].health is Health.UP
            assert [s.name for s in runtime.location_statuses()] == ["fra", "nyc", "sfo"]
            assert all(s.kind == "agent" and s.fresh_targets == 2 for s in runtime.location_statuses())
            # Unknown check ids and unregistered agents change nothing.
            now = asyncio.get_running_loop().time()
            assert not runtime.on_location_result("fra", "0" * 16, Result(ok=True, reason="x", at=now))
            assert not runtime.on_location_result("evil", ids(app)["127.0.0.21"], Result(True, "x", now))
            runtime.set_agents(["fra", "nyc"])  # sfo removed: its view goes
            assert [v.name for v in runtime.target_locations(PRIMARY)] == ["fra", "nyc"]
            assert not report(app, "sfo", "127.0.0.21", True)
        finally:
            await app.stop()
        with sqlite3.connect(tmp_path / "dynserver.db") as db:
            rows = list(db.execute("SELECT reason, detail FROM event WHERE kind = 'health'"))
        down = [
            json.loads(d)
            for r, d in rows
            if r.startswith("down at 2 of 3 locations (fra: timeout; nyc: timeout)")
        ]
        assert down[0]["locations"]["sfo"] == {
            "health": "up",
            "fresh": True,
            "excluded": False,
            "reason": "connected",
        }

    asyncio.run(run())


def test_a_location_whose_every_check_fails_is_excluded(tmp_path: Path) -> None:
    async def run() -> None:
        app = await started(tmp_path, CONFIG.replace("quorum = 2", "quorum = 1"))
        runtime = app.runtime
        try:
            runtime.set_agents(["fra", "nyc"])
            for address in ("127.0.0.21", "127.0.0.22"):
                report(app, "nyc", address, True)
                report(app, "fra", address, True)
            report(app, "fra", "127.0.0.21", False)  # quorum 1: fra alone moves primary
            assert answer(app) == ["127.0.0.22"]
            report(app, "fra", "127.0.0.22", False)  # now every check of fra fails: cut off
            statuses = {s.name: s for s in runtime.location_statuses()}
            assert (
                statuses["fra"].excluded == "all 2 of its checks failed while other locations saw them pass"
            )
            assert answer(app) == ["127.0.0.21"]  # fra no longer votes: primary is up again
            report(app, "fra", "127.0.0.22", True)
            assert runtime.location_statuses()[0].excluded is None
            runtime.on_canary("nyc", False, "timeout")
            assert {s.name: s.excluded for s in runtime.location_statuses()}[
                "nyc"
            ] == "canary failed: timeout"
        finally:
            await app.stop()
        with sqlite3.connect(tmp_path / "dynserver.db") as db:
            reasons = [r for (r,) in db.execute("SELECT reason FROM event WHERE kind = 'location'")]
        assert any(
            "location fra excluded from the vote" in r and "deciding from 1 of 2" in r for r in reasons
        )

    asyncio.run(run())


def test_checks_handed_to_agents_change_with_an_update(tmp_path: Path) -> None:
    async def run() -> None:
        app = await started(tmp_path)
        runtime = app.runtime
        try:
            generation, checks = runtime.agent_checks()
            assert sorted(c.address for c, _ in checks.values()) == ["127.0.0.21", "127.0.0.22"]
            assert all(interval == 1 for _, interval in checks.values())
            waiter = asyncio.create_task(runtime.checks_changed(generation))
            await asyncio.sleep(0)
            assert not waiter.done()
            await runtime.update_target(PRIMARY, "127.0.0.23", actor="test")
            assert await asyncio.wait_for(waiter, 1) == generation + 1
            assert "127.0.0.23" in ids(app)
            assert await runtime.checks_changed(generation) == generation + 1  # at once
            assert set(ids(app).values()) == {check_id(key) for key in runtime._check_targets}
        finally:
            await app.stop()

    asyncio.run(run())


def test_a_silent_location_is_an_event(tmp_path: Path) -> None:
    async def run() -> None:
        app = await started(tmp_path)
        runtime = app.runtime
        try:
            runtime.set_agents(["fra", "nyc"])
            report(app, "fra", "127.0.0.21", True)
            report(app, "nyc", "127.0.0.21", True)
            runtime.agent_connected("nyc", "0.9", "127.0.0.5")
            runtime.agent_disconnected("nyc", "stream ended")
            await asyncio.sleep(4.6)  # fresh window: 3 * 1 + 0.5 s; the sweep looks each second
            report(app, "fra", "127.0.0.21", True)
        finally:
            await app.stop()
        with sqlite3.connect(tmp_path / "dynserver.db") as db:
            rows = [r for (r,) in db.execute("SELECT reason FROM event WHERE kind IN ('location', 'agent')")]
        assert "agent nyc connected from 127.0.0.5 (version 0.9)" in rows
        assert "agent nyc disconnected: stream ended" in rows
        assert any(r.startswith("location nyc stale: no result for") for r in rows)
        assert any(r.startswith("location fra reports again") for r in rows), rows

    asyncio.run(run())


def test_a_batch_of_results_does_what_the_same_results_one_by_one_do(tmp_path: Path) -> None:
    """The hub hands an agent's batch over at once (on_location_results): the votes, the
    answers, the exclusion of a location whose checks all fail, the counts and metrics
    are those of the same results given one at a time."""

    async def run() -> None:
        (tmp_path / "one").mkdir()
        (tmp_path / "batch").mkdir()
        one, batched = await started(tmp_path / "one"), await started(tmp_path / "batch")
        try:
            for app in (one, batched):
                app.runtime.set_agents(["fra", "nyc", "sfo"])
            cid = ids(one)
            assert cid == ids(batched)
            now = asyncio.get_running_loop().time()
            excluded: dict[str, str] = {}
            batches = [  # one agent's batch each: (location, [(address or an id of no check, ok)])
                ("fra", [("127.0.0.21", True), ("127.0.0.22", True), ("gone", True)]),
                ("nyc", [("127.0.0.21", True), ("127.0.0.22", True)]),
                ("sfo", [("127.0.0.21", True)]),
                ("fra", [("127.0.0.21", False), ("127.0.0.22", False), ("127.0.0.21", False)]),
                ("nyc", [("127.0.0.21", False), ("127.0.0.21", False), ("127.0.0.22", True)]),
                ("sfo", [("127.0.0.21", False), ("127.0.0.22", True)]),
                ("fra", [("127.0.0.21", True)]),
            ]
            for n, (location, batch) in enumerate(batches):
                items = [(cid.get(address, "0" * 16), Result(ok, "r", now + n)) for address, ok in batch]
                taken = sum(one.runtime.on_location_result(location, c, r) for c, r in items)
                assert taken == batched.runtime.on_location_results(location, items)
                assert answer(one) == answer(batched), n
                assert one.runtime.engine.states == batched.runtime.engine.states, n
                assert one.runtime.engine.views == batched.runtime.engine.views, n
                assert one.runtime.engine.excluded == batched.runtime.engine.excluded, n
                excluded.update(one.runtime.engine.excluded)
            assert "fra" in excluded  # the walk did exclude a location (and let it back)
            assert [(s.name, s.results) for s in one.runtime.location_statuses()] == [
                (s.name, s.results) for s in batched.runtime.location_statuses()
            ]
            for location in ("fra", "nyc", "sfo"):
                for ok in ("ok", "fail"):
                    counters = [
                        app.runtime.metrics.location_results.labels(location, ok) for app in (one, batched)
                    ]
                    assert counters[0]._value.get() == counters[1]._value.get()
            assert one.runtime.metrics.location_results.labels("nyc", "fail")._value.get() == 2
        finally:
            await one.stop()
            await batched.stop()

    asyncio.run(run())
