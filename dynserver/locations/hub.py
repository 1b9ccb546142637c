"""The server's end of the agents: who an agent is (its token), its one stream of checks,
and the results it sends, checked in full before any reaches the runtime.

An agent's input is untrusted: every refusal says why (the web layer answers it as the
API's JSON error) and changes nothing; the agent's clock is never read (the hub stamps
arrival); tokens live only as salted hashes and never appear in a log or an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dynserver import __version__
from dynserver.errors import RequestError
from dynserver.health.probes import Check
from dynserver.health.state import Result
from dynserver.locations import protocol
from dynserver.model import LocationsConfig
from dynserver.store.db import EventRow, Store, StoredAgent
from dynserver.update import credentials

log = logging.getLogger("dynserver.locations")

# How often the agents table is looked at (PRAGMA data_version: one cheap read): a
# removed agent's stream is cut within this, as `agent remove` promises ("at once").
RECHECK = 0.5
# last_contact is a hint for `agent list` and the agents page: written at most this often
# per agent (and when its stream ends), not on every result.
TOUCH_EVERY = 30.0
# The rate limit of results: an agent may send RATE_FACTOR times what its checks produce
# (every check at the shortest interval), with a burst of BURST results.
RATE_FACTOR = 2.0
BURST = 100.0
# At most one event per agent per reason in this many seconds: a broken agent that
# repeats a refused request every second must not flood the event log.
EVENT_EVERY = 60.0
MAX_REMEMBERED = 1000  # (agent or client, reason) pairs kept for that

# An agent's name is its location's: in events, metrics labels, URLs and the dashboard.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


class AgentRefused(RequestError):
    """A request of an agent (or of someone posing as one) that is refused: the HTTP
    status, the text the client is told, and when it may retry (429)."""

    def __init__(self, status: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class HubRuntime(Protocol):
    """What the hub needs of dynserver.runtime.Runtime (a test gives a fake)."""

    def agent_checks(self) -> tuple[int, dict[str, tuple[Check, float]]]: ...
    async def checks_changed(self, generation: int) -> int: ...
    def locations_config(self) -> LocationsConfig | None: ...
    def on_location_results(self, location: str, results: Sequence[tuple[str, Result]]) -> int: ...
    def on_canary(self, location: str, ok: bool, reason: str) -> None: ...
    def set_agents(self, names: Collection[str]) -> None: ...
    def agent_connected(self, name: str, version: str, client: str) -> None: ...
    def agent_disconnected(self, name: str, reason: str) -> None: ...
    def add_event(self, event: EventRow) -> None: ...
    def database(self) -> Store | None: ...


# -- registration (the command line) ---------------------------------------------------


def check_agent_name(name: str, local: str) -> str:
    """An agent's name, or ValueError saying what a name may be."""
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{name!r} is not an agent name; expected 1-32 letters, digits and . _ - "
            "(starting with a letter or digit), e.g. paris-vps"
        )
    if name == local:
        raise ValueError(f"{name!r} is this server's own location name ([locations] name); choose another")
    return name


def new_agent(name: str, *, canary: str | None, now: float) -> tuple[StoredAgent, str]:
    """A new agent and its token: 256 random bits, shown once; only a salted SHA-256 of
    it is stored, as an update credential's secret is (dynserver.update.credentials)."""
    token = secrets.token_urlsafe(credentials.SECRET_BYTES)
    salt = secrets.token_bytes(credentials.SALT_BYTES)
    stored = StoredAgent(name, salt, credentials.digest(salt, token), created=now, canary=canary)
    return stored, token


def find_agent(agents: Iterable[StoredAgent], token: str) -> StoredAgent | None:
    """The agent a token belongs to. Every agent is hashed and compared (no early exit),
    so the time taken does not tell which one matched."""
    found = None
    for agent in agents:
        if hmac.compare_digest(credentials.digest(agent.salt, token), agent.digest) and found is None:
            found = agent
    return found


# -- sessions --------------------------------------------------------------------------


@dataclass(eq=False)
class Session:
    """One open stream of one agent. Results name it; it ends when the stream does, when
    a newer stream of the agent opens, or when the agent is removed."""

    agent: StoredAgent
    version: str
    client: str
    id: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    handed: set[str] = field(default_factory=set)  # check ids sent on this stream
    last_seq: int = -1
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # the hub let it go
    reason: str = ""  # why it ended

    @property
    def name(self) -> str:
        return self.agent.name

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()


