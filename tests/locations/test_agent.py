"""The agent against a fake server that speaks the protocol (starlette on 127.0.0.x, in
the test's event loop): it runs the checks it is handed against real backends, posts their
results in order, follows a changed check list, and reconnects when the server goes away,
ends its session or stays silent. One test runs `dynserver agent run` as a real process."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dynserver import __version__
from dynserver.health.probes import Check
from dynserver.health.state import Result
from dynserver.locations import agent as agent_module
from dynserver.locations import protocol
from dynserver.locations.agent import Agent, Session, read_token
from dynserver.model import Monitor, MonitorType
from tests.backends import Backend, backends
from tests.support import DEADLINE, ROOT, free_port, loopback, until

TOKEN = "agent-token-" + "x" * 32
INTERVAL = 0.2


def tcp_check(host: str, port: int) -> Check:
    monitor = Monitor(name="tcp", type=MonitorType.TCP, port=port, interval=INTERVAL, timeout=1.0)
    return Check(monitor=monitor, address=host, port=port, path="/", headers=())


class FakeServer:
    """The server's end of the protocol, scripted by the test: the checks it hands out,
    the replies its next results POSTs get, and a cut of every open stream."""

    def __init__(
        self, checks: dict[str, Check] | None = None, *, heartbeat: float = 15.0, canary: str | None = None
    ) -> None:
        self.token = TOKEN
        self.heartbeat = heartbeat
        self.canary = canary
        self.pings = True
        self.generation = 1
        self.checks: list[protocol.CheckSpec] = []
        self.attempts = 0  # stream requests, refused ones included
        self.user_agents: list[str] = []
        self.sessions: list[str] = []
        self.batches: list[protocol.ResultsBatch] = []  # accepted
        self.posts: list[tuple[float, int]] = []  # (arrival, status) of every results POST
        self.replies: list[tuple[int, dict[str, str]]] = []  # the next POSTs' answers
        self._streams: list[asyncio.Queue[bytes | None]] = []
        self.app = Starlette(
            routes=[
                Route(protocol.STREAM_PATH, self._stream),
                Route(protocol.RESULTS_PATH, self._results, methods=["POST"]),
            ]
        )
        self.hand(checks or {})

    def hand(self, checks: dict[str, Check]) -> None:
        """Hand these checks: in the next hello, and now to every open stream."""
        self.generation += 1
        self.checks = [protocol.spec(id, check, INTERVAL) for id, check in checks.items()]
        message = protocol.encode_message(protocol.Checks(generation=self.generation, checks=self.checks))
        for stream in self._streams:
            stream.put_nowait(message)

    def cut(self) -> None:
        for stream in self._streams:
            stream.put_nowait(None)

    def results(self, check: str | None = None) -> list[protocol.ResultItem]:
        return [item for batch in self.batches for item in batch.results if check in (None, item.check)]

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def _stream(self, request: Request) -> Response:
        self.attempts += 1
        if not self._authorized(request):
            return JSONResponse({"error": "unauthorized", "detail": "unknown token"}, status_code=401)
        self.user_agents.append(request.headers["user-agent"])
        session = secrets.token_hex(8)
        self.sessions.append(session)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._streams.append(queue)
        hello = protocol.Hello(
            agent="fra-1",
            session=session,
            version="test",
            heartbeat=self.heartbeat,
            canary=self.canary,
            generation=self.generation,
            checks=self.checks,
        )

        async def lines() -> AsyncIterator[bytes]:
            yield protocol.encode_message(hello)
            try:
                while True:
                    try:
                        line = await asyncio.wait_for(queue.get(), self.heartbeat)
                    except TimeoutError:
                        if self.pings:
                            yield protocol.encode_message(protocol.Ping())
                        continue
                    if line is None:
                        return
                    yield line
            finally:
                self._streams.remove(queue)

        return StreamingResponse(lines(), media_type=protocol.STREAM_CONTENT_TYPE)

    async def _results(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"error": "unauthorized", "detail": "unknown token"}, status_code=401)
        batch = protocol.decode_results(await request.body())
        if self.replies:
            status, headers = self.replies.pop(0)
            self.posts.append((time.monotonic(), status))
            return JSONResponse({"error": "scripted", "detail": f"scripted {status}"}, status, headers)
        if batch.session != self.sessions[-1]:
            self.posts.append((time.monotonic(), 409))
            return JSONResponse({"error": "conflict", "detail": "unknown session"}, status_code=409)
        self.posts.append((time.monotonic(), 200))
        self.batches.append(batch)
        return JSONResponse({"accepted": len(batch.results)})


@asynccontextmanager
async def serving(fake: FakeServer, host: str, port: int) -> AsyncIterator[str]:
    """The fake on host:port until the block ends; yields its base URL."""
    config = uvicorn.Config(
        fake.app, host=host, port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), "the fake server to listen")
    try:
        yield f"http://{host}:{port}"
    finally:
        fake.cut()
        server.should_exit = True
        await task


@asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[Agent]:
    stopping = asyncio.Event()
    task = asyncio.create_task(agent.run(stopping))
    try:
        yield agent
    finally:
        stopping.set()
        await asyncio.wait_for(task, DEADLINE)


@asynccontextmanager
async def connected(fake: FakeServer) -> AsyncIterator[Agent]:
    """The fake on a fresh 127.0.0.x address and an agent of it, until the block ends."""
    host = loopback()
    async with serving(fake, host, free_port(host)) as url, running(Agent(url, TOKEN)) as agent:
        yield agent


def up(backend: Backend) -> dict[str, Check]:
    return {"up": tcp_check(backend.host, backend.port)}


def seqs(fake: FakeServer) -> list[int]:
    return [item.seq for item in fake.results()]


def in_order(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    with backends(tmp_path) as registry:
        host = loopback()
        yield registry.add("tcp", "a", host, free_port(host))


def test_handed_checks_run_against_real_backends_and_their_results_arrive_in_order(backend: Backend) -> None:
    async def test() -> None:
        host = loopback()
        closed = free_port(host)  # nothing listens here: connection refused
        fake = FakeServer({**up(backend), "down": tcp_check(host, closed)})
        async with connected(fake) as agent:
            await until(lambda: len(fake.results("up")) >= 3 and len(fake.results("down")) >= 3, "results")
        assert {(item.ok, item.reason) for item in fake.results("up")} == {(True, "connected")}
        assert {(item.ok, item.reason) for item in fake.results("down")} == {(False, "connection refused")}
        assert all(item.latency is not None and item.latency >= 0 for item in fake.results())
        assert in_order(seqs(fake))
        assert {batch.session for batch in fake.batches} == set(fake.sessions) and agent.sessions == 1
        assert fake.user_agents == [f"dynserver-agent/{__version__}"]
        assert agent.accepted == len(fake.results())

    asyncio.run(test())


def test_a_changed_check_list_applies_on_the_same_stream(backend: Backend) -> None:
    async def test() -> None:
        fake = FakeServer({"old": tcp_check(backend.host, backend.port)})
        async with connected(fake) as agent:
            await until(lambda: len(fake.results("old")) >= 2, "results of the first check")
            host = loopback()
            fake.hand({"new": tcp_check(host, free_port(host))})
            await until(lambda: len(fake.results("new")) >= 3, "results of the handed check")
        checks = [item.check for item in fake.results()]
        first_new = checks.index("new")
        assert "old" not in checks[first_new:], "the check no longer handed still ran"
        assert agent.sessions == 1 and len(fake.sessions) == 1  # no new stream, no restart
        assert in_order(seqs(fake))

    asyncio.run(test())


def test_a_409_ends_the_session_and_the_agent_opens_a_new_stream(backend: Backend) -> None:
    async def test() -> None:
        fake = FakeServer(up(backend))
        fake.replies = [(409, {})]
        async with connected(fake) as agent:
            await until(lambda: len(fake.results()) >= 2, "results of the second session", DEADLINE)
        assert agent.sessions == 2 and len(fake.sessions) == 2
        assert {batch.session for batch in fake.batches} == {fake.sessions[1]}
        assert seqs(fake)[0] == 1  # a new session numbers from the start again

    asyncio.run(test())


def test_the_server_gone_the_agent_reconnects_with_backoff(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=agent_module.__name__)

    async def test() -> None:
        fake = FakeServer(up(backend))
        host = loopback()
        port = free_port(host)
        agent = Agent(f"http://{host}:{port}", TOKEN)
        async with serving(fake, host, port):
            stopping = asyncio.Event()
            task = asyncio.create_task(agent.run(stopping))
            await until(lambda: len(fake.results()) >= 1, "results")
        gone = len(fake.results())
        await asyncio.sleep(2.0)  # refused connections meanwhile: a few attempts, backing off
        async with serving(fake, host, port):
            await until(lambda: len(fake.results()) > gone, "results after the restart", DEADLINE)
            stopping.set()
            await asyncio.wait_for(task, DEADLINE)
        assert agent.sessions == 2

    asyncio.run(test())
    events = [record.getMessage().split()[0] for record in caplog.records]
    assert events.count("event=agent_connected") == 2
    assert events.count("event=agent_disconnected") == 1
    failed = [
        record.getMessage()
        for record in caplog.records
        if "event=agent_connect_failed" in record.getMessage()
    ]
    # Backing off: attempts at about 0.5, 1 and 2 s after the cut, not dozens.
    assert 1 <= len(failed) <= 3, failed
    assert all("reason='connection refused'" in message for message in failed), failed


def test_a_silent_stream_is_given_up_after_three_heartbeats(backend: Backend) -> None:
    async def test() -> None:
        fake = FakeServer(up(backend), heartbeat=0.3)
        fake.pings = False
        async with connected(fake) as agent:
            started = time.monotonic()
            await until(lambda: agent.sessions >= 2, "a new stream", DEADLINE)
            waited = time.monotonic() - started
        assert 0.9 <= waited < 0.9 + 2.0

    asyncio.run(test())


def test_a_refused_token_is_logged_once_and_retried_slowly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=agent_module.__name__)

    async def test() -> None:
        fake = FakeServer()
        fake.token = "another-token"
        async with connected(fake):
            await until(lambda: fake.attempts >= 1, "a stream request")
            await asyncio.sleep(2.0)
        assert fake.attempts == 1  # the next attempt waits at least 4 s (5 s, jitter 20 %)

    asyncio.run(test())
    refused = [record for record in caplog.records if "event=agent_refused" in record.getMessage()]
    assert len(refused) == 1 and "token refused (revoked?)" in refused[0].getMessage()
    assert TOKEN not in caplog.text


def test_results_refused_with_5xx_are_kept_and_retried_none_lost(backend: Backend) -> None:
    async def test() -> None:
        fake = FakeServer(up(backend))
        fake.replies = [(503, {}), (503, {})]
        async with connected(fake):
            await until(lambda: len(fake.results()) >= 5, "results after two 503s", DEADLINE)
        # The refused ones came again, first: every seq from 1, none lost, none twice.
        assert seqs(fake) == list(range(1, len(seqs(fake)) + 1))

    asyncio.run(test())


def test_a_batch_refused_as_bad_input_is_not_sent_again(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=agent_module.__name__)

    async def test() -> None:
        fake = FakeServer(up(backend))
        fake.replies = [(403, {})]
        async with connected(fake) as agent:
            await until(lambda: len(fake.results()) >= 2, "results after the 403", DEADLINE)
        assert seqs(fake)[0] > 1 and agent.sessions == 1  # the refused seqs never came again

    asyncio.run(test())
    assert "event=agent_results_refused status=403 detail='scripted 403'" in caplog.text


def test_a_429_waits_for_retry_after(backend: Backend) -> None:
    async def test() -> None:
        fake = FakeServer(up(backend))
        fake.replies = [(429, {"Retry-After": "1"})]
        async with connected(fake):
            await until(lambda: len(fake.results()) >= 1, "results after the 429", DEADLINE)
        (refused_at, status), (next_at, _) = fake.posts[:2]
        assert status == 429 and next_at - refused_at >= 0.95
        assert seqs(fake)[0] == 1

    asyncio.run(test())


def test_the_canary_goes_with_the_results(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_module, "CANARY_INTERVAL", 0.3)

    async def test() -> None:
        # No checks at all: the canary is posted on its own.
        fake = FakeServer(canary=f"{backend.host}:{backend.port}")
        async with connected(fake):
            await until(lambda: len(fake.batches) >= 2, "canary results")
        assert {batch.canary for batch in fake.batches} == {
            protocol.CanaryResult(ok=True, reason="connected")
        }
        assert fake.results() == []

    asyncio.run(test())


def test_a_full_queue_drops_the_oldest_and_a_batch_put_back_goes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_module, "MAX_QUEUED", 3)
    monkeypatch.setattr(agent_module, "MAX_BATCH", 2)

    async def test() -> None:
        session = Session("s")
        for _ in range(5):
            session.add("c", Result(ok=False, reason="x" * 500, at=0.0))
        assert [item.seq for item in session.queue] == [3, 4, 5] and session.dropped == 2
        assert all(len(item.reason) == protocol.MAX_REASON for item in session.queue)
        batch = session.take()
        assert [item.seq for item in batch.results] == [3, 4]
        session.add("c", Result(ok=True, reason="ok", at=0.0))
        session.put_back(batch)
        assert [item.seq for item in session.queue] == [4, 5, 6]  # 3 was the oldest: dropped

    asyncio.run(test())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("", "is empty"),
        ("  \n", "is empty"),
        ("Agent fra-1 added.\ntoken\n", "more than one word"),
        (f"{TOKEN}\n", None),
    ],
)
def test_the_token_file(tmp_path: Path, content: str | None, expected: str | None) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    if expected is None:
        assert read_token(path) == TOKEN
    else:
        with pytest.raises(ValueError, match=expected):
            read_token(path)


async def _agent_process(url: str, token_file: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dynserver",
        "agent",
        "run",
        "--server",
        url,
        "--token-file",
        str(token_file),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def test_dynserver_agent_run_as_a_process(backend: Backend, tmp_path: Path) -> None:
    """The real command: connects, posts results, stops on SIGTERM with 0; no token in its log."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")

    async def test() -> tuple[int, str]:
        fake = FakeServer(up(backend))
        host = loopback()
        async with serving(fake, host, free_port(host)) as url:
            process = await _agent_process(url, token_file)
            try:
                await until(
                    lambda: len(fake.results()) >= 2 or process.returncode is not None, "results", DEADLINE
                )
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
        assert len(fake.results()) >= 2 and in_order(seqs(fake)), stderr.decode()
        assert process.returncode is not None
        return process.returncode, stderr.decode()

    returncode, log = asyncio.run(test())
    assert returncode == 0, log
    assert "event=agent_connected" in log and "event=agent_stopped" in log
    assert TOKEN not in log


@pytest.mark.parametrize(
    ("server", "token", "expected"),
    [
        ("http://127.0.0.1:9", False, "token file {token}: no such file"),
        (
            "dns.example.test:8080",
            True,
            "--server 'dns.example.test:8080': expected the server's web address",
        ),
    ],
)
def test_dynserver_agent_run_that_cannot_start_exits_1_and_says_why(
    tmp_path: Path, server: str, token: bool, expected: str
) -> None:
    token_file = tmp_path / "token"
    if token:
        token_file.write_text(TOKEN)

    async def test() -> tuple[int | None, str]:
        process = await _agent_process(server, token_file)
        _, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
        return process.returncode, stderr.decode()

    returncode, message = asyncio.run(test())
    assert returncode == 1
    assert expected.format(token=token_file) in message, message


def test_the_unit_in_the_docs_is_contrib_s() -> None:
    """docs/locations.md shows the unit contrib/ ships: the two cannot drift apart."""
    page = (ROOT / "docs" / "locations.md").read_text()
    shown = page.split("```ini\n", 1)[1].split("```", 1)[0]
    shipped = (ROOT / "contrib" / "dynserver-agent.service").read_text()
    assert shipped.endswith(shown) and shipped[: -len(shown)].startswith("# ")
