"""The agent, `dynserver agent run`: it learns from the server's stream what to check, runs
those checks with the server's own scheduler and probes, and posts the results back.
It has no config of its own; the protocol is in protocol.py, the how-to in docs/locations.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import msgspec

from dynserver import __version__, logs
from dynserver.backoff import Backoff
from dynserver.errors import PeerError
from dynserver.health.probes import Check, close_clients
from dynserver.health.scheduler import Scheduler
from dynserver.health.state import Result
from dynserver.locations import protocol
from dynserver.locations.canary import CANARY_INTERVAL, canary_check

log = logging.getLogger(__name__)

USER_AGENT = f"{protocol.AGENT_PRODUCT}/{__version__}"
# Results kept while the server cannot take them (5xx, network): the oldest go first, so a
# long outage costs a bounded memory and what is sent when it ends is the newest news.
MAX_QUEUED = 10_000
# Results per POST: a worst-case result (a 200-character reason, all multi-byte) is under
# 1 KiB, so a batch stays far below the server's 1 MiB limit (413).
MAX_BATCH = 500
REQUEST_TIMEOUT = 10.0  # connecting, and a whole results POST
# Reconnecting after the server restarts or the network drops: soon at first, then spread
# out (jitter: a server restart does not see all its agents come back in one instant).
RECONNECT = Backoff(first=0.5, cap=30.0, jitter=0.5)
# A refused token will not become good by asking often: slowly, up to a minute.
REFUSED = Backoff(first=5.0, cap=60.0, jitter=0.2)
# Results POSTs that failed (5xx, network): retried with the queue kept.
RETRY = Backoff(first=0.5, cap=30.0, jitter=0.5)
# A session that lasted this long ends an outage (the backoff starts over); a shorter one
# continues it, so a server that accepts and cuts at once is not asked twice a second.
STABLE = 10.0
# Failed connection attempts logged one by one before the log goes quiet until a change.
LOGGED_ATTEMPTS = 3
TOKEN_HELP = "write the token that `dynserver agent add` printed (its last line) into it"


class Ended(PeerError):
    """Why a stream session ended; the text is the reason the log gives."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Refused(Ended):
    """401: the server refused the token (revoked, or not the token of any agent)."""


class Session:
    """One stream's results: numbered in order, queued until a POST takes them."""

    def __init__(self, id: str) -> None:
        self.id = id
        self.queue: deque[protocol.ResultItem] = deque()
        self.canary: protocol.CanaryResult | None = None  # the newest, sent with the next POST
        self.ready = asyncio.Event()  # something to send
        self.dropped = 0  # results trimmed from a full queue
        self._seq = 0

    def add(self, check: str, result: Result) -> None:
        self._seq += 1
        reason = protocol.clip_reason(result.reason)
        item = protocol.ResultItem(
            check=check, seq=self._seq, ok=result.ok, reason=reason, latency=result.latency
        )
        self.queue.append(item)
        self._trim()
        self.ready.set()

    def set_canary(self, result: Result) -> None:
        self.canary = protocol.CanaryResult(ok=result.ok, reason=protocol.clip_reason(result.reason))
        self.ready.set()

    def take(self) -> protocol.ResultsBatch:
        results = [self.queue.popleft() for _ in range(min(MAX_BATCH, len(self.queue)))]
        canary, self.canary = self.canary, None
        return protocol.ResultsBatch(session=self.id, results=results, canary=canary)

    def put_back(self, batch: protocol.ResultsBatch) -> None:
        """A batch the server could not take goes first again (its seqs are the lowest)."""
        self.queue.extendleft(reversed(batch.results))
        if self.canary is None:
            self.canary = batch.canary
        self._trim()

    def keep(self, checks: set[str]) -> None:
        """Forget queued results of checks no longer handed to us: the server refuses a
        batch that names one (403), and would refuse the good results with it."""
        self.queue = deque(item for item in self.queue if item.check in checks)

    def _trim(self) -> None:
        while len(self.queue) > MAX_QUEUED:
            self.queue.popleft()
            self.dropped += 1


