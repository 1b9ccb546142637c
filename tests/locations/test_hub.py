"""The hub against a fake runtime and a real agents table: who an agent is, its one
stream (hello, checks on change, pings, cut on removal or by a newer stream), and result
batches that are applied whole or not at all (forged, replayed, malformed, too fast)."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from dynserver.health.probes import Check
from dynserver.health.state import Result
from dynserver.locations import hub as hub_module
from dynserver.locations import protocol
from dynserver.locations.hub import AgentRefused, Hub, Session
from dynserver.model import LocationsConfig, Monitor, MonitorType
from dynserver.store.db import EventRow, Store, StoredAgent
from tests.support import until

pytestmark = pytest.mark.timeout(30)


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async test run on its own event loop (as the other tests here do, with asyncio.run)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


WEB = Check(
    monitor=Monitor(name="web", type=MonitorType.TCP, port=80, interval=10.0, timeout=2.0),
    address="127.0.0.9",
    port=80,
    path="/",
    headers=(),
)
API = Check(
    monitor=Monitor(name="api", type=MonitorType.TCP, port=81, interval=5.0, timeout=1.0),
    address="127.0.0.9",
    port=81,
    path="/",
    headers=(),
)
WEB_ID, API_ID = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"


@dataclass
class FakeRuntime:
    """The runtime as the hub sees it: the checks it hands out, and what it was told."""

    store: Store | None
    locations: LocationsConfig | None = field(default_factory=lambda: LocationsConfig(canary="127.0.0.1:9"))
    generation: int = 1
    checks: dict[str, tuple[Check, float]] = field(default_factory=lambda: {WEB_ID: (WEB, 10.0)})
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    results: list[tuple[str, str, Result]] = field(default_factory=list)
    canaries: list[tuple[str, bool, str]] = field(default_factory=list)
    agents: list[list[str]] = field(default_factory=list)
    connected: list[tuple[str, str, str]] = field(default_factory=list)
    disconnected: list[tuple[str, str]] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)

    def hand(self, checks: dict[str, tuple[Check, float]]) -> None:
        self.checks = checks
        self.generation += 1
        self.changed.set()
        self.changed = asyncio.Event()

    def agent_checks(self) -> tuple[int, dict[str, tuple[Check, float]]]:
        return self.generation, self.checks

    async def checks_changed(self, generation: int) -> int:
        while self.generation == generation:
            await self.changed.wait()
        return self.generation

    def locations_config(self) -> LocationsConfig | None:
        return self.locations

    def on_location_results(self, location: str, results: Sequence[tuple[str, Result]]) -> int:
        self.results += [(location, check, result) for check, result in results]
        return sum(check in self.checks for check, _ in results)

    def on_canary(self, location: str, ok: bool, reason: str) -> None:
        self.canaries.append((location, ok, reason))

    def set_agents(self, names: Collection[str]) -> None:
        self.agents.append(list(names))

    def agent_connected(self, name: str, version: str, client: str) -> None:
        self.connected.append((name, version, client))

    def agent_disconnected(self, name: str, reason: str) -> None:
        self.disconnected.append((name, reason))

    def add_event(self, event: EventRow) -> None:
        self.events.append(event)

    def database(self) -> Store | None:
        return self.store


@dataclass
class Setup:
    hub: Hub
    runtime: FakeRuntime
    store: Store
    database: Path
    tokens: dict[str, str]
    now: list[float]

    async def agent(self, name: str = "paris") -> StoredAgent:
        return await self.hub.authenticate(f"Bearer {self.tokens[name]}", "127.0.0.2")


@asynccontextmanager
async def started(tmp_path: Path, *names: str, **options: Any) -> AsyncIterator[Setup]:
    database = tmp_path / "state.db"
    store = await Store.open(database)
    tokens = {}
    for name in names or ("paris",):
        stored, tokens[name] = hub_module.new_agent(name, canary=None, now=1.0)
        await store.add_agent(stored)
    runtime = FakeRuntime(store)
    now = [100.0]
    hub = Hub(runtime, recheck=0.05, clock=lambda: now[0], **options)
    await hub.start()
    try:
        yield Setup(hub, runtime, store, database, tokens, now)
    finally:
        await hub.stop()
        await store.close()


Closed = Callable[[], Awaitable[object]]


class Reader:
    """One stream, read line by line as the web layer would send it."""

    def __init__(
        self, hub: Hub, session: Session, closed: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self.lines = hub.stream(session, closed)
        self.session = session

    async def next(self, timeout: float = 5.0) -> protocol.StreamMessage:
        return protocol.decode_message(await asyncio.wait_for(anext(self.lines), timeout))

    async def ended(self, timeout: float = 5.0) -> None:
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(self.lines), timeout)


async def open_stream(setup: Setup, name: str = "paris") -> tuple[Reader, protocol.Hello]:
    session = setup.hub.open(await setup.agent(name), "dynserver-agent/1.2.3", "127.0.0.2")
    reader = Reader(setup.hub, session)
    hello = await reader.next()
    assert isinstance(hello, protocol.Hello)
    return reader, hello


Canary = tuple[bool, str] | None


def body(
    session: str, *results: tuple[str, int], canary: tuple[bool, str] | None = None, **item: Any
) -> bytes:
    items = [{"check": check, "seq": seq, "ok": False, "reason": "timeout", **item} for check, seq in results]
    batch: dict[str, Any] = {"session": session, "results": items}
    if canary is not None:
        batch["canary"] = {"ok": canary[0], "reason": canary[1]}
    return msgspec.json.encode(batch)


async def refused(status: int, attempt: Awaitable[object]) -> AgentRefused:
    with pytest.raises(AgentRefused) as error:
        await attempt
    assert error.value.status == status, error.value.detail
    return error.value


# -- registration ------------------------------------------------------------------


def test_a_token_finds_its_agent_and_only_a_hash_is_kept() -> None:
    paris, token = hub_module.new_agent("paris", canary=None, now=1.0)
    rome, _ = hub_module.new_agent("rome", canary="127.0.0.1:9", now=1.0)
    assert len(token) == 43 and token.encode() not in paris.digest + paris.salt
    assert hub_module.find_agent([rome, paris], token) == paris
    assert hub_module.find_agent([rome, paris], token + "x") is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("home", "own location name"),
        ("pa ris", "not an agent name"),
        ("-x", "not an agent name"),
        ("", "not"),
    ],
)
def test_agent_names(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hub_module.check_agent_name(name, "home")
    assert hub_module.check_agent_name("paris-vps.1", "home") == "paris-vps.1"


# -- authentication ----------------------------------------------------------------


@in_loop
async def test_a_bad_token_is_refused_with_one_event_a_minute(tmp_path: Path) -> None:
    async with started(tmp_path) as setup:
        assert setup.runtime.agents == [["paris"]]
        for header in (None, "Basic abc", "Bearer "):
            await refused(401, setup.hub.authenticate(header, "127.0.0.3"))
        for _ in range(3):
            await refused(401, setup.hub.authenticate("Bearer nope", "127.0.0.3"))
        assert [(e.kind, e.result, e.detail) for e in setup.runtime.events] == [
            ("agent", "refused", {"location": None, "client": "127.0.0.3", "why": "unauthorized"})
        ]
        assert (await setup.agent()).name == "paris"


@in_loop
async def test_without_locations_the_hub_takes_no_agent(tmp_path: Path) -> None:
    async with started(tmp_path) as setup:
        setup.runtime.locations = None
        error = await refused(404, setup.hub.authenticate(f"Bearer {setup.tokens['paris']}", ""))
        assert "[locations]" in error.detail


# -- the stream --------------------------------------------------------------------


@in_loop
async def test_hello_hands_every_check_then_changes_and_pings(tmp_path: Path) -> None:
    async with started(tmp_path, heartbeat=0.1) as setup:
        reader, hello = await open_stream(setup)
        assert (hello.agent, hello.generation, hello.canary, hello.heartbeat) == (
            "paris",
            1,
            "127.0.0.1:9",
            0.1,
        )
        assert [(c.id, c.interval) for c in hello.checks] == [(WEB_ID, 10.0)]
        assert protocol.decode_check(hello.checks[0].check) == WEB
        assert setup.runtime.connected == [("paris", "1.2.3", "127.0.0.2")]
        assert isinstance(await reader.next(), protocol.Ping)
        setup.runtime.hand({API_ID: (API, 5.0)})
        changed = await reader.next()
        while isinstance(changed, protocol.Ping):
            changed = await reader.next()
        assert isinstance(changed, protocol.Checks)
        assert (changed.generation, [c.id for c in changed.checks]) == (2, [API_ID])
        await reader.lines.aclose()
        assert setup.runtime.disconnected == [("paris", "the stream ended")]


@in_loop
async def test_a_newer_stream_replaces_the_old_one(tmp_path: Path) -> None:
    async with started(tmp_path) as setup:
        old, first = await open_stream(setup)
        new, second = await open_stream(setup)
        assert first.session != second.session
        await old.ended()
        assert old.session.reason == "a newer stream of the agent opened"
        assert setup.runtime.disconnected == []  # the agent is still connected, by its new stream
        await refused(409, setup.hub.results(await setup.agent(), body(first.session, (WEB_ID, 1)), ""))
        assert await setup.hub.results(await setup.agent(), body(second.session, (WEB_ID, 1)), "") == 1
        await new.lines.aclose()


@in_loop
async def test_the_agent_hanging_up_ends_its_session(tmp_path: Path) -> None:
    async with started(tmp_path) as setup:
        hangup = asyncio.Event()
        session = setup.hub.open(await setup.agent(), None, "127.0.0.2")
        reader = Reader(setup.hub, session, hangup.wait)
        assert isinstance(await reader.next(), protocol.Hello)
        assert setup.runtime.connected == [("paris", "unknown", "127.0.0.2")]
        hangup.set()
        await reader.ended()
        assert setup.runtime.disconnected == [("paris", "the agent closed the stream")]


@in_loop
async def test_a_removed_agent_is_cut_within_a_second_and_refused(tmp_path: Path) -> None:
    async with started(tmp_path, "paris", "rome") as setup:
        reader, _ = await open_stream(setup)
        agent = await setup.agent()
        with sqlite3.connect(setup.database) as other:  # `dynserver agent remove`, another process
            other.execute("DELETE FROM agent WHERE name = 'paris'")
        await reader.ended(timeout=1.0)
        assert reader.session.reason == "revoked"
        assert setup.runtime.agents[-1] == ["rome"]
        assert setup.runtime.disconnected == [("paris", "revoked")]
        assert any(e.detail and e.detail["why"] == "revoked" for e in setup.runtime.events)
        await refused(401, setup.hub.authenticate(f"Bearer {setup.tokens['paris']}", ""))
        await refused(409, setup.hub.results(agent, body(reader.session.id, (WEB_ID, 1)), ""))


@in_loop
async def test_stop_ends_every_stream_and_writes_the_last_contact(tmp_path: Path) -> None:
    async with started(tmp_path) as setup:
        reader, _ = await open_stream(setup)
        await setup.hub.stop()
        await reader.ended()
        await until(lambda: setup.runtime.disconnected == [("paris", "the server is stopping")])
        (stored,) = await setup.store.agents()
        assert stored.last_contact is not None and stored.version == "1.2.3"


# -- results -----------------------------------------------------------------------


@dataclass
class Streaming:
    """An agent with an open stream, posting results as (check id, seq) pairs."""

    setup: Setup
    reader: Reader
    hello: protocol.Hello
    agent: StoredAgent

    @property
    def runtime(self) -> FakeRuntime:
        return self.setup.runtime

    async def post(self, *results: tuple[str, int], canary: Canary = None, **item: Any) -> int:
        batch = body(self.hello.session, *results, canary=canary, **item)
        return await self.setup.hub.results(self.agent, batch, "")


@asynccontextmanager
async def streaming(tmp_path: Path) -> AsyncIterator[Streaming]:
    async with started(tmp_path) as setup:
        reader, hello = await open_stream(setup)
        yield Streaming(setup, reader, hello, await setup.agent())
        await reader.lines.aclose()


@in_loop
async def test_results_are_stamped_on_arrival_and_clamped(tmp_path: Path) -> None:
    async with streaming(tmp_path) as agent:
        agent.setup.now[0] = 123.5
        assert await agent.post((WEB_ID, 1), latency=99.0) == 1
        stamped = Result(ok=False, reason="timeout", at=123.5, latency=2.0)
        assert agent.runtime.results == [("paris", WEB_ID, stamped)]
        assert await agent.post((WEB_ID, 2), (WEB_ID, 3), latency=-1, canary=(False, "timeout")) == 2
        assert agent.runtime.results[-1][2].latency == 0.0
        assert agent.runtime.canaries == [("paris", False, "timeout")]


@in_loop
async def test_a_forged_check_is_refused_and_nothing_of_the_batch_applies(tmp_path: Path) -> None:
    async with streaming(tmp_path) as agent:
        error = await refused(403, agent.post((WEB_ID, 1), (API_ID, 2)))
        assert API_ID in error.detail
        assert agent.runtime.results == []
        assert agent.runtime.events[-1].detail == {"location": "paris", "client": "", "why": "forged"}
        assert await agent.post((WEB_ID, 1)) == 1  # seq 1 was not used


@in_loop
async def test_a_replayed_seq_is_refused(tmp_path: Path) -> None:
    async with streaming(tmp_path) as agent:
        assert await agent.post((WEB_ID, 5)) == 1
        for replay in [((WEB_ID, 5),), ((WEB_ID, 6), (WEB_ID, 6))]:
            error = await refused(409, agent.post(*replay))
            assert "replay" in error.detail
        assert len(agent.runtime.results) == 1
        assert [e.detail["why"] for e in agent.runtime.events if e.detail] == ["replayed"]  # once a minute


@pytest.mark.parametrize(
    "payload",
    [b"{", b'{"session": "s"}', b'{"session": "s", "results": [{"check": "a", "seq": "1"}]}', b"[]"],
)
@in_loop
async def test_a_malformed_batch_is_refused(tmp_path: Path, payload: bytes) -> None:
    async with started(tmp_path) as setup:
        error = await refused(400, setup.hub.results(await setup.agent(), payload, ""))
        assert error.detail.startswith("malformed results: ")
        assert setup.runtime.results == []


@in_loop
async def test_a_check_gone_since_it_was_handed_is_dropped_not_refused(tmp_path: Path) -> None:
    async with streaming(tmp_path) as agent:
        agent.runtime.hand({API_ID: (API, 5.0)})
        assert isinstance(await agent.reader.next(), protocol.Checks)
        assert await agent.post((WEB_ID, 1), (API_ID, 2)) == 1
        assert [check for _, check, _ in agent.runtime.results if check == API_ID] == [API_ID]


@in_loop
async def test_too_many_results_are_refused_with_retry_after(tmp_path: Path) -> None:
    async with streaming(tmp_path) as agent:
        # One check every 10 s: 0.2 results a second, a burst of 100.
        assert await agent.post(*[(WEB_ID, seq) for seq in range(1, 101)]) == 100
        error = await refused(429, agent.post((WEB_ID, 101)))
        assert error.retry_after == 5  # 1 result at 0.2 a second
        assert len(agent.runtime.results) == 100
        agent.setup.now[0] += 5
        assert await agent.post((WEB_ID, 101)) == 1


@in_loop
async def test_an_oversized_body_is_refused_with_an_event(tmp_path: Path) -> None:
    async with started(tmp_path) as setup:
        refusal = setup.hub.oversized(await setup.agent(), "127.0.0.2")
        assert refusal.status == 413
        assert setup.runtime.events[-1].detail == {
            "location": "paris",
            "client": "127.0.0.2",
            "why": "oversized",
        }
        assert str(protocol.MAX_BODY) in refusal.detail