@dataclass
class _Bucket:
    """A token bucket of results: ``rate`` a second, up to ``capacity``."""

    tokens: float
    at: float

    def take(
        self, count: float, rate: float, capacity: float, now: float, *, peek: bool = False
    ) -> float | None:
        """Take ``count`` results' worth (a batch larger than the bucket passes when it is
        full); None when taken (``peek``: when it could be), else the seconds to wait."""
        self.tokens = min(capacity, self.tokens + (now - self.at) * rate)
        self.at = now
        cost = min(count, capacity)
        if self.tokens >= cost:
            if not peek:
                self.tokens -= cost
            return None
        return (cost - self.tokens) / rate


class Hub:
    """Sessions, the agents table as last read, rate limits and refusals of every agent."""

    def __init__(
        self,
        runtime: HubRuntime,
        *,
        heartbeat: float = protocol.HEARTBEAT,
        recheck: float = RECHECK,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.heartbeat = heartbeat
        self._recheck = recheck
        # Arrival times are the event loop's: the runtime's results and states use it.
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._wall = wall
        self._agents: dict[str, StoredAgent] = {}
        self._data_version: int | None = None
        self._reading = asyncio.Lock()
        self._sessions: dict[str, Session] = {}  # agent name -> its current session
        self._by_id: dict[str, Session] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._rate: tuple[int, float] = (-1, 1.0)  # (generation, results a second)
        self._contacts: dict[str, tuple[float, str | None]] = {}  # not yet written
        self._touched: dict[str, float] = {}
        self._refused: dict[tuple[str, str], float] = {}  # (who, why) -> last event
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.runtime.locations_config() is not None

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the agents table, tell the runtime who is registered, and watch the table
        (removals cut streams). Without [locations] it does nothing."""
        if self._task is not None or self._closed or not self.enabled:
            return
        await self._refresh(force=True)
        self._task = asyncio.create_task(self._watch(), name="agents hub")

    async def stop(self) -> None:
        """End every stream (the web server waits for open responses) and write the last
        contacts."""
        self._closed = True
        open_sessions = list(self._by_id.values())
        for session in open_sessions:
            session.end("the server is stopping")
        if open_sessions:  # each stream notices at once; its disconnect is then written below
            waiting = [asyncio.ensure_future(s.finished.wait()) for s in open_sessions]
            await asyncio.wait(waiting, timeout=1.0)
            for waiter in waiting:
                waiter.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._touch(force=True)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._recheck)
            try:
                await self._refresh()
                await self._touch()
            except Exception:  # the database may be busy or closing: try again next time
                log.exception("event=agents_read_failed")

    async def _refresh(self, *, force: bool = False) -> None:
        """Re-read the agents table when another process changed the database; end the
        streams of agents removed (or re-added with a new token)."""
        store = self.runtime.database()
        if store is None:
            if force:
                self.runtime.set_agents(())
            return
        async with self._reading:
            version = await store.data_version()
            if not force and version == self._data_version:
                return
            self._data_version = version
            agents = {agent.name: agent for agent in await store.agents()}
            changed = agents.keys() != self._agents.keys()
            self._agents = agents
        for name, session in list(self._sessions.items()):
            now = agents.get(name)
            if now is None or now.digest != session.agent.digest:
                session.end("revoked")
                self._event(name, "revoked", f"agent {name} was removed: its stream is cut", session.client)
        if changed or force:
            self.runtime.set_agents(sorted(agents))

    async def _touch(self, *, force: bool = False) -> None:
        store = self.runtime.database()
        if store is None or not self._contacts:
            return
        now = self._wall()
        due = {
            name: contact
            for name, contact in self._contacts.items()
            if force or now - self._touched.get(name, 0.0) >= TOUCH_EVERY
        }
        if not due:
            return
        for name in due:
            del self._contacts[name]
            self._touched[name] = now
        with contextlib.suppress(Exception):  # a hint only: never fail for it
            await store.touch_agents(due)

    def _contact(self, session: Session) -> None:
        self._contacts[session.name] = (self._wall(), session.version)

    # -- who is asking ------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, client: str) -> StoredAgent:
        """The agent whose token the Authorization header carries; the table is re-read
        first if it changed, so a removed agent is refused at once."""
        if not self.enabled:
            raise AgentRefused(404, "this server has no [locations] table: it takes no agents")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AgentRefused(401, "send Authorization: Bearer <agent token>")
        if self._task is None:
            await self.start()  # a web app built without the composition root (tests)
        await self._refresh()
        agent = find_agent(self._agents.values(), token.strip())
        if agent is None:
            self._event(None, "unauthorized", "a request with a token of no agent", client)
            raise AgentRefused(401, "the token is not that of any agent (`dynserver agent list`)")
        return agent

    # -- the stream ---------------------------------------------------------------------

    def open(self, agent: StoredAgent, user_agent: str | None, client: str) -> Session:
        """A session for a new stream (it replaces the agent's current one once the stream
        starts)."""
        if self._closed:
            raise AgentRefused(503, "the server is stopping")
        return Session(agent=agent, version=protocol.agent_version(user_agent) or "unknown", client=client)

    async def stream(
        self, session: Session, closed: Callable[[], Awaitable[object]] | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The lines of one stream: hello with every check, the checks again whenever they
        change, a ping every heartbeat; it returns when the session ends (``closed``
        returns when the agent hangs up)."""
        self._begin(session)
        tasks: list[asyncio.Future[Any]] = []
        try:
            generation, checks = self.runtime.agent_checks()
            yield protocol.encode_message(
                protocol.Hello(
                    agent=session.name,
                    session=session.id,
                    version=__version__,
                    heartbeat=self.heartbeat,
                    canary=self._canary(session.agent),
                    generation=generation,
                    checks=self._specs(session, checks),
                )
            )
            ended = asyncio.ensure_future(session.ended.wait())
            changed = asyncio.ensure_future(self.runtime.checks_changed(generation))
            tasks += [ended, changed]
            if closed is not None:
                hangup = asyncio.ensure_future(closed())
                hangup.add_done_callback(lambda _: session.end("the agent closed the stream"))
                tasks.append(hangup)
            while True:
                done, _ = await asyncio.wait(
                    {ended, changed}, timeout=self.heartbeat, return_when=asyncio.FIRST_COMPLETED
                )
                if ended in done:
                    return
                if changed in done:
                    generation, checks = self.runtime.agent_checks()
                    changed = asyncio.ensure_future(self.runtime.checks_changed(generation))
                    tasks.append(changed)
                    specs = self._specs(session, checks)
                    yield protocol.encode_message(protocol.Checks(generation=generation, checks=specs))
                else:
                    yield protocol.encode_message(protocol.Ping())
        finally:
            for task in tasks:
                task.cancel()
            session.end(session.reason or "the stream ended")
            self._finish(session)

    def _begin(self, session: Session) -> None:
        old = self._sessions.get(session.name)
        self._sessions[session.name] = session
        self._by_id[session.id] = session
        if old is not None:
            old.end("a newer stream of the agent opened")
        self._contact(session)
        self.runtime.agent_connected(session.name, session.version, session.client)
        log.info("event=agent_stream_opened location=%s client=%s", session.name, session.client)

    def _finish(self, session: Session) -> None:
        self._by_id.pop(session.id, None)
        if self._sessions.get(session.name) is session:
            del self._sessions[session.name]
            self.runtime.agent_disconnected(session.name, session.reason)
        self._contact(session)
        self._touched.pop(session.name, None)  # written at the next watch, within RECHECK
        session.finished.set()
        log.info("event=agent_stream_ended location=%s reason=%r", session.name, session.reason)

    def _specs(self, session: Session, checks: dict[str, tuple[Check, float]]) -> list[protocol.CheckSpec]:
        session.handed.update(checks)
        return [protocol.spec(id_, check, interval) for id_, (check, interval) in checks.items()]

    def _canary(self, agent: StoredAgent) -> str | None:
        if agent.canary is not None:
            return agent.canary
        settings = self.runtime.locations_config()
        return None if settings is None else settings.canary

    # -- results ------------------------------------------------------------------------

    def oversized(self, agent: StoredAgent, client: str) -> AgentRefused:
        """The refusal of a body over protocol.MAX_BODY (the web layer stops reading)."""
        detail = f"the body is larger than {protocol.MAX_BODY} bytes: send fewer results at once"
        self._event(agent.name, "oversized", detail, client)
        return AgentRefused(413, detail)

    async def results(self, agent: StoredAgent, body: bytes, client: str) -> int:
        """Apply one batch of results: all of it, or (refused) none. The number accepted:
        results of checks that were handed out but have since gone are dropped."""
        arrived = self._clock()
        # A peek first: a flood is refused before its body is even decoded.
        bucket = self._bucket(agent.name, arrived)
        wait = bucket.take(1, self._rate_now(), BURST, arrived, peek=True)
        if wait is not None:
            raise self._too_fast(agent.name, client, wait)
        try:
            batch = protocol.decode_results(body)
        except protocol.ProtocolError as error:
            detail = f"malformed results: {error}"
            self._event(agent.name, "malformed", detail, client)
            raise AgentRefused(400, detail) from None
        session = self._by_id.get(batch.session)
        if session is None or session.name != agent.name or session.ended.is_set():
            raise AgentRefused(409, f"no open stream has session {batch.session!r}: open the stream again")
        seq = session.last_seq
        for item in batch.results:
            if item.check not in session.handed:
                detail = f"check {item.check!r} was not handed to agent {agent.name}"
                self._event(agent.name, "forged", detail, client)
                raise AgentRefused(403, detail)
            if item.seq <= seq:
                detail = f"seq {item.seq} is not above {seq}, the last accepted: a replay"
                self._event(agent.name, "replayed", detail, client)
                raise AgentRefused(409, detail)
            seq = item.seq
        wait = bucket.take(max(1, len(batch.results)), self._rate_now(), BURST, arrived)
        if wait is not None:
            raise self._too_fast(agent.name, client, wait)
        # Valid as a whole: from here on nothing refuses.
        session.last_seq = seq
        self._contact(session)
        _, checks = self.runtime.agent_checks()
        results = []
        for item in batch.results:
            current = checks.get(item.check)
            if current is None:
                continue  # handed out earlier on this stream, gone since: not a forgery
            latency = item.latency
            if latency is not None:
                latency = protocol.clamp_latency(latency, current[0].monitor.timeout)
            results.append((item.check, Result(ok=item.ok, reason=item.reason, at=arrived, latency=latency)))
        accepted = self.runtime.on_location_results(agent.name, results) if results else 0
        if batch.canary is not None:
            self.runtime.on_canary(agent.name, batch.canary.ok, batch.canary.reason)
        return accepted

    def _bucket(self, name: str, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(tokens=BURST, at=now)
        return bucket

    def _rate_now(self) -> float:
        """Results a second an agent may send: RATE_FACTOR x every check at the shortest
        interval (recomputed when the checks change)."""
        generation, checks = self.runtime.agent_checks()
        if generation != self._rate[0]:
            shortest = min((interval for _, interval in checks.values()), default=1.0)
            rate = RATE_FACTOR * max(1, len(checks)) / max(shortest, 0.001)
            self._rate = (generation, rate)
        return self._rate[1]

    def _too_fast(self, name: str, client: str, wait: float) -> AgentRefused:
        retry = max(1, math.ceil(wait))
        detail = f"too many results: retry after {retry} s"
        self._event(name, "too_fast", detail, client)
        return AgentRefused(429, detail, retry_after=retry)

    def _event(self, location: str | None, why: str, detail: str, client: str) -> None:
        """Record a refusal, at most once per agent (or, for an unknown token, per client)
        and reason per EVENT_EVERY. The detail names the agent, never its token."""
        now = self._wall()
        who = location if location is not None else f"client {client or '-'}"
        if now - self._refused.get((who, why), -math.inf) < EVENT_EVERY:
            return
        if len(self._refused) > MAX_REMEMBERED:  # many strangers: forget the quiet ones
            self._refused = {k: at for k, at in self._refused.items() if now - at < EVENT_EVERY}
        self._refused[(who, why)] = now
        log.warning(
            "event=agent_refused location=%s client=%s why=%s detail=%r", location or "-", client, why, detail
        )
        self.runtime.add_event(
            EventRow(
                kind="agent",
                result="refused",
                reason=detail,
                actor=location,
                detail={"location": location, "client": client, "why": why},
            )
        )