class Status:
    """What the log says about the connection: one line per change of state (connected,
    disconnected and why, refused) and the first few failed attempts of an outage, never
    a line per retry for hours."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.state = "starting"
        self.attempts = 0

    def connected(self, hello: protocol.Hello) -> None:
        log.info(
            "event=agent_connected server=%r agent=%r server_version=%r checks=%d canary=%r",
            self.server,
            hello.agent,
            hello.version,
            len(hello.checks),
            hello.canary or "",
        )
        self.state = "connected"
        self.attempts = 0

    def ended(self, ended: Ended, retry_in: float, unsent: int) -> None:
        if isinstance(ended, Refused):
            if self.state != "refused":
                log.error(
                    "event=agent_refused server=%r reason=%r retry_in=%.1f", self.server, str(ended), retry_in
                )
            self.state = "refused"
            return
        if self.state == "connected":
            log.warning(
                "event=agent_disconnected server=%r reason=%r unsent=%d retry_in=%.1f",
                self.server,
                str(ended),
                unsent,
                retry_in,
            )
            self.state = "disconnected"
            return
        self.attempts += 1
        if self.attempts <= LOGGED_ATTEMPTS or self.state != "disconnected":
            quiet = " more='not logged until connected'" if self.attempts == LOGGED_ATTEMPTS else ""
            log.warning(
                "event=agent_connect_failed server=%r attempt=%d reason=%r retry_in=%.1f%s",
                self.server,
                self.attempts,
                str(ended),
                retry_in,
                quiet,
            )
        self.state = "disconnected"


class Agent:
    """Connects, runs what the stream hands it, posts results; reconnects for ever."""

    def __init__(self, server: str, token: str, *, rng: random.Random | None = None) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._rng = rng or random.Random()
        self._scheduler: Scheduler[str] = Scheduler(self._on_result, rng=self._rng)
        # The canary on a schedule of its own, as the server runs its own: every
        # CANARY_INTERVAL, its newest result sent with the next results POST.
        self._canary: Scheduler[str] = Scheduler(self._on_canary, rng=self._rng)
        self._session: Session | None = None
        self._status = Status(self.server)
        self._checks: set[str] = set()
        self._connected_at: float | None = None  # monotonic time of this session's hello
        self.sessions = 0  # streams that got their hello
        self.accepted = 0  # results the server accepted

    async def run(self, stopping: asyncio.Event) -> None:
        """Until ``stopping`` is set; then every check and connection is stopped."""
        headers = {"Authorization": f"Bearer {self._token}", "User-Agent": USER_AGENT}
        async with httpx.AsyncClient(headers=headers, timeout=REQUEST_TIMEOUT) as client:
            work = asyncio.create_task(self._connect_forever(client), name="agent")
            stop = asyncio.create_task(stopping.wait(), name="agent stopping")
            try:
                await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (work, stop):
                    task.cancel()
                await asyncio.gather(work, stop, return_exceptions=True)
                await self._scheduler.stop()
                await self._canary.stop()
                await close_clients()
        error = None if work.cancelled() else work.exception()
        if error is not None:  # pragma: no cover - a bug: it must not pass for a stop
            raise error

    async def _connect_forever(self, client: httpx.AsyncClient) -> None:
        failures = 0
        while True:
            self._connected_at = None
            reason = await self._stream(client)
            if self._connected_at is not None and time.monotonic() - self._connected_at >= STABLE:
                failures = 0
            failures += 1
            schedule = REFUSED if isinstance(reason, Refused) else RECONNECT
            wait = schedule.delay(failures, retry_after=reason.retry_after, random=self._rng.random())
            unsent = len(self._session.queue) if self._session is not None else 0
            self._status.ended(reason, wait, unsent)
            self._session = None
            await asyncio.sleep(wait)

    async def _stream(self, client: httpx.AsyncClient) -> Ended:
        """One stream, from its request to its end; returns why it ended."""
        # No read timeout: silence is measured in heartbeats, by _next.
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=None)
        try:
            async with client.stream("GET", self.server + protocol.STREAM_PATH, timeout=timeout) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _refusal(response)
                lines = response.aiter_lines()
                hello = await _next(lines, protocol.HEARTBEAT * protocol.MISSED_HEARTBEATS)
                if not isinstance(hello, protocol.Hello):
                    raise Ended(f"the stream began with {type(hello).__name__}, not hello")
                self._connected_at = time.monotonic()
                await self._serve(client, lines, hello)
        except Ended as ended:
            return ended
        except httpx.RequestError as error:  # the network's, or a garbled HTTP response
            return Ended(_describe(error))
        return Ended("the stream ended")  # pragma: no cover - _serve ends only by raising

    async def _serve(
        self, client: httpx.AsyncClient, lines: AsyncIterator[str], hello: protocol.Hello
    ) -> None:
        session = Session(hello.session)
        self._session = session
        self.sessions += 1
        self._status.connected(hello)
        self._apply(hello.checks)
        canary = _canary_check(hello)
        if canary is not None:
            self._canary.set_checks({"canary": (canary, CANARY_INTERVAL)})
        tasks = [
            asyncio.create_task(self._read(lines, hello.heartbeat), name="agent stream"),
            asyncio.create_task(self._post_forever(client, session), name="agent results"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the Ended (or transport error) that ends the session
            raise Ended("a session task returned")  # pragma: no cover - each runs until it raises
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # No checks without a stream: their results could not be sent, and would be
            # stale by the time a new session carries them. The next hello starts them.
            await self._scheduler.stop()
            await self._canary.stop()
            self._checks = set()

    async def _read(self, lines: AsyncIterator[str], heartbeat: float) -> None:
        while True:
            message = await _next(lines, heartbeat * protocol.MISSED_HEARTBEATS)
            if isinstance(message, protocol.Checks):
                self._apply(message.checks)
                log.info("event=agent_checks generation=%d checks=%d", message.generation, len(self._checks))
            # A ping says the stream is alive: hearing it was the point.

    def _apply(self, specs: list[protocol.CheckSpec]) -> None:
        """Run exactly these checks; the scheduler keeps unchanged ones running."""
        checks: dict[str, tuple[Check, float]] = {}
        for spec in specs:
            try:
                checks[spec.id] = (protocol.decode_check(spec.check), spec.interval)
            except protocol.ProtocolError as error:  # a newer server's option: skip, run the rest
                log.warning("event=agent_check_skipped check=%s reason=%r", spec.id, str(error))
        self._scheduler.set_checks(checks)
        self._checks = set(checks)
        if self._session is not None:
            self._session.keep(self._checks)

    def _on_result(self, check: str, result: Result) -> None:
        if self._session is not None and check in self._checks:
            self._session.add(check, result)

    def _on_canary(self, _: str, result: Result) -> None:
        if self._session is not None:
            self._session.set_canary(result)

    async def _post_forever(self, client: httpx.AsyncClient, session: Session) -> None:
        """POST as soon as there is something to send and no POST is in flight: one result
        goes at once; under load, what queued during a POST goes in the next one."""
        failures = 0
        failing: int | None = None  # the status (0: network) POSTs fail with, while they do
        while True:
            await session.ready.wait()
            session.ready.clear()
            while session.queue or session.canary is not None:
                batch = session.take()
                try:
                    response = await client.post(
                        self.server + protocol.RESULTS_PATH,
                        content=msgspec.json.encode(batch),
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.RequestError as error:
                    status, problem, retry_after = 0, _describe(error), None
                else:
                    status, problem, retry_after = (
                        response.status_code,
                        _detail(response),
                        _retry_after(response),
                    )
                if status == 200:
                    self.accepted += len(batch.results)
                    if failing is not None:
                        log.info("event=agent_results_delivered dropped=%d", session.dropped)
                        failing = None
                    failures = 0
                    continue
                if status == 409:  # the session is over for the server: a new stream, a new session
                    raise Ended(f"results refused: {problem}")
                if status in (400, 403, 413):
                    # Sending it again would be refused again: say so, and go on.
                    log.warning("event=agent_results_refused status=%d detail=%r", status, problem)
                    continue
                session.put_back(batch)
                failures += 1
                if status == 401:
                    problem = f"token refused (revoked?): {problem}"
                    wait = REFUSED.delay(failures, random=self._rng.random())
                elif status == 429:
                    wait = RETRY.delay(failures, retry_after=retry_after or 1.0)
                else:
                    wait = RETRY.delay(failures, retry_after=retry_after, random=self._rng.random())
                if failing != status:  # one line per kind of failure, not per retry
                    log.warning(
                        "event=agent_results_failed reason=%r queued=%d retry_in=%.1f",
                        f"status {status}: {problem}" if status else problem,
                        len(session.queue),
                        wait,
                    )
                failing = status
                await asyncio.sleep(wait)


def _canary_check(hello: protocol.Hello) -> Check | None:
    """The hello's canary as a tcp check; None without one, or with one this agent cannot read."""
    if not hello.canary:
        return None
    try:
        return canary_check(hello.canary)
    except ValueError as error:  # the session goes on without a canary
        log.warning("event=agent_canary_skipped canary=%r reason=%r", hello.canary, str(error))
        return None


