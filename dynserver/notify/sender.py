"""Deliver alerts about state changes: apprise URLs (email, Slack, Telegram, ntfy, ...)
and plain JSON webhooks (``on_failure`` / ``on_recovery``, the Runlater pattern).

Alerts are queued; workers deliver them with retries and backoff. A slow or dead
receiver delays only its own deliveries, never checks or DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import httpx

from dynserver import __version__
from dynserver.backoff import Backoff
from dynserver.model import NotifyConfig

log = logging.getLogger(__name__)

ATTEMPTS = 5
RETRY = Backoff(first=1.0)  # 1, 2, 4, 8 s between the ATTEMPTS deliveries of an alert
DELIVERY_TIMEOUT = 10.0
QUEUE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Alert:
    """The JSON body a webhook receives."""

    event: str  # failure | recovery | pending | certificate
    record: str
    type: str
    target: str
    value: str | None
    previous: str
    current: str
    reason: str
    time: str  # ISO 8601, UTC

    @classmethod
    def now(cls, **fields: str | None) -> Alert:
        stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(time=stamp, **fields)  # type: ignore[arg-type]

    def title(self) -> str:
        if self.event == "certificate":
            return f"[dynserver] the certificate of {self.target} of {self.record} expires soon"
        word = {"failure": "DOWN", "recovery": "UP", "pending": "recovering"}.get(self.event, self.event)
        return f"[dynserver] {self.target} of {self.record} is {word}"

    def body(self) -> str:
        if self.event == "certificate":
            return (
                f"{self.record} {self.type}: target {self.target} ({self.value}): "
                f"{self.reason}, at {self.time}"
            )
        return (
            f"{self.record} {self.type}: target {self.target} ({self.value}) went "
            f"{self.previous} -> {self.current}: {self.reason} at {self.time}"
        )


Destination = tuple[str, str]  # (kind: apprise|webhook, url)
Report = Callable[[str, Alert, bool, str], None]  # (url, alert, delivered, detail)


class Notifier:
    def __init__(self, config: NotifyConfig, report: Report | None = None, *, retry: Backoff = RETRY) -> None:
        self.config = config
        self._report = report or (lambda url, alert, ok, detail: None)
        self._retry = retry
        # One queue and one worker per destination: alerts reach each receiver in the
        # order they happened (DOWN before UP), and a slow one delays only itself.
        self._queues: dict[Destination, asyncio.Queue[Alert]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._apprise_ready: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self.config.apprise or self.config.on_failure or self.config.on_recovery)

    def notify(self, alert: Alert) -> None:
        hooks = {"failure": self.config.on_failure, "recovery": self.config.on_recovery}.get(alert.event, ())
        destinations = [("apprise", url) for url in self.config.apprise]
        destinations += [("webhook", url) for url in hooks]
        for destination in destinations:
            queue = self._queues.get(destination)
            if queue is None:
                queue = self._queues[destination] = asyncio.Queue(QUEUE_LIMIT)
                self._tasks.append(asyncio.create_task(self._work(destination, queue), name="notify"))
            try:
                queue.put_nowait(alert)
            except asyncio.QueueFull:
                log.warning("event=notify_dropped reason=queue_full target=%s", alert.target)

    async def start(self) -> None:
        # Building the client loads the CA bundle (a quarter of a second of CPU) and
        # apprise loads its plugins on first use (most of a second): both in threads,
        # so neither stalls DNS and checks on the event loop. A check timed out by such
        # a stall is a false failure, alerted on in turn.
        self._client = await asyncio.to_thread(
            httpx.AsyncClient,
            timeout=DELIVERY_TIMEOUT,
            trust_env=False,
            headers={"User-Agent": f"dynserver/{__version__}"},
        )
        if self.config.apprise:
            self._apprise_ready = asyncio.create_task(
                asyncio.to_thread(_load_apprise, self.config.apprise), name="load apprise"
            )

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._apprise_ready] if self._apprise_ready else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def drain(self) -> None:
        """Wait until every queued alert is delivered or given up (tests, shutdown)."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def _work(self, destination: Destination, queue: asyncio.Queue[Alert]) -> None:
        kind, url = destination
        while True:
            alert = await queue.get()
            try:
                await self._deliver(kind, url, alert)
            finally:
                queue.task_done()

    async def _deliver(self, kind: str, url: str, alert: Alert) -> None:
        detail = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with asyncio.timeout(DELIVERY_TIMEOUT):
                    if kind == "webhook":
                        await self._webhook(url, alert)
                    else:
                        await self._apprise(url, alert)
                self.delivered += 1
                self._report(_redact(url), alert, True, f"attempt {attempt}")
                return
            except Exception as error:  # every failure is retried, then reported
                detail = f"{type(error).__name__}: {error}"
            if attempt < ATTEMPTS:
                await asyncio.sleep(self._retry.delay(attempt))
        self.failed += 1
        self._report(_redact(url), alert, False, detail)

    async def _webhook(self, url: str, alert: Alert) -> None:
        assert self._client is not None
        response = await self._client.post(url, json=asdict(alert))
        if response.status_code >= 300:
            raise RuntimeError(f"status {response.status_code}")

    async def _apprise(self, url: str, alert: Alert) -> None:
        if self._apprise_ready is not None:
            await asyncio.shield(self._apprise_ready)  # plugins load once, before any send
        await asyncio.to_thread(_send_apprise, url, alert.title(), alert.body())


def _load_apprise(urls: tuple[str, ...]) -> None:
    """Import apprise and load its plugins (runs in a thread, at start-up), and say
    early which URLs it does not understand rather than at the first outage."""
    import apprise  # imported here: it is large and only needed when configured

    for url in urls:
        if not apprise.Apprise().add(url):
            log.warning("event=notify_bad_url url=%s reason='apprise does not understand it'", _redact(url))


def _send_apprise(url: str, title: str, body: str) -> None:
    """One apprise delivery, in a worker thread: its plugins make blocking calls."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        raise ValueError("apprise does not understand this URL")
    if not sender.notify(body=body, title=title):
        raise RuntimeError("apprise reported a failed delivery")


def _redact(url: str) -> str:
    """URLs can carry tokens (Slack, Telegram): keep scheme and host only for logs."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/..." if rest else url
