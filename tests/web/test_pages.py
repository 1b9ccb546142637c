"""The HTML pages in-process: dashboard, record page, event log, login, CSRF and the
dashboard's actions. The App runs in the test's event loop (database, DNS listener) and
its Starlette app is called through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from dynserver import __version__, config
from dynserver.app import App, with_listeners
from dynserver.errors import ConfigError
from dynserver.model import DEFAULT_RESOLVERS, Listener
from dynserver.store.db import Sample
from dynserver.update.limits import LimitPolicy
from dynserver.web.app import create_app
from dynserver.web.pages import chart_svg
from dynserver.web.password import hash_password, verify_password
from tests.support import ROOT, loopback
from tests.update.common import APP, ask, write_config

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)


@asynccontextmanager
async def running(
    folder: Path, web: str = "", limits: LimitPolicy | None = None
) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    """The App from the update tests' config plus a [web] table, started here."""
    path = write_config(folder, f"\n[web]\n{web}\n")
    app = App(with_listeners(config.load(path), [Listener(loopback(), 0)], None))
    await app.start()
    transport = httpx.ASGITransport(
        app=create_app(app.runtime, limits=limits), client=("198.51.100.7", 40000)
    )  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://dynserver.test") as client:
            yield app, client
    finally:
        await app.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def login(client: httpx.AsyncClient) -> str:
    """Log in; return the CSRF token of the new session."""
    response = await client.post("/login", data={"password": PASSWORD, "next": "/"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    return csrf((await client.get("/")).text)


def test_dashboard_shows_every_record_answer_reason_and_target_state(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (app, client):
            page = (await client.get("/")).text
            assert "<h1>Zones</h1>" in page
            for name in (APP, "v6.dyn.example.test", "www.dyn.example.test", "mon.dyn.example.test"):
                assert f'href="/records/{name}"' in page
            decision = app.runtime.engine.decisions[next(iter(app.runtime.engine.decisions))]
            assert decision.reason in page
            assert "192.0.2.21" in page and 'class="state state-up"' in page
            # No admin password configured: read-only, no buttons, no login link.
            assert "Maintenance</button>" not in page and 'href="/login"' not in page

    run(test)


def test_read_pages_need_a_login_unless_public(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path, f'admin_password_hash = "{HASH}"') as (_, client):
            for path in ("/", f"/records/{APP}", "/events"):
                response = await client.get(path)
                assert response.status_code == 303
                assert response.headers["location"] == f"/login?next={path}"
        async with running(tmp_path, f'admin_password_hash = "{HASH}"\npublic = true') as (_, client):
            page = await client.get("/")
            assert page.status_code == 200 and 'href="/login"' in page.text
            assert "Maintenance</button>" not in page.text
            assert __version__ not in page.text, "no version disclosure to strangers"
            await login(client)
            assert f"dynserver {__version__}" in (await client.get("/")).text
            client.cookies.clear()
            # Public means read-only: a state change still needs a session.
            refused = await client.post(f"/records/{APP}/targets/charlie/maintenance", data={"on": "1"})
            assert refused.status_code == 401

    run(test)


def test_login_sets_a_strict_httponly_cookie_secure_behind_tls(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path, f'admin_password_hash = "{HASH}"') as (_, client):
            wrong = await client.post("/login", data={"password": "nope"})
            assert wrong.status_code == 401 and "Wrong password" in wrong.text
            assert "set-cookie" not in wrong.headers
            ok = await client.post("/login", data={"password": PASSWORD, "next": "/events"})
            assert ok.status_code == 303 and ok.headers["location"] == "/events"
            cookie = ok.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
            client.cookies.clear()
            behind_tls = {"X-Forwarded-Proto": "https"}
            tls = await client.post("/login", data={"password": PASSWORD}, headers=behind_tls)
            assert "; secure" in tls.headers["set-cookie"].lower()
            # No open redirect through next=.
            away = await client.post("/login", data={"password": PASSWORD, "next": "//evil.example/"})
            assert away.headers["location"] == "/"

    run(test)


def test_login_is_rate_limited(tmp_path: Path) -> None:
    limits = LimitPolicy(client_failures=3, lockout=60)

    async def test() -> None:
        async with running(tmp_path, f'admin_password_hash = "{HASH}"', limits) as (_, client):
            for _ in range(3):
                assert (await client.post("/login", data={"password": "guess"})).status_code == 401
            blocked = await client.post("/login", data={"password": PASSWORD})
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
            assert "set-cookie" not in blocked.headers

    run(test)


def test_maintenance_needs_csrf_changes_the_answer_and_is_an_event_with_who(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path, f'admin_password_hash = "{HASH}"') as (app, client):
            bravo = next(k for k in app.runtime.engine.states if k[2] == "bravo")
            await app.runtime.update_target(bravo, "192.0.2.22", actor="test")  # bravo: up, no monitor
            token = await login(client)
            action = f"/records/{APP}/targets/charlie/maintenance?next=/"
            assert (await client.post(action, data={"on": "1"})).status_code == 403
            assert (await client.post(action, data={"on": "1", "csrf": "forged"})).status_code == 403
            assert ask(app, APP) == ["192.0.2.21"]
            done = await client.post(action, data={"on": "1", "csrf": token})
            assert done.status_code == 303 and done.headers["location"] == "/"
            assert ask(app, APP) == ["192.0.2.22"]  # failed over to bravo
            page = (await client.get("/")).text
            assert 'class="state state-maintenance"' in page and "End maintenance</button>" in page
            assert app.writer is not None
            await app.writer.flush()  # the writer commits events in batches
            events = (await client.get("/events?kind=maintenance")).text
            assert "charlie" in events and "web:admin" in events
            assert (await client.post(action, data={"on": "0", "csrf": token})).status_code == 303
            assert ask(app, APP) == ["192.0.2.21"]
            # Logging out ends the session: the old token is worth nothing.
            assert (await client.post("/logout", data={"csrf": token})).status_code == 303
            assert (await client.get("/")).status_code == 303

    run(test)


def test_check_now_from_the_dashboard(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path, f'admin_password_hash = "{HASH}"') as (app, client):
            token = await login(client)
            checked: list[object] = []
            app.runtime.check_now = checked.extend  # type: ignore[method-assign,assignment]
            response = await client.post("/records/mon.dyn.example.test/check", data={"csrf": token})
            assert response.status_code == 303
            assert [key[2] for key in checked] == ["foxtrot", "golf"]  # type: ignore[index]
            assert (await client.post("/records/nope.example/check", data={"csrf": token})).status_code == 404

    run(test)


def test_record_page_draws_the_chart_and_lists_events(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (app, client):
            assert app.store is not None
            now = time.time()
            await app.store.add_samples(
                [
                    Sample(now - 600, "mon.dyn.example.test.", "foxtrot", True, 0.012, "up"),
                    Sample(now - 300, "mon.dyn.example.test.", "foxtrot", False, 0.5, "down"),
                ]
            )
            page = (await client.get("/records/mon.dyn.example.test")).text
            assert '<svg class="chart"' in page and "<polyline" in page
            assert "foxtrot: down at" in page
            assert "foxtrot" in page and "golf" in page
            missing = await client.get("/records/nope.dyn.example.test")
            assert missing.status_code == 404

    run(test)


def test_event_log_filters(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (app, client):
            bravo = next(k for k in app.runtime.engine.states if k[2] == "bravo")
            await app.runtime.update_target(bravo, "192.0.2.22", actor="test")
            key = next(k for k in app.runtime.engine.states if k[2] == "charlie")
            app.runtime.set_maintenance(key, True, actor="tester")  # the answer moves to bravo
            assert app.writer is not None
            await app.writer.flush()
            everything = (await client.get("/events")).text
            assert "maintenance" in everything and "tester" in everything
            answers = (await client.get("/events?kind=answer")).text
            assert "kind-answer" in answers and "kind-maintenance" not in answers
            other = (await client.get("/events?target=golf")).text
            assert "No events." in other
            mine = (await client.get(f"/events?record={APP}&target=charlie")).text
            assert "kind-maintenance" in mine

    run(test)


def test_chart_without_samples_says_so() -> None:
    svg = chart_svg([], ["a"], 0.0, 3600.0)
    assert "no samples yet" in svg and "<polyline" not in svg


def test_password_hash_round_trip() -> None:
    assert HASH.startswith("scrypt$")
    assert verify_password(PASSWORD, HASH)
    assert not verify_password("wrong", HASH)
    assert not verify_password(PASSWORD, "scrypt$garbage")
    assert hash_password(PASSWORD) != HASH  # a fresh salt each time


def test_hash_password_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dynserver", "hash-password"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert verify_password(PASSWORD, result.stdout.strip())


def test_web_config_defaults_and_errors(tmp_path: Path) -> None:
    loaded = config.load(write_config(tmp_path))
    assert loaded.web.public is False and loaded.web.resolvers == DEFAULT_RESOLVERS
    loaded = config.load(write_config(tmp_path, '\n[web]\nresolvers = ["127.0.0.3:5300"]\npublic = true\n'))
    assert loaded.web.resolvers == ("127.0.0.3:5300",) and loaded.web.public
    with pytest.raises(ConfigError, match="hash-password"):
        config.load(write_config(tmp_path, '\n[web]\nadmin_password_hash = "plain"\n'))
    with pytest.raises(ConfigError, match="resolvers"):
        config.load(write_config(tmp_path, '\n[web]\nresolvers = ["dns.google"]\n'))
    with pytest.raises(ConfigError, match="unknown key"):
        config.load(write_config(tmp_path, "\n[web]\npublik = true\n"))


def test_readyz_waits_for_checks_of_monitored_records(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (app, client):
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks_running"] is True and ready.json()["database_open"] is True
            await app.scheduler.stop()  # the checker died: not ready
            stalled = await client.get("/readyz")
            assert stalled.status_code == 503 and stalled.json()["checks_running"] is False

    run(test)