async def _next(lines: AsyncIterator[str], silence: float) -> protocol.StreamMessage:
    """The stream's next message; Ended when it ends, is silent too long or is garbled."""
    try:
        async with asyncio.timeout(silence):
            line = ""
            while not line.strip():
                line = await anext(lines)
    except TimeoutError:
        raise Ended(f"nothing heard for {silence:g} s") from None
    except StopAsyncIteration:
        raise Ended("the server ended the stream") from None
    try:
        return protocol.decode_message(line)
    except protocol.ProtocolError as error:
        raise Ended(f"a message the agent cannot read: {error}") from None


def _refusal(response: httpx.Response) -> Ended:
    detail = _detail(response)
    if response.status_code == 401:
        return Refused(f"token refused (revoked?): {detail}")
    if response.status_code == 404:
        detail += " (is --server the dynserver web address, with a [locations] table in its config?)"
    return Ended(f"status {response.status_code}: {detail}", retry_after=_retry_after(response))


def _detail(response: httpx.Response) -> str:
    """The API's error detail ({"error", "detail"}), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])[:200]
    return response.text[:200]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None  # absent, or an HTTP date: our own backoff decides
    return seconds if seconds > 0 else None


def _describe(error: httpx.RequestError) -> str:
    """The system's own words when there are some ("connection refused", "no route to
    host"): httpx says "All connection attempts failed" for all of them."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            text = os.strerror(cause.errno) if cause.errno > 0 else str(cause.strerror)
            return text[:1].lower() + text[1:]
        cause = cause.__cause__ or cause.__context__
    return str(error) or type(error).__name__


