"""The propagation page and its JSON, in-process, against real DNS servers on 127.0.0.x.

The App under test runs in the test's event loop (its web app reached through httpx's
ASGI transport, as in test_pages.py). The servers it asks are real: its own DNS listener
(a configured secondary, and a "resolver" that answers from the zone it serves), a second
dynserver serving an older copy of the zone (stale), an address where nothing listens
(refused at once) and a socket that takes queries and never answers (a hung server:
timeout). No package needed; the delegation through a real resolver and NSD secondaries
is tests/web/test_propagation.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dynserver import config, propagation
from dynserver.app import App
from dynserver.errors import ConfigError
from dynserver.model import Listener
from dynserver.propagation import Checker, Endpoint
from dynserver.update import credentials
from dynserver.web.app import WebServer, create_app
from dynserver.web.password import hash_password
from tests.support import free_port, loopback

APP = "app.dyn.example.test"
PASSWORD = "correct horse battery"
TIMEOUT = 0.5
SECRET = base64.b64encode(b"propagation-mirror-secret-012345").decode()

ZONE_FILE = """\
$ORIGIN dyn.example.test.
$TTL 300
@     IN SOA ns1 hostmaster {serial} 3600 600 86400 60
      IN NS  ns1.example.invalid.
www   IN CNAME app
other IN A 192.0.2.77
{extra}"""

CONFIG = """\
[server]
dns = ["{host}:{port}"]
database = "{database}"

[zones."dyn.example.test"]
file = "{zone}"
"""

OURS = """
[keys.mirror]
secret = "{secret}"

[mirrors.primary]
type = "rfc2136"
zone = "example.org"
primary = "{dead}"
key = "mirror"
timeout = 0.5

[zones."dyn.example.test".transfer]
secondaries = [
  {{ address = "{me}" }}, {{ address = "{stale}" }}, {{ address = "{dead}" }}, {{ address = "{hung}" }},
]

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [
  {{ name = "charlie", value = "192.0.2.21", priority = 1 }},
  {{ name = "bravo", value = "192.0.2.22", priority = 2 }},
]
mirror = [{{ to = "primary", name = "app.example.org" }}]

[zones."dyn.example.test".records.big]
type = "A"
ttl = 30
targets = [{big}]

