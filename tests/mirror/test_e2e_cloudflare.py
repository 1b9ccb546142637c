"""Mirroring to Cloudflare end to end: real backends the test kills, a real dynserver
process, and the fake Cloudflare API (tests/mirror/fake_cloudflare.py) on 127.0.0.x.

A failover makes exactly one list and one PATCH; a 429 storm is waited out at the pace
Retry-After asks; a record edited by hand is restored by the periodic reconcile; a
revoked token is a permanent error, recorded once and not hammered. The token appears
in no log line. Waits poll (50 ms) up to a deadline, as in tests/e2e/test_failover.py,
whose config helpers these tests share.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backends import Backend, Backends, backends
from tests.e2e.test_failover import make_config, monitor, record, running, target, wait_answer, wait_up
from tests.mirror.fake_cloudflare import Call, FakeCloudflare, serve
from tests.support import Server, free_port, loopback, poll

TOKEN = "e2e-Cloudflare-Token-0123456789abcdefgh"
WWW = "www.example.com"
FAILBACK = 1.0
DEADLINE = 15.0


@dataclass
class Setup:
    server: Server
    fake: FakeCloudflare
    zone: str
    a: Backend
    b: Backend
    database: Path


def _backend(pool: Backends, name: str) -> Backend:
    host = loopback()
    return pool.add("http", name, host, free_port(host))


@contextmanager
def mirrored(tmp_path: Path, **mirror: Any) -> Iterator[Setup]:
    """Backends a (priority 1) and b (priority 2), app mirrored to www.example.com at the
    fake, which starts with a record made by hand; returns once the mirror has adopted it."""
    fake = FakeCloudflare(token=TOKEN)
    zone = fake.add_zone("example.com")
    fake.add_record(zone, "A", WWW, "203.0.113.7", ttl=300, comment="made by hand")
    (tmp_path / "cf-token").write_text(TOKEN + "\n")
    with serve(fake) as base, backends(tmp_path) as pool:
        a, b = _backend(pool, "a"), _backend(pool, "b")
        options = "".join(f"{k} = {v!r}\n" for k, v in mirror.items())
        config = make_config(
            tmp_path,
            monitor("web", "http", failback_delay=FAILBACK),
            record(
                "app",
                "web",
                [target(a, 1), target(b, 2)],
                pending_ttl=1,
                mirror=[{"to": "cf", "name": WWW, "ttl": 60, "proxied": False}],
            ),
            f'[mirrors.cf]\ntype = "cloudflare"\nzone = "example.com"\napi_token_file = "cf-token"\n'
            f'api_base = "{base}"\n{options}',
        )
        with running(config) as server:
            wait_up(server, "app", a, b)
            wait_contents(fake, a.host)
            yield Setup(server, fake, zone, a, b, tmp_path / "dynserver.db")
            assert TOKEN not in server.log_text(), "the token must never be logged"


def wait_contents(fake: FakeCloudflare, *values: str, timeout: float = DEADLINE) -> None:
    poll(lambda: fake.contents(WWW, "A"), lambda c: c == sorted(values), f"{WWW} -> {values}", timeout)


def mirror_events(database: Path) -> list[tuple[str, str, str, str]]:
    with closing(sqlite3.connect(database)) as db:
        rows = db.execute(
            "SELECT result, reason, previous, current FROM event WHERE kind = 'mirror' ORDER BY id"
        ).fetchall()
    return [tuple(r) for r in rows]


def wait_events(database: Path, count: int) -> list[tuple[str, str, str, str]]:
    return poll(lambda: mirror_events(database), lambda e: len(e) >= count, f"{count} mirror events")


def shown(calls: list[Call], zone: str, record_id: str) -> list[tuple[str, str, Any, Any]]:
    return [
        (c.method, c.path.replace(zone, "<zone>").replace(record_id, "<id>"), c.query or None, c.body)
        for c in calls
    ]


LIST = ("GET", "/zones/<zone>/dns_records", {"name": WWW, "type": "A", "page": "1", "per_page": "100"}, None)


@pytest.mark.slow
def test_a_failover_is_exactly_one_list_and_one_patch_each_way(tmp_path: Path) -> None:
    with mirrored(tmp_path) as setup:
        fake, a, b = setup.fake, setup.a, setup.b
        [record] = fake.find(WWW, "A")
        assert (record["ttl"], record["comment"]) == (60, "made by hand"), "adopted, not duplicated"
        startup = fake.api_calls()
        assert (startup[0].method, startup[0].path, startup[0].query) == (
            "GET",
            "/zones",
            {"name": "example.com"},
        )
        assert [c.method for c in startup[1:3]] == ["GET", "PATCH"]
        assert not any(c.method == "POST" for c in startup), "the hand-made record is adopted"
        fake.clear_calls()

        a.kill()
        wait_answer(setup.server, "app", b)
        wait_contents(fake, b.host)
        time.sleep(1.0)  # nothing else may follow (waits for calls that must not happen)
        assert shown(fake.api_calls(), setup.zone, record["id"]) == [
            LIST,
            ("PATCH", "/zones/<zone>/dns_records/<id>", None, {"content": b.host}),
        ]
        fake.clear_calls()

        a.start()  # pending (the TTL drops, the values do not change: nothing to push), then back
        wait_contents(fake, a.host)
        time.sleep(0.5)
        assert shown(fake.api_calls(), setup.zone, record["id"]) == [
            LIST,
            ("PATCH", "/zones/<zone>/dns_records/<id>", None, {"content": a.host}),
        ]
        events = wait_events(setup.database, 3)
        assert [(e[0], e[2], e[3]) for e in events] == [
            ("ok", "203.0.113.7", a.host),
            ("ok", a.host, b.host),
            ("ok", b.host, a.host),
        ]
        assert events[1][1] == f"{WWW} A at cf: patch {a.host} -> {b.host}"


@pytest.mark.slow
def test_a_429_storm_is_ridden_out_at_the_pace_of_retry_after(tmp_path: Path) -> None:
    with mirrored(tmp_path) as setup:
        fake = setup.fake
        fake.clear_calls()
        fake.fail(429, times=4, retry_after="1")
        setup.a.kill()
        wait_contents(fake, setup.b.host, timeout=DEADLINE + 5)
        calls = fake.api_calls()
        assert [c.status for c in calls] == [429, 429, 429, 429, 200, 200]
        gaps = [y.at - x.at for x, y in itertools.pairwise(calls[:5])]
        assert all(gap >= 0.95 for gap in gaps), f"Retry-After: 1 not honoured: {gaps}"
        events = wait_events(setup.database, 3)
        assert events[1][0] == "error" and "rate limited (HTTP 429)" in events[1][1]
        assert "Retry-After" in events[1][1]
        assert events[2][0] == "ok" and events[2][1].endswith("(after 5 attempts)")
        assert len(events) == 3, "one error event for the whole storm, not one per 429"


@pytest.mark.slow
def test_a_hand_edit_is_restored_by_the_periodic_reconcile(tmp_path: Path) -> None:
    with mirrored(tmp_path, reconcile_interval=1) as setup:
        fake = setup.fake
        [record] = fake.find(WWW, "A")
        fake.edit(record["id"], content="198.51.100.66")  # someone "fixes" it in the dashboard
        wait_contents(fake, setup.a.host, timeout=5)
        events = poll(
            lambda: mirror_events(setup.database),
            lambda e: any(row[0] == "drift" for row in e),
            "a drift event",
        )
        drift = next(row for row in events if row[0] == "drift")
        assert drift[1] == f"{WWW} A at cf: drift restored: patch 198.51.100.66 -> {setup.a.host}"
        assert (drift[2], drift[3]) == ("198.51.100.66", setup.a.host)
        assert "event=mirror_drift" in setup.server.log_text()


@pytest.mark.slow
def test_a_revoked_token_is_a_permanent_error_recorded_once(tmp_path: Path) -> None:
    with mirrored(tmp_path) as setup:
        fake = setup.fake
        fake.revoked = True
        fake.clear_calls()
        setup.a.kill()
        wait_answer(setup.server, "app", setup.b)  # DNS fails over whatever the provider does
        events = wait_events(setup.database, 2)
        result, reason, _, _ = events[1]
        assert result == "permanent"
        assert "authentication failed" in reason and "[10000 Authentication error]" in reason
        assert "Zone.DNS:Edit" in reason
        time.sleep(2.0)  # a permanent error is not retried (waits for calls that must not happen)
        assert [c.status for c in fake.api_calls()] == [403]
        assert len(mirror_events(setup.database)) == 2
        log = setup.server.log_text()
        assert "event=mirror_failed mirror=cf name=www.example.com type=A attempt=1 permanent=yes" in log
