"""The REST API, in-process: the App runs in the test's event loop and its Starlette app
is called through httpx's ASGI transport, so every status code is reached on purpose."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any
from unittest import mock

from dynserver.update.limits import LimitPolicy
from tests.update.common import APP, Running, ask, running

TARGETS = f"/api/v1/records/{APP}/targets"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def run(tmp_path: Path, test: Any, limits: LimitPolicy | None = None) -> None:
    async def main() -> None:
        async with running(tmp_path, limits=limits) as live:
            await test(live)

    asyncio.run(main())


def test_reads(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        scoped = await live.credential("bravo-backup", targets=(f"{APP}/bravo",))
        async with live.client() as client:
            zones = (await client.get("/api/v1/zones", headers=bearer(scoped))).json()
            assert zones["zones"][0]["name"] == "dyn.example.test"
            assert zones["zones"][0]["records"] == [
                APP,
                "v6.dyn.example.test",
                "www.dyn.example.test",
                "mon.dyn.example.test",
            ]
            records = (await client.get("/api/v1/records", headers=bearer(scoped))).json()["records"]
            assert [r["name"] for r in records] == zones["zones"][0]["records"]
            record = (await client.get(f"/api/v1/records/{APP.upper()}.", headers=bearer(scoped))).json()
            assert record["answer"] == {
                "values": ["192.0.2.21"],
                "targets": ["charlie"],
                "reason": record["answer"]["reason"],
                "priority": 1,
                "ttl": 30,
            }
            charlie, bravo = record["targets"]
            assert (charlie["name"], charlie["value"], charlie["health"], charlie["priority"]) == (
                "charlie",
                "192.0.2.21",
                "up",  # no monitor: counts as up
                1,
            )
            assert (bravo["value"], bravo["hostname"]) == (None, f"bravo.{APP}")
            one = (await client.get(f"{TARGETS}/bravo", headers=bearer(scoped))).json()
            assert one == bravo
            missing = await client.get("/api/v1/records/nope.dyn.example.test", headers=bearer(scoped))
            assert missing.status_code == 404 and missing.json()["error"] == "not_found"
            no_target = await client.get(f"{TARGETS}/zulu", headers=bearer(scoped))
            assert no_target.status_code == 404 and "known: charlie, bravo" in no_target.json()["detail"]

    run(tmp_path, test)


def test_authentication_and_authorization(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        scoped = await live.credential("bravo-backup", targets=(f"{APP}/bravo",))
        async with live.client() as client:
            for headers in (
                {},
                {"Authorization": "Basic eDp5"},
                {"Authorization": "Bearer "},
                bearer("wrong"),
            ):
                response = await client.get("/api/v1/zones", headers=headers)
                assert response.status_code == 401, headers
                assert response.headers["www-authenticate"] == 'Bearer realm="dynserver"'
                assert response.json()["error"] == "unauthorized"
            for method, path in (
                ("GET", "/api/v1/events"),
                ("PUT", f"{TARGETS}/bravo/maintenance"),
                ("POST", "/api/v1/records/mon.dyn.example.test/check"),
            ):
                response = await client.request(method, path, headers=bearer(scoped))
                assert response.status_code == 403, path
                assert response.json() == {
                    "error": "forbidden",
                    "detail": "credential 'bravo-backup' is not admin",
                }
            other = await client.put(
                f"{TARGETS}/charlie", json={"value": "192.0.2.1"}, headers=bearer(scoped)
            )
            assert other.status_code == 403
            assert ask(live.app, APP) == ["192.0.2.21"]

    run(tmp_path, test)


def test_set_a_value_in_both_shapes(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        scoped = await live.credential("bravo-backup", targets=(f"{APP}/bravo",))
        admin = await live.credential("root", admin=True)
        async with live.client("203.0.113.9") as client:
            response = await client.put(
                f"{TARGETS}/bravo", json={"value": "192.0.2.23"}, headers=bearer(scoped)
            )
            assert response.status_code == 200
            body = response.json()
            assert (body["changed"], body["previous"], body["target"]["value"]) == (True, None, "192.0.2.23")
            assert ask(live.app, f"bravo.{APP}") == ["192.0.2.23"]
            # seed 000's shape; an empty ip is the address the request comes from
            seed = await client.put(
                f"{TARGETS}/bravo", content=b'{"ip":"","name":"bravo"}', headers=bearer(scoped)
            )
            assert seed.status_code == 200 and seed.json()["target"]["value"] == "203.0.113.9"
            same = await client.put(f"{TARGETS}/bravo", json={"ip": "203.0.113.9"}, headers=bearer(scoped))
            assert same.json()["changed"] is False
            # the target answered now changes at once (seed 000's API could not do that)
            active = await client.put(
                f"{TARGETS}/charlie", json={"value": "192.0.2.31"}, headers=bearer(admin)
            )
            assert active.status_code == 200 and ask(live.app, APP) == ["192.0.2.31"]
            v6 = await client.put(
                "/api/v1/records/v6.dyn.example.test/targets/delta",
                json={"value": "2001:DB8::7"},
                headers=bearer(admin),
            )
            assert v6.json()["target"]["value"] == "2001:db8::7"
            cname = await client.put(
                "/api/v1/records/www.dyn.example.test/targets/echo",
                json={"value": "bravo.example.net"},
                headers=bearer(admin),
            )
            assert cname.json()["target"]["value"] == "bravo.example.net."
        assert live.app.store is not None
        [event] = await live.app.store.events(kind="update", target="bravo", limit=1)
        assert (event.actor, event.previous, event.current) == ("bravo-backup", "192.0.2.23", "203.0.113.9")
        assert event.detail == {"type": "A", "source": "203.0.113.9", "via": "api"}

    run(tmp_path, test)


def test_bad_bodies(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        admin = await live.credential("root", admin=True)
        cases = [
            (b"not json", 400, "bad_request"),
            (b"[1, 2]", 400, "bad_request"),
            (b"", 400, "bad_request"),
            (b"{}", 422, "invalid"),
            (b'{"value": 7}', 422, "invalid"),
            (b'{"value": "192.0.2.1", "ip": "192.0.2.2"}', 422, "invalid"),
            (b'{"value": "2001:db8::1"}', 422, "invalid"),
            (b'{"value": "192.0.2.1", "name": "charlie"}', 409, "conflict"),
        ]
        async with live.client() as client:
            for body, status, error in cases:
                response = await client.put(f"{TARGETS}/bravo", content=body, headers=bearer(admin))
                assert (response.status_code, response.json()["error"]) == (status, error), body
                assert "detail" in response.json()
            v4 = await client.put(
                f"{TARGETS}/bravo", content=b'{"value": "2001:db8::1"}', headers=bearer(admin)
            )
            assert v4.json()["detail"] == "'2001:db8::1' is not an IPv4 address (record type A)"
            wrong_method = await client.delete(f"{TARGETS}/bravo", headers=bearer(admin))
            assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"
            unknown = await client.get("/api/v1/nothing", headers=bearer(admin))
            assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
        assert ask(live.app, f"bravo.{APP}") == []

    run(tmp_path, test)


def test_a_failed_commit_is_a_500_and_changes_nothing(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        admin = await live.credential("root", admin=True)
        assert live.app.store is not None
        with mock.patch.object(
            live.app.store, "commit", side_effect=sqlite3.OperationalError("disk I/O error")
        ):
            async with live.client() as client:
                response = await client.put(
                    f"{TARGETS}/bravo", json={"value": "192.0.2.5"}, headers=bearer(admin)
                )
        assert response.status_code == 500
        assert response.json() == {
            "error": "server_error",
            "detail": "the update could not be stored; nothing changed",
        }
        assert ask(live.app, f"bravo.{APP}") == []

    run(tmp_path, test)


def test_maintenance_and_check_now(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        admin = await live.credential("root", admin=True)
        async with live.client() as client:
            on = await client.put(f"{TARGETS}/charlie/maintenance", headers=bearer(admin))
            assert on.status_code == 200 and on.json()["changed"] is True
            assert on.json()["target"]["health"] == "maintenance"
            assert ask(live.app, APP) == ["192.0.2.21"]  # fallback: never an empty answer
            again = await client.post(
                f"{TARGETS}/charlie/maintenance", json={"maintenance": True}, headers=bearer(admin)
            )
            assert again.json()["changed"] is False
            bad = await client.post(
                f"{TARGETS}/charlie/maintenance", json={"maintenance": "yes"}, headers=bearer(admin)
            )
            assert bad.status_code == 422
            off = await client.delete(f"{TARGETS}/charlie/maintenance", headers=bearer(admin))
            assert off.json()["changed"] is True and off.json()["target"]["health"] == "up"

            no_monitor = await client.post(f"/api/v1/records/{APP}/check", headers=bearer(admin))
            assert no_monitor.status_code == 409
            check = await client.post("/api/v1/records/mon.dyn.example.test/check", headers=bearer(admin))
            assert (check.status_code, check.json()) == (202, {"checking": ["foxtrot"]})

            for _ in range(200):  # the check of 127.0.0.1:9 is refused: wait for its event
                events = await client.get(
                    "/api/v1/events",
                    params={"record": "mon.dyn.example.test", "kind": "health"},
                    headers=bearer(admin),
                )
                if events.json()["events"]:
                    break
                await asyncio.sleep(0.02)
            [event] = events.json()["events"]
            assert (event["target"], event["current"]) == ("foxtrot", "down")
            record = (await client.get("/api/v1/records/mon.dyn.example.test", headers=bearer(admin))).json()
            last = record["targets"][0]["last_result"]
            assert last["ok"] is False and last["reason"]
            assert record["targets"][0]["since"] is not None

    run(tmp_path, test)


def test_event_log_filters_and_pages(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        admin = await live.credential("root", admin=True)
        async with live.client() as client:
            for n in range(5):
                await client.put(
                    f"{TARGETS}/bravo", json={"value": f"192.0.2.{n + 1}"}, headers=bearer(admin)
                )
            assert live.app.writer is not None
            await live.app.writer.flush()

            async def events(**params: Any) -> Any:
                response = await client.get("/api/v1/events", params=params, headers=bearer(admin))
                assert response.status_code == 200, response.text
                return response.json()

            page = await events(record=APP, target="bravo", kind="update", limit=3)
            assert [e["current"] for e in page["events"]] == ["192.0.2.5", "192.0.2.4", "192.0.2.3"]
            assert all(e["actor"] == "root" and e["record"] == APP for e in page["events"])
            rest = await events(record=APP, kind="update", before=page["next_before"])
            assert [e["current"] for e in rest["events"]] == ["192.0.2.2", "192.0.2.1"]
            assert rest["next_before"] is None
            first = page["events"][-1]["at"]
            assert len((await events(kind="update", since=first))["events"]) == 3
            assert len((await events(kind="update", until=first))["events"]) == 2
            assert (await events(kind="update", since="2000-01-01T00:00:00"))["events"]
            assert not (await events(kind="update", since="2999-01-01T00:00:00+00:00"))["events"]
            for params in (
                {"limit": "0"},
                {"limit": "x"},
                {"since": "yesterday"},
                {"before": "-1"},
                {"until": "nan"},
            ):
                response = await client.get("/api/v1/events", params=params, headers=bearer(admin))
                assert response.status_code == 400 and response.json()["error"] == "bad_request", params

    run(tmp_path, test)


def test_lockout_is_429_with_retry_after(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        admin = await live.credential("root", admin=True)
        async with live.client("192.0.2.66") as guesser, live.client("192.0.2.67") as other:
            for _ in range(3):
                assert (await guesser.get("/api/v1/zones", headers=bearer("guess"))).status_code == 401
            locked = await guesser.get("/api/v1/zones", headers=bearer(admin))
            assert locked.status_code == 429 and locked.json()["error"] == "too_many_requests"
            assert int(locked.headers["retry-after"]) > 0
            assert (await other.get("/api/v1/zones", headers=bearer(admin))).status_code == 200

    run(tmp_path, test, LimitPolicy(client_failures=3))


def test_the_document_is_served_without_credentials(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        async with live.client() as client:
            response = await client.get("/api/v1/openapi.json")
        assert response.status_code == 200
        document = response.json()
        assert document["openapi"].startswith("3.")
        assert "/records/{fqdn}/targets/{name}" in document["paths"]

    run(tmp_path, test)