def read_token(path: Path) -> str:
    """The token in ``path``, stripped; ValueError says what is wrong with the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"token file {path}: no such file; {TOKEN_HELP}") from None
    except (OSError, UnicodeError) as error:
        raise ValueError(f"token file {path}: {getattr(error, 'strerror', None) or error}") from None
    token = text.strip()
    if not token:
        raise ValueError(f"token file {path} is empty; {TOKEN_HELP}")
    if len(token.split()) != 1:
        raise ValueError(f"token file {path} holds more than one word; {TOKEN_HELP}, and nothing else")
    return token


def main(server: str, token_file: Path, log_level: str) -> int:
    """`dynserver agent run`: runs until SIGINT or SIGTERM (then 0); 1 if it cannot start."""
    logs.configure(log_level)
    # httpcore's debug lines trace every request of a long-lived client: noise, even at debug.
    logging.getLogger("httpcore").setLevel(max(logging.INFO, logging.getLogger().level))
    try:
        token = read_token(token_file)
    except ValueError as error:
        print(f"dynserver agent: {error}", file=sys.stderr)
        return 1
    if not _web_address(server):
        print(
            f"dynserver agent: --server {server!r}: expected the server's web address, "
            "e.g. https://dns.example.com:8080",
            file=sys.stderr,
        )
        return 1
    log.info("event=agent_started server=%r version=%s", server, __version__)
    _run(_until_signal(Agent(server, token)))
    log.info("event=agent_stopped server=%r", server)
    return 0


def _web_address(server: str) -> bool:
    try:
        url = httpx.URL(server)
    except httpx.InvalidURL:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


async def _until_signal(agent: Agent) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await agent.run(stopping)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop when it is installed, as the server runs (DYNSERVER_LOOP=asyncio: not)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if os.environ.get("DYNSERVER_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
