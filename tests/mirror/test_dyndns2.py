"""The dyndns2 mirror: against a fake that answers every dyndns2 reply code (httpx's mock
transport: the request it sends is checked too), and against a second, real dynserver
whose /nic/update takes the pushes (its DNS answer follows the mirrored record; a wrong
password is a permanent event, never retried)."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import httpx
import pytest

from dynserver import __version__
from dynserver.mirror.base import Desired, MirrorError
from dynserver.mirror.dyndns2 import RETRY_911, Dyndns2
from dynserver.mirror.worker import MirrorState, MirrorWorker
from dynserver.model import DynamicRecord, MirrorConfig, MirrorRecord, Secret, Target
from dynserver.store.db import EventRow
from dynserver.update import credentials
from tests.support import until
from tests.update.common import BRAVO, LiveServer, ask, live_server

PASSWORD = "dyndns2-Secret-0123456789abcdef"
HOST = "home.example.com"
APP = (b"app", b"dyn", b"example", b"test")


def mirror_config(url: str = "https://dyn.example.net/nic/update", password: str = PASSWORD) -> MirrorConfig:
    return MirrorConfig(
        name="dd", type="dyndns2", zone="", url=url, username="home", password=Secret(password), timeout=5.0
    )


def record(name: str = HOST) -> DynamicRecord:
    return DynamicRecord(
        zone=APP[1:],
        name=APP,
        type="A",
        ttl=30,
        targets=(Target("a", "192.0.2.1"), Target("b", "192.0.2.2", priority=2)),
        mirror=(MirrorRecord("dd", name, 30),),
    )


# -- every reply code ----------------------------------------------------------------------

# (status, body) -> changed (success), or (permanent, retry_after) of the MirrorError
REPLIES: list[tuple[int, str, bool | tuple[bool, float | None]]] = [
    (200, "good 192.0.2.1\n", True),
    (200, "nochg 192.0.2.1\n", False),
    (401, "badauth\n", (True, None)),
    (401, "<html>401 Unauthorized</html>", (True, None)),  # a server's own 401 page is badauth
    (200, "badauth\n", (True, None)),
    (200, "!donator\n", (True, None)),
    (200, "!yours\n", (True, None)),
    (200, "notfqdn\n", (True, None)),
    (200, "nohost\n", (True, None)),
    (200, "numhost\n", (True, None)),
    (200, "badagent\n", (True, None)),
    (200, "abuse\n", (True, None)),
    (500, "911\n", (False, RETRY_911)),
    (200, "dnserr\n", (False, RETRY_911)),
    (502, "<html>Bad Gateway</html>", (False, None)),
    (200, "<html>a captive portal</html>", (False, None)),
    (404, "not found", (True, None)),
]


async def push(status: int, body: str, desired: Desired) -> tuple[object, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text=body)

    mirror = Dyndns2(mirror_config(), transport=httpx.MockTransport(answer))
    await mirror.start()
    try:
        return await mirror.sync(desired), seen
    except MirrorError as error:
        return error, seen
    finally:
        await mirror.close()


@pytest.mark.parametrize(("status", "body", "expected"), REPLIES)
def test_every_reply_code(status: int, body: str, expected: bool | tuple[bool, float | None]) -> None:
    result, [request] = asyncio.run(push(status, body, Desired(HOST, "A", ("192.0.2.1",), 60)))
    assert (request.method, request.url.path) == ("GET", "/nic/update")
    assert dict(request.url.params) == {"hostname": HOST, "myip": "192.0.2.1"}
    assert (
        request.headers["authorization"] == "Basic " + base64.b64encode(f"home:{PASSWORD}".encode()).decode()
    )
    assert request.headers["user-agent"] == f"dynserver/{__version__}"
    if isinstance(expected, bool):
        assert not isinstance(result, MirrorError), result
        assert result.changed is expected  # type: ignore[attr-defined]
        assert result.after == ("192.0.2.1",)  # type: ignore[attr-defined]
    else:
        assert isinstance(result, MirrorError)
        assert (result.permanent, result.retry_after) == expected
        assert PASSWORD not in result.message + result.reply


def test_an_aaaa_record_sends_its_address_and_an_empty_answer_sends_nothing() -> None:
    result, [request] = asyncio.run(
        push(200, "good 2001:db8::1", Desired(HOST, "AAAA", ("2001:db8::1",), 60))
    )
    assert request.url.params["myip"] == "2001:db8::1"
    assert result.changed  # type: ignore[attr-defined]
    empty, seen = asyncio.run(push(200, "good", Desired(HOST, "A", (), 60)))
    assert seen == []
    assert "cannot remove" in empty.reply  # type: ignore[attr-defined]


def test_abuse_stops_retries_and_911_waits_half_an_hour() -> None:
    async def main(body: str, status: int) -> tuple[list[EventRow], int, MirrorState]:
        calls = 0

        def answer(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            return httpx.Response(status, text=body)

        events: list[EventRow] = []
        rec = record()
        provider = Dyndns2(mirror_config(), transport=httpx.MockTransport(answer))
        worker = MirrorWorker([rec], {"dd": provider}, {"dd": 3600.0}, event=events.append, settle=0.0)
        await worker.start([(rec, ["192.0.2.1"])])
        try:
            await until(lambda: len(events) >= 1)
            await asyncio.sleep(0.3)  # no retry may follow (waits for calls that must not happen)
            [status_row] = worker.status()
            return events, calls, status_row.state
        finally:
            await worker.stop()

    events, calls, state = asyncio.run(main("abuse", 200))
    assert (calls, state, [e.result for e in events]) == (1, MirrorState.FAILED, ["permanent"])
    assert "abuse" in events[0].reason
    events, calls, state = asyncio.run(main("911", 500))
    assert (calls, state, [e.result for e in events]) == (1, MirrorState.RETRYING, ["error"])
    assert f"retrying after {RETRY_911:g} s" in events[0].reason


# -- a second dynserver --------------------------------------------------------------------


def answered(live: LiveServer) -> list[str]:
    async def read() -> list[str]:
        return ask(live.app, BRAVO)

    return asyncio.run_coroutine_threadsafe(read(), live.loop).result(10)


def test_pushes_to_a_second_dynserver(tmp_path: Path) -> None:
    with live_server(tmp_path) as live:
        stored, secret = credentials.create(
            "mirror", admin=False, targets=("app.dyn.example.test/bravo",), now=time.time()
        )
        live.add(stored)

        async def main() -> list[EventRow]:
            events: list[EventRow] = []
            rec = record(BRAVO)
            config = MirrorConfig(
                name="dd",
                type="dyndns2",
                zone="",
                url=f"{live.url}/nic/update",
                username="mirror",
                password=Secret(secret),
            )
            worker = MirrorWorker(
                [rec], {"dd": Dyndns2(config)}, {"dd": 0.2}, event=events.append, settle=0.0
            )
            await worker.start([(rec, ["192.0.2.31"])])
            try:
                await until(
                    lambda: answered(live) == ["192.0.2.31"], "the second dynserver answers the push", 15
                )
                await asyncio.sleep(0.5)  # reconciles: nochg, nothing recorded
                worker.submit(rec, ["192.0.2.32"])  # a failover
                await until(lambda: answered(live) == ["192.0.2.32"], "the failover pushed", 15)
                await until(lambda: len(events) >= 2)
            finally:
                await worker.stop()
            return events

        events = asyncio.run(main())
        assert [(e.result, e.previous, e.current) for e in events] == [
            ("ok", "", "192.0.2.31"),
            ("ok", "192.0.2.31", "192.0.2.32"),
        ]
        assert events[0].detail["reply"] == f"update {BRAVO}: HTTP 200 good 192.0.2.31"

        async def wrong_password() -> list[EventRow]:
            events: list[EventRow] = []
            rec = record(BRAVO)
            config = MirrorConfig(
                name="dd",
                type="dyndns2",
                zone="",
                url=f"{live.url}/nic/update",
                username="mirror",
                password=Secret(PASSWORD),
            )
            worker = MirrorWorker(
                [rec], {"dd": Dyndns2(config)}, {"dd": 3600.0}, event=events.append, settle=0.0
            )
            await worker.start([(rec, ["192.0.2.33"])])
            try:
                await until(lambda: len(events) >= 1)
            finally:
                await worker.stop()
            return events

        [event] = asyncio.run(wrong_password())
        assert event.result == "permanent"
        assert "badauth" in event.reason
        assert PASSWORD not in repr(event)
        assert answered(live) == ["192.0.2.32"]
