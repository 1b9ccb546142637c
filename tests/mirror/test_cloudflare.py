"""The Cloudflare provider against the fake API: the exact calls each change makes, how
errors are classified, and that the token stays out of every message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from dynserver.mirror.base import Desired, MirrorError, Outcome
from dynserver.mirror.cloudflare import Cloudflare
from dynserver.model import MirrorConfig, Secret
from tests.mirror.fake_cloudflare import Call, FakeCloudflare, serve
from tests.support import free_port, loopback

TOKEN = "cf-Token-For-Tests-0123456789abcdefghij"
NAME = "www.example.com"


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare(token=TOKEN)


@pytest.fixture
def base(fake: FakeCloudflare) -> Iterator[str]:
    with serve(fake) as url:
        yield url


def want(*values: str, ttl: int = 60, **options: Any) -> Desired:
    return Desired(NAME, "A", tuple(sorted(values)), ttl, **options)


def sync(base: str, *desired: Desired, zone: str = "example.com") -> list[Outcome | MirrorError]:
    """Run syncs in order with one provider; errors are returned, not raised."""

    async def main() -> list[Outcome | MirrorError]:
        mirror = MirrorConfig("cf", "cloudflare", zone, api_token=Secret(TOKEN), api_base=base, timeout=2)
        provider = Cloudflare(mirror)
        await provider.start()
        results: list[Outcome | MirrorError] = []
        try:
            for item in desired:
                try:
                    results.append(await provider.sync(item))
                except MirrorError as error:
                    results.append(error)
        finally:
            await provider.close()
        return results

    return asyncio.run(main())


def calls(fake: FakeCloudflare, zone: str) -> list[tuple[str, str, Any]]:
    """(method, path with <zone>/<id>, body) of every call, for exact comparisons."""
    shown = []
    for call in fake.api_calls():
        path = call.path.replace(zone, "<zone>")
        for record_id in _ids(call):
            path = path.replace(record_id, "<id>")
        shown.append((call.method, path, call.body))
    return shown


def _ids(call: Call) -> list[str]:
    parts = call.path.split("/")
    return [parts[-1]] if len(parts) == 5 and parts[-1] != "batch" else []


LIST = ("GET", "/zones/<zone>/dns_records", None)
LOOKUP = ("GET", "/zones", None)


def test_first_sync_creates_then_a_failover_is_one_patch(fake: FakeCloudflare, base: str) -> None:
    zone = fake.add_zone("example.com")
    first, second, third = sync(base, want("192.0.2.1"), want("192.0.2.2"), want("192.0.2.2"))
    assert isinstance(first, Outcome) and first.actions == ("create 192.0.2.1",)
    assert isinstance(second, Outcome) and second.actions == ("patch 192.0.2.1 -> 192.0.2.2",)
    assert isinstance(third, Outcome) and not third.changed
    body = {"type": "A", "name": NAME, "content": "192.0.2.1", "ttl": 60, "proxied": False}
    assert calls(fake, zone) == [
        LOOKUP,
        LIST,
        ("POST", "/zones/<zone>/dns_records", body),
        LIST,
        ("PATCH", "/zones/<zone>/dns_records/<id>", {"content": "192.0.2.2"}),
        LIST,  # in place: the list is the only call
    ]
    assert fake.api_calls()[1].query == {"name": NAME, "type": "A", "page": "1", "per_page": "100"}
    assert fake.contents(NAME, "A") == ["192.0.2.2"]


def test_a_hand_made_record_is_adopted_and_keeps_its_comment(fake: FakeCloudflare, base: str) -> None:
    zone = fake.add_zone("example.com")
    made = fake.add_record(zone, "A", NAME, "203.0.113.7", ttl=300, comment="made by hand")
    [outcome] = sync(base, want("192.0.2.1"))
    assert isinstance(outcome, Outcome) and outcome.before == ("203.0.113.7",)
    [record] = fake.find(NAME, "A")
    assert (record["id"], record["content"], record["ttl"]) == (made["id"], "192.0.2.1", 60)
    assert record["comment"] == "made by hand"
    assert [c[0] for c in calls(fake, zone)] == ["GET", "GET", "PATCH"]


def test_several_changes_are_one_batch(fake: FakeCloudflare, base: str) -> None:
    zone = fake.add_zone("example.com")
    fake.add_record(zone, "A", NAME, "192.0.2.1", ttl=60)
    outcomes = sync(base, want("192.0.2.1", "192.0.2.2", "192.0.2.3"), want("192.0.2.4"))
    assert all(isinstance(o, Outcome) for o in outcomes)
    shown = calls(fake, zone)
    assert [(m, p) for m, p, _ in shown] == [
        ("GET", "/zones"),
        ("GET", "/zones/<zone>/dns_records"),
        ("POST", "/zones/<zone>/dns_records/batch"),
        ("GET", "/zones/<zone>/dns_records"),
        ("POST", "/zones/<zone>/dns_records/batch"),
    ]
    posts = [
        {"type": "A", "name": NAME, "content": f"192.0.2.{n}", "ttl": 60, "proxied": False} for n in (2, 3)
    ]
    assert shown[2][2] == {"posts": posts}
    second = shown[4][2]
    assert set(second) == {"deletes", "patches"} and len(second["deletes"]) == 2
    assert [p["content"] for p in second["patches"]] == ["192.0.2.4"]
    assert fake.contents(NAME, "A") == ["192.0.2.4"]


def test_records_recreated_by_hand_are_found_again_not_trusted_by_id(fake: FakeCloudflare, base: str) -> None:
    zone = fake.add_zone("example.com")

    async def main() -> None:
        mirror = MirrorConfig("cf", "cloudflare", "example.com", api_token=Secret(TOKEN), api_base=base)
        provider = Cloudflare(mirror)
        await provider.start()
        try:
            await provider.sync(want("192.0.2.1"))
            [old] = fake.find(NAME, "A")
            with fake.lock:
                del fake.records[old["id"]]  # deleted and made again in the dashboard
            fake.add_record(zone, "A", NAME, "192.0.2.9", ttl=60)
            outcome = await provider.sync(want("192.0.2.2"))
            assert outcome.actions == ("patch 192.0.2.9 -> 192.0.2.2",)
        finally:
            await provider.close()

    asyncio.run(main())
    assert fake.contents(NAME, "A") == ["192.0.2.2"]


def test_every_page_is_read(fake: FakeCloudflare, base: str) -> None:
    zone = fake.add_zone("example.com")
    for n in range(1, 251):
        fake.add_record(zone, "A", NAME, f"10.0.{n // 200}.{n % 200 + 1}", ttl=60)
    fake.clear_calls()
    [outcome] = sync(base, want("10.0.0.2"))
    assert isinstance(outcome, Outcome) and outcome.after == ("10.0.0.2",)
    pages = [c.query.get("page") for c in fake.api_calls() if c.path.endswith("/dns_records")]
    assert pages == ["1", "2", "3"]
    assert fake.contents(NAME, "A") == ["10.0.0.2"]


def test_proxied_records_get_ttl_automatic_and_are_not_fought_over(fake: FakeCloudflare, base: str) -> None:
    fake.add_zone("example.com")
    first, second = sync(base, want("192.0.2.1", proxied=True), want("192.0.2.1", proxied=True))
    assert isinstance(first, Outcome) and isinstance(second, Outcome)
    assert not second.changed
    [record] = fake.find(NAME, "A")
    assert (record["proxied"], record["ttl"]) == (True, 1)


def test_429_is_transient_with_its_retry_after(fake: FakeCloudflare, base: str) -> None:
    fake.add_zone("example.com")
    fake.fail(429, retry_after="7")
    [error] = sync(base, want("192.0.2.1"))
    assert isinstance(error, MirrorError)
    assert (error.permanent, error.retry_after) == (False, 7.0)
    assert "971" in error.reply and "429" in error.reply


def test_a_502_page_from_the_edge_is_transient(fake: FakeCloudflare, base: str) -> None:
    fake.add_zone("example.com")
    fake.fail(502)
    error, outcome = sync(base, want("192.0.2.1"), want("192.0.2.1"))
    assert isinstance(error, MirrorError) and not error.permanent and error.retry_after is None
    assert "HTTP 502" in error.message
    assert isinstance(outcome, Outcome) and outcome.after == ("192.0.2.1",)


def test_a_revoked_token_is_permanent_and_never_shown(fake: FakeCloudflare, base: str) -> None:
    fake.add_zone("example.com")
    fake.revoked = True
    [error] = sync(base, want("192.0.2.1"))
    assert isinstance(error, MirrorError) and error.permanent
    assert "authentication failed" in error.message and "10000" in error.message
    assert "Zone.DNS:Edit" in error.message
    assert TOKEN not in str(error) and TOKEN not in error.reply


def test_a_missing_zone_is_permanent(fake: FakeCloudflare, base: str) -> None:
    fake.add_zone("example.com")
    [error] = sync(base, want("192.0.2.1"), zone="example.org")
    assert isinstance(error, MirrorError) and error.permanent
    assert "zone example.org not found" in error.message


def test_zone_by_id_and_a_name_outside_it(fake: FakeCloudflare, base: str) -> None:
    zone = fake.add_zone("example.com")
    outside = Desired("www.example.org", "A", ("192.0.2.1",), 60)
    outcome, error = sync(base, want("192.0.2.1"), outside, zone=zone)
    assert isinstance(outcome, Outcome)
    assert isinstance(error, MirrorError) and error.permanent and "not in the zone example.com" in str(error)
    assert fake.api_calls()[0].path == f"/zones/{zone}"


def test_a_refused_request_is_permanent(fake: FakeCloudflare, base: str) -> None:
    zone = fake.add_zone("example.com")
    fake.add_record(zone, "A", NAME, "192.0.2.1")  # a CNAME cannot join an A record
    [error] = sync(base, Desired(NAME, "CNAME", ("backup.example.net",), 60))
    assert isinstance(error, MirrorError) and error.permanent and "81053" in error.message


def test_network_errors_are_transient() -> None:
    host = loopback()
    [error] = sync(f"http://{host}:{free_port(host)}/client/v4", want("192.0.2.1"))
    assert isinstance(error, MirrorError) and not error.permanent
    assert "network error" in error.message