[web]
resolvers = ["{me}", "{dead}"]
propagation_timeout = {timeout}
{web}
"""


def where(host: str, port: int) -> str:
    return f"{host}:{port}"


@dataclass
class World:
    app: App
    client: httpx.AsyncClient
    token: str
    me: str
    stale: str
    dead: str
    hung: str
    checker: Checker

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def api(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(f"/api/v1{path}", params=params, headers=self.bearer())


async def serve(
    folder: Path, host: str, port: int, zone_text: str, extra: str = "", database: bool = False
) -> App:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zone").write_text(zone_text)
    text = CONFIG.format(host=host, port=port, database="dynserver.db" if database else "", zone="zone")
    (folder / "dynserver.toml").write_text(text + extra)
    app = App(config.load(folder / "dynserver.toml"))
    await app.start()
    return app


@asynccontextmanager
async def world(folder: Path, web: str = "", checker: Checker | None = None) -> AsyncIterator[World]:
    """dynserver (with its web app), a stale copy of its zone, a dead and a hung address."""
    me_host, stale_host, dead_host, hung_host = loopback(), loopback(), loopback(), loopback()
    me = where(me_host, free_port(me_host))
    stale = where(stale_host, free_port(stale_host))
    dead = where(dead_host, free_port(dead_host))
    hung_port = free_port(hung_host)
    hung = where(hung_host, hung_port)
    big = ", ".join(f'{{ name = "t{i}", value = "198.51.100.{i}" }}' for i in range(1, 101))
    ours = OURS.format(
        secret=SECRET, me=me, stale=stale, dead=dead, hung=hung, big=big, timeout=TIMEOUT, web=web
    )
    # A server that takes queries and never answers: a bound socket nobody reads.
    hung_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hung_socket.bind((hung_host, hung_port))
    old = await serve(
        folder / "stale",
        stale_host,
        int(stale.rsplit(":", 1)[1]),
        ZONE_FILE.format(serial=1, extra="app IN A 192.0.2.99\n"),
    )
    try:
        app = await serve(
            folder / "ours",
            me_host,
            int(me.rsplit(":", 1)[1]),
            ZONE_FILE.format(serial=100, extra=""),
            ours,
            database=True,
        )
        try:
            checker = checker or Checker(timeout=TIMEOUT)
            stored, token = credentials.create(
                "bravo", admin=False, targets=(f"{APP}/bravo",), now=time.time()
            )
            assert app.store is not None and await app.store.add_credential(stored)
            transport = httpx.ASGITransport(
                app=create_app(app.runtime, checker=checker), client=("198.51.100.7", 40000)
            )  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://dynserver.test") as client:
                yield World(app, client, token, me, stale, dead, hung, checker)
        finally:
            await app.stop()
    finally:
        await old.stop()
        hung_socket.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def rows(body: dict[str, Any], section: str = "nameservers") -> dict[str, dict[str, Any]]:
    """Rows by "address:port" (a nameless row by its name)."""
    return {where(r["address"], r["port"]) if r["address"] else r["names"][0]: r for r in body[section]}


def test_the_json_marks_each_server_in_sync_stale_or_error(tmp_path: Path) -> None:
    async def test() -> None:
        async with world(tmp_path) as w:
            response = await w.api(f"/records/{APP}/propagation")
            assert response.status_code == 200, response.text
            body = response.json()
            serial = w.app.runtime.snapshot.zones[(b"dyn", b"example", b"test")].serial
            assert body["record"] == APP and body["zone"] == "dyn.example.test"
            assert body["expected"] == {
                "answer": ["192.0.2.21"],
                "ttl": 30,
                "serial": serial,
                "rcode": "NOERROR",
            }

            servers = rows(body)
            assert set(servers) == {w.me, w.stale, w.dead, w.hung, "ns1.example.invalid"}
            mine = servers[w.me]
            assert (mine["status"], mine["aa"], mine["answer"], mine["ttl"], mine["serial"]) == (
                "in_sync",
                True,
                ["192.0.2.21"],
                30,
                serial,
            )
            assert mine["sources"] == ["secondary"] and mine["latency"] < TIMEOUT
            old = servers[w.stale]
            assert (old["status"], old["answer"], old["serial"]) == ("stale", ["192.0.2.99"], 1)
            assert old["reason"] == f"serial 1 (ours {serial}) answers 192.0.2.99: not caught up"
            assert servers[w.dead]["status"] == "error"
            assert servers[w.dead]["reason"] == f"refused: nothing listens at {w.dead}"
            assert servers[w.hung]["status"] == "error"
            assert servers[w.hung]["reason"] == f"timeout after {TIMEOUT:g} s"
            nameless = servers["ns1.example.invalid"]
            assert nameless["status"] == "error" and nameless["sources"] == ["zone"]
            assert nameless["reason"].startswith("no address for ns1.example.invalid: A: REFUSED")

            resolvers = rows(body, "resolvers")
            assert resolvers[w.me]["status"] == "in_sync" and resolvers[w.me]["answer"] == ["192.0.2.21"]
            assert resolvers[w.me]["ttl"] == 30
            assert resolvers[w.dead]["status"] == "error"
            assert body["summary"] == {"in_sync": 2, "stale": 1, "error": 4}
            # Our "resolver" is authoritative only: it cannot say which zone holds example.test.
            assert body["delegation"]["source"] == "none"
            assert body["warnings"] == [
                f"the delegation of dyn.example.test could not be checked: resolver {w.me} "
                "did not say which zone holds example.test (REFUSED)"
            ]
            # The hung server costs one timeout, not one per query: everything ran at once.
            assert body["duration"] < 3 * TIMEOUT, body["duration"]
            assert body["cname_check"] is None

    run(test)


def test_the_api_needs_a_credential_and_names_what_is_wrong(tmp_path: Path) -> None:
    async def test() -> None:
        async with world(tmp_path) as w:
            path = f"/api/v1/records/{APP}/propagation"
            anonymous = await w.client.get(path)
            assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
            missing = await w.api("/records/nope.dyn.example.test/propagation")
            assert missing.status_code == 404
            assert missing.json() == {
                "error": "not_found",
                "detail": "no dynamic record 'nope.dyn.example.test'",
            }
            bad = await w.api(f"/records/{APP}/propagation", hostname="www..example.com")
            assert bad.status_code == 400 and bad.json()["detail"].startswith("hostname: 'www..example.com'")
            typo = await w.api(f"/records/{APP}/propagation", hostnme="www.example.com")
            assert typo.status_code == 400 and "hostnme" in typo.json()["detail"]
            assert w.checker.new_checks == 0  # nothing was asked for refused requests

    run(test)


def test_the_cname_box_follows_a_hostname_hop_by_hop(tmp_path: Path) -> None:
    async def test() -> None:
        async with world(tmp_path) as w:
            body = (await w.api(f"/records/{APP}/propagation", hostname="WWW.dyn.example.test.")).json()
            assert body["cname_check"] == {
                "hostname": "www.dyn.example.test",
                "resolver": w.me,
                "hops": [{"name": "www.dyn.example.test", "cname": APP, "ttl": 300}],
                "end": APP,
                "answer": ["192.0.2.21"],
                "rcode": "NOERROR",
                "reaches_record": True,
                "reason": f"www.dyn.example.test reaches {APP} in 1 hop(s)",
                "error": None,
            }
            other = (await w.api(f"/records/{APP}/propagation", hostname="other.dyn.example.test")).json()
            assert other["cname_check"]["reaches_record"] is False
            assert (
                other["cname_check"]["reason"]
                == "other.dyn.example.test has no CNAME: it answers 192.0.2.77 itself"
            )
            refused = (await w.api(f"/records/{APP}/propagation", hostname="www.example.com")).json()
            assert refused["cname_check"]["error"] == "www.example.com: REFUSED"
            assert refused["cname_check"]["reaches_record"] is False

    run(test)


def test_the_page_renders_every_row_without_script(tmp_path: Path) -> None:
    async def test() -> None:
        async with world(tmp_path) as w:
            response = await w.client.get(
                f"/records/{APP}/propagation", params={"hostname": " www.dyn.example.test "}
            )
            assert response.status_code == 200
            page = response.text
            for address, status in (
                (w.me, "in_sync"),
                (w.stale, "stale"),
                (w.dead, "error"),
                (w.hung, "error"),
            ):
                host, port = address.rsplit(":", 1)
                assert f'<tr class="row-{status}" data-address="{host}" data-port="{port}">' in page
            assert '<span class="status status-stale">stale</span> <small>serial 1 (ours' in page
            assert "could not be checked" in page  # the warning
            assert '<ol class="chain" id="chain">' in page and "points here" in page
            assert 'value="www.dyn.example.test"' in page  # the box keeps what was asked
            # The live refresh: a local script, and the JSON it reads under the page's rules.
            assert '<script src="http://dynserver.test/static/propagation.js" defer></script>' in page
            assert 'data-json="/records/app.dyn.example.test/propagation.json"' in page
            script = await w.client.get("/static/propagation.js")
            assert (
                script.status_code == 200 and "textContent" in script.text and "innerHTML" not in script.text
            )
            live = await w.client.get(f"/records/{APP}/propagation.json")
            assert live.status_code == 200 and rows(live.json())[w.stale]["status"] == "stale"
            assert live.headers["cache-control"] == "no-store"
            # Linked from the dashboard and the record page.
            link = f'href="/records/{APP}/propagation"'
            assert link in (await w.client.get("/")).text
            assert link in (await w.client.get(f"/records/{APP}")).text

            wrong = await w.client.get(
                f"/records/{APP}/propagation", params={"hostname": "<script>x</script>"}
            )
            assert wrong.status_code == 400
            assert "is not a hostname" in wrong.text and "<script>x" not in wrong.text
            assert 'class="row-in_sync"' in wrong.text  # the rest of the page is still there
            missing = await w.client.get("/records/nope.dyn.example.test/propagation")
            assert missing.status_code == 404 and "nope.dyn.example.test" in missing.text
            assert (await w.client.get("/records/nope.dyn.example.test/propagation.json")).status_code == 404

    run(test)


def test_the_page_needs_a_login_unless_public(tmp_path: Path) -> None:
    hashed = hash_password(PASSWORD)

    async def test() -> None:
        async with world(tmp_path / "private", f'admin_password_hash = "{hashed}"') as w:
            page = await w.client.get(f"/records/{APP}/propagation")
            assert page.status_code == 303
            assert page.headers["location"] == f"/login?next=/records/{APP}/propagation"
            live = await w.client.get(f"/records/{APP}/propagation.json")
            assert live.status_code == 401 and live.json()["error"] == "unauthorized"
            assert w.checker.new_checks == 0
            logged = await w.client.post("/login", data={"password": PASSWORD})
            assert logged.status_code == 303
            assert (await w.client.get(f"/records/{APP}/propagation.json")).status_code == 200
        async with world(tmp_path / "public", f'admin_password_hash = "{hashed}"\npublic = true') as w:
            assert (await w.client.get(f"/records/{APP}/propagation")).status_code == 200
            assert (await w.client.get(f"/records/{APP}/propagation.json")).status_code == 200

    run(test)


def test_a_check_is_shared_briefly_and_shows_a_change_once_it_expires(tmp_path: Path) -> None:
    async def test() -> None:
        async with world(tmp_path) as w:
            first, second = await asyncio.gather(
                w.api(f"/records/{APP}/propagation"), w.client.get(f"/records/{APP}/propagation.json")
            )
            assert w.checker.new_checks == 1  # the API and the page share one check
            assert first.json()["checked_at"] == second.json()["checked_at"]
            before = first.json()["expected"]["serial"]

            charlie = next(k for k in w.app.runtime.engine.states if k[2] == "charlie")
            w.app.runtime.set_maintenance(charlie, True, actor="test")  # fail over to bravo: serial + 1
            cached = (await w.api(f"/records/{APP}/propagation")).json()
            assert cached["expected"]["answer"] == ["192.0.2.21"] and cached["age"] >= 0

            await asyncio.sleep(propagation.CACHE_SECONDS + 0.1)
            fresh = (await w.api(f"/records/{APP}/propagation")).json()
            assert w.checker.new_checks == 2
            assert fresh["expected"]["answer"] == ["192.0.2.22"]
            assert fresh["expected"]["serial"] == before + 1
            servers = rows(fresh)
            assert servers[w.me]["status"] == "in_sync" and servers[w.me]["serial"] == before + 1
            assert servers[w.stale]["status"] == "stale"
            assert rows(fresh, "resolvers")[w.me]["answer"] == ["192.0.2.22"]

    run(test)


def test_a_spent_budget_is_429_until_it_refills(tmp_path: Path) -> None:
    async def test() -> None:
        async with world(tmp_path, checker=Checker(timeout=TIMEOUT, rate=0.05, burst=1)) as w:
            assert (await w.api(f"/records/{APP}/propagation")).status_code == 200
            busy = await w.api("/records/big.dyn.example.test/propagation")
            assert busy.status_code == 429 and busy.json()["error"] == "too_many_requests"
            assert 1 <= int(busy.headers["retry-after"]) <= 20
            page = await w.client.get("/records/big.dyn.example.test/propagation")
            assert page.status_code == 429 and "too many propagation checks" in page.text
            assert int(page.headers["retry-after"]) >= 1
            live = await w.client.get("/records/big.dyn.example.test/propagation.json")
            assert live.status_code == 429
            # A record already checked is still served (its last result), and a hostname
            # over budget is an error in the box, not a failed page.
            again = await w.api(f"/records/{APP}/propagation", hostname="www.dyn.example.test")
            assert again.status_code == 200
            assert "too many propagation checks" in again.json()["cname_check"]["error"]

    run(test)


def test_mirrors_show_the_providers_last_reply(tmp_path: Path) -> None:
    async def test() -> None:
        async with world(tmp_path) as w:
            deadline = time.monotonic() + 10
            while True:
                body = (await w.api(f"/records/{APP}/propagation")).json()
                if body["mirrors"] and body["mirrors"][0]["state"] != "pending":
                    break
                assert time.monotonic() < deadline, body["mirrors"]
                await asyncio.sleep(propagation.CACHE_SECONDS / 2)
            [mirror] = body["mirrors"]
            assert (mirror["mirror"], mirror["kind"], mirror["name"], mirror["type"]) == (
                "primary",
                "rfc2136",
                "app.example.org",
                "A",
            )
            assert mirror["status"] == "error" and mirror["state"] in ("retrying", "failed")
            assert mirror["desired"] == ["192.0.2.21"] and mirror["last_error"]
            assert mirror["last_attempt"] is not None
            page = (await w.client.get(f"/records/{APP}/propagation")).text
            assert '<tr class="row-error" data-mirror="primary">' in page
            # A record without mirrors has no mirror rows.
            assert (await w.api("/records/big.dyn.example.test/propagation")).json()["mirrors"] == []

    run(test)


def test_a_truncated_reply_is_asked_again_over_tcp(tmp_path: Path) -> None:
    async def test() -> None:
        async with world(tmp_path) as w:
            host, port = w.me.rsplit(":", 1)
            ask = propagation.dns_asker(TIMEOUT)
            reply = await ask(Endpoint(host, int(port)), "big.dyn.example.test", "A", False)
            assert reply.message is not None and reply.error is None
            assert len(reply.message.answer[0]) == 100  # 1.6 kB: more than the 1232 of UDP
            body = (await w.api("/records/big.dyn.example.test/propagation")).json()
            assert len(body["expected"]["answer"]) == 100
            assert rows(body)[w.me]["status"] == "in_sync"

    run(test)


def test_the_guard_keeps_tests_on_loopback() -> None:
    """tests/conftest.py: a check that would leave 127.0.0.0/8 fails instead."""

    async def test() -> None:
        ask = propagation.dns_asker(TIMEOUT)
        with pytest.raises(AssertionError, match=r"only 127\.0\.0\.0/8"):
            await ask(Endpoint("192.0.2.1"), APP, "A", True)

    run(test)


def test_propagation_timeout_is_configured_in_web(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.toml"
    (tmp_path / "zone").write_text(ZONE_FILE.format(serial=1, extra=""))
    base = CONFIG.format(host="127.0.0.1", port=0, database="", zone="zone")
    path.write_text(base)
    assert config.load(path).web.propagation_timeout == 1.5
    path.write_text(base + "\n[web]\npropagation_timeout = 0.25\n")
    assert config.load(path).web.propagation_timeout == 0.25
    for bad in ("0.01", "60", '"fast"'):
        path.write_text(base + f"\n[web]\npropagation_timeout = {bad}\n")
        with pytest.raises(
            ConfigError, match=r"dynserver.toml:9: web.propagation_timeout: expected a number"
        ):
            config.load(path)


def test_stopping_the_web_server_ends_the_checks_in_flight(tmp_path: Path) -> None:
    """A check stuck on a hung server (a long timeout here) must not hold up a stop."""

    async def test() -> None:
        slow = Checker(timeout=60)
        async with world(tmp_path, checker=slow) as w:
            host = loopback()
            server = WebServer(create_app(w.app.runtime, checker=slow), Listener(host, 0))
            await server.start()
            url = f"http://{host}:{server.address[1]}/records/{APP}/propagation.json"
            async with httpx.AsyncClient() as client:
                request = asyncio.ensure_future(client.get(url, timeout=90))
                deadline = time.monotonic() + 10
                while not slow._reports:  # the check has started
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                started = time.monotonic()
                await server.stop()
                assert time.monotonic() - started < 10
                [entry] = slow._reports.values()
                assert entry.task.cancelled()
                with contextlib.suppress(httpx.HTTPError):
                    response = await request
                    assert response.status_code >= 500  # if anything came back, it is no result

    run(test)
