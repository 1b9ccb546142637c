"""Every state change is an event with who did it (and from where, for the web): logins
and failed logins, logouts, check-now requests (page and API), maintenance, updates and
the answer changes they cause. And the login rate limit holds against a guesser spread
over many addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from dynserver import config
from dynserver.app import App, with_listeners
from dynserver.model import Listener
from dynserver.store.db import EventRow
from dynserver.update import credentials
from dynserver.update.limits import LimitPolicy
from dynserver.web.app import create_app
from tests.support import loopback
from tests.update.common import APP, write_config
from tests.web.test_pages import HASH, PASSWORD, csrf, run

Clients = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def served(folder: Path, limits: LimitPolicy | None = None) -> AsyncIterator[tuple[App, Clients]]:
    """The App with an admin password, and HTTP clients from any address."""
    path = write_config(folder, f'\n[web]\nadmin_password_hash = "{HASH}"\n')
    app = App(with_listeners(config.load(path), [Listener(loopback(), 0)], None))
    await app.start()
    asgi = create_app(app.runtime, limits=limits)

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=asgi, client=(address, 40000))  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url="http://dynserver.test")

    try:
        yield app, client
    finally:
        await app.stop()


async def events(app: App, kind: str) -> list[EventRow]:
    assert app.writer is not None and app.store is not None
    await app.writer.flush()  # the writer commits events in batches
    return list(reversed(await app.store.events(kind=kind, limit=100)))


def test_logins_logouts_and_failures_are_events_with_the_client(tmp_path: Path) -> None:
    async def test() -> None:
        async with served(tmp_path) as (app, client):
            async with client("198.51.100.7") as guesser, client("203.0.113.9") as admin:
                assert (await guesser.post("/login", data={"password": "guess"})).status_code == 401
                assert (await admin.post("/login", data={"password": PASSWORD})).status_code == 303
                token = csrf((await admin.get("/")).text)
                assert (await admin.post("/logout", data={"csrf": token})).status_code == 303
                # A logout without the session's token changes nothing and is no event.
                assert (await guesser.post("/logout", data={"csrf": token})).status_code == 401
            rows = [
                (e.result, e.actor, e.reason, (e.detail or {}).get("client"))
                for e in await events(app, "auth")
            ]
            assert rows == [
                ("fail", None, "login failed from 198.51.100.7: wrong password", "198.51.100.7"),
                ("ok", "web:admin", "login from 203.0.113.9", "203.0.113.9"),
                ("ok", "web:admin", "logout from 203.0.113.9", "203.0.113.9"),
            ]
            samples = app.runtime.metrics.render().decode()
            assert 'dynserver_logins_total{result="ok"} 1.0' in samples
            assert 'dynserver_logins_total{result="fail"} 1.0' in samples

    run(test)


def test_check_now_is_an_event_from_the_page_and_the_api(tmp_path: Path) -> None:
    async def test() -> None:
        async with served(tmp_path) as (app, client):
            assert app.store is not None
            stored, secret = credentials.create("ops", admin=True, targets=(), now=0.0)
            assert await app.store.add_credential(stored)
            async with client("203.0.113.9") as browser, client("192.0.2.200") as script:
                await browser.post("/login", data={"password": PASSWORD})
                token = csrf((await browser.get("/")).text)
                page = await browser.post("/records/mon.dyn.example.test/check", data={"csrf": token})
                assert page.status_code == 303
                api = await script.post(
                    "/api/v1/records/mon.dyn.example.test/check",
                    headers={"Authorization": f"Bearer {secret}"},
                )
                assert api.status_code == 202 and api.json() == {"checking": ["foxtrot"]}
            rows = [
                (e.record, e.actor, e.reason, (e.detail or {}).get("targets"))
                for e in await events(app, "check")
            ]
            assert rows == [
                ("mon.dyn.example.test.", "web:admin", "check now requested from 203.0.113.9", ["foxtrot"]),
                ("mon.dyn.example.test.", "ops", "check now requested from 192.0.2.200", ["foxtrot"]),
            ]

    run(test)


def test_an_update_that_moves_the_answer_is_an_answer_event_by_the_same_actor(tmp_path: Path) -> None:
    async def test() -> None:
        async with served(tmp_path) as (app, _):
            charlie = next(k for k in app.runtime.engine.states if k[2] == "charlie")
            await app.runtime.update_target(
                charlie, "192.0.2.99", actor="charlie-backup", source="192.0.2.1", via="dyndns2"
            )
            [update] = await events(app, "update")
            assert (update.actor, update.previous, update.current) == (
                "charlie-backup",
                "192.0.2.21",
                "192.0.2.99",
            )
            assert update.reason == "dyndns2 from 192.0.2.1"
            [answer] = await events(app, "answer")
            assert (answer.record, answer.actor) == (f"{APP}.", "charlie-backup")
            assert (answer.previous, answer.current) == ("192.0.2.21", "192.0.2.99")

    run(test)


def test_maintenance_from_the_api_names_the_credential(tmp_path: Path) -> None:
    async def test() -> None:
        async with served(tmp_path) as (app, client):
            assert app.store is not None
            stored, secret = credentials.create("ops", admin=True, targets=(), now=0.0)
            assert await app.store.add_credential(stored)
            async with client("192.0.2.200") as script:
                path = f"/api/v1/records/{APP}/targets/charlie/maintenance"
                done = await script.put(path, headers={"Authorization": f"Bearer {secret}"})
                assert done.status_code == 200 and done.json()["changed"] is True
            [row] = await events(app, "maintenance")
            assert (row.target, row.actor, row.current) == ("charlie", "ops", "maintenance")

    run(test)


def test_a_guesser_spread_over_many_addresses_locks_the_admin_login(tmp_path: Path) -> None:
    limits = LimitPolicy(client_failures=100, credential_failures=3, lockout=60)

    async def test() -> None:
        async with served(tmp_path, limits) as (app, client):
            for n in range(3):
                async with client(f"198.51.100.{n + 1}") as guesser:
                    assert (await guesser.post("/login", data={"password": "guess"})).status_code == 401
            async with client("203.0.113.9") as admin:
                blocked = await admin.post("/login", data={"password": PASSWORD})
            assert blocked.status_code == 429 and "credential locked" in blocked.text
            assert "set-cookie" not in blocked.headers
            # Three failures are events; the refused attempt is only counted (no flood).
            assert [e.result for e in await events(app, "auth")] == ["fail", "fail", "fail"]
            assert 'dynserver_logins_total{result="limited"} 1.0' in app.runtime.metrics.render().decode()

    run(test)
