"""The agents' endpoints on a real server (the App with its uvicorn listener on 127.0.0.x,
in the test's event loop): the stream, and results refused with the API's JSON errors and
nothing applied (bad token, forged, replayed, malformed, oversized, too fast); a removed
agent's open stream ends within about a second."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from dynserver import config
from dynserver.app import App, with_listeners
from dynserver.locations import hub, protocol
from dynserver.model import Listener
from dynserver.store.db import Store
from tests.support import loopback
from tests.update.common import write_config

pytestmark = pytest.mark.timeout(60)

LOCATIONS = '\n[locations]\nquorum = 2\nname = "home"\n'


@dataclass
class Server:
    app: App
    url: str
    token: str
    database: Path
    stopped: bool = False

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.app.stop()

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or self.token}", "User-Agent": "dynserver-agent/7.0"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    def results(self) -> int:
        return sum(s.results for s in self.app.runtime.location_statuses() if s.name == "paris")


@asynccontextmanager
async def serving(folder: Path, extra: str = LOCATIONS) -> AsyncIterator[Server]:
    path = write_config(folder, extra)
    host = loopback()
    loaded = with_listeners(config.load(path), [Listener(host, 0)], Listener(host, 0))
    assert loaded.database is not None
    store = await Store.open(loaded.database)  # as `dynserver agent add` does, before the start
    stored, token = hub.new_agent("paris", canary=None, now=time.time())
    await store.add_agent(stored)
    await store.close()
    app = App(loaded)
    await app.start()
    assert app._web_server is not None
    web_host, port = app._web_server.address
    server = Server(app, f"http://{web_host}:{port}", token, loaded.database)
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def stream(client: httpx.AsyncClient) -> AsyncIterator[tuple[protocol.Hello, AsyncIterator[str]]]:
    async with client.stream("GET", protocol.STREAM_PATH) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(protocol.STREAM_CONTENT_TYPE)
        lines = response.aiter_lines()
        hello = protocol.decode_message(await anext(lines))
        assert isinstance(hello, protocol.Hello)
        yield hello, lines


def batch(session: str, *results: tuple[str, int], **item: Any) -> bytes:
    items = [
        {"check": check, "seq": seq, "ok": True, "reason": "connected", **item} for check, seq in results
    ]
    return msgspec.json.encode({"session": session, "results": items})


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post(
        protocol.RESULTS_PATH, content=body, headers={"Content-Type": "application/json"}
    )


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code
    return str(body["detail"])


def test_the_stream_and_results_with_every_refusal(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as server, server.client() as client, stream(client) as (hello, _):
            assert hello.agent == "paris" and hello.checks
            check = hello.checks[0].id
            assert [s.version for s in server.app.runtime.location_statuses() if s.name == "paris"] == ["7.0"]

            accepted = await post(client, batch(hello.session, (check, 1), latency=0.01))
            assert (accepted.status_code, accepted.json()) == (200, {"accepted": 1})
            assert server.results() == 1

            async with server.client("not-a-token") as stranger:
                refused = await post(stranger, batch(hello.session, (check, 2)))
                assert "token" in error(refused, 401, "unauthorized")
                assert refused.headers["www-authenticate"].startswith("Bearer")
                assert (await stranger.get(protocol.STREAM_PATH)).status_code == 401
            forged = await post(client, batch(hello.session, (check, 2), ("0123456789abcdef", 3)))
            assert "not handed to agent paris" in error(forged, 403, "forbidden")
            assert "replay" in error(await post(client, batch(hello.session, (check, 1))), 409, "conflict")
            assert "session" in error(await post(client, batch("gone", (check, 2))), 409, "conflict")
            malformed = await post(client, b'{"session": 1}')
            assert "$.session" in error(malformed, 400, "bad_request")
            oversized = await post(client, b" " * (protocol.MAX_BODY + 1))
            assert str(protocol.MAX_BODY) in error(oversized, 413, "too_large")
            assert (await client.get(protocol.RESULTS_PATH)).status_code == 405
            assert server.results() == 1  # nothing refused was applied

            await post(client, batch(hello.session, *[(check, seq) for seq in range(2, 101)]))
            too_fast = await post(client, batch(hello.session, (check, 101)))
            assert "retry after" in error(too_fast, 429, "too_many_requests")
            assert int(too_fast.headers["retry-after"]) >= 1
            assert server.results() == 100

    asyncio.run(test())


def remove(database: Path, name: str) -> None:
    """`dynserver agent remove`: another process (the server's loop runs meanwhile)."""
    with sqlite3.connect(database, timeout=10) as other:
        other.execute("DELETE FROM agent WHERE name = ?", (name,))


def test_a_removed_agent_is_refused_and_its_stream_cut_within_a_second(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as server, server.client() as client, stream(client) as (hello, lines):
            await asyncio.to_thread(remove, server.database, "paris")
            started = time.monotonic()
            async with asyncio.timeout(2.0):
                async for line in lines:
                    assert isinstance(protocol.decode_message(line), protocol.Ping)
            assert time.monotonic() - started < 1.5
            refused = await post(client, batch(hello.session, (hello.checks[0].id, 1)))
            error(refused, 401, "unauthorized")

    asyncio.run(test())


def test_without_locations_the_endpoints_answer_404(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path, extra="") as server, server.client() as client:
            response = await client.get(protocol.STREAM_PATH)
            assert "[locations]" in error(response, 404, "not_found")

    asyncio.run(test())


def test_the_server_stops_promptly_with_a_stream_open(tmp_path: Path) -> None:
    """uvicorn waits for open responses: the hub ends its streams first."""

    async def test() -> None:
        async with serving(tmp_path) as server, server.client() as client, stream(client) as (_, lines):
            started = time.monotonic()
            await asyncio.wait_for(server.stop(), 5.0)
            assert time.monotonic() - started < 3.0
            async with asyncio.timeout(2.0):
                assert [line async for line in lines if line] == []  # the stream ended, no error
            stored = await asyncio.to_thread(last_contact, server.database, "paris")
            assert stored is not None

    asyncio.run(test())


def last_contact(database: Path, name: str) -> float | None:
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT last_contact FROM agent WHERE name = ?", (name,)).fetchone()
    return None if row is None else row[0]
