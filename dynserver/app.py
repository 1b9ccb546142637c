"""The composition root: builds the runtime, storage, scheduler, notifications, mirrors,
secondaries, the DNS listeners and the web server, and starts and stops them in order.
It does nothing else; the running state is dynserver.runtime. Only the command line
imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Callable

from dynserver.demo import DemoServers
from dynserver.health.probes import close_clients
from dynserver.health.scheduler import Scheduler
from dynserver.locations.canary import CANARY_INTERVAL, canary_check
from dynserver.locations.hub import Hub
from dynserver.mirror.worker import MirrorWorker
from dynserver.model import Config, Listener
from dynserver.notify.sender import Notifier
from dynserver.runtime import Runtime
from dynserver.server.tcp import TcpServer
from dynserver.server.udp import UdpServer
from dynserver.store.db import Store
from dynserver.store.writer import Writer
from dynserver.types import CheckKey
from dynserver.web.app import WebServer, create_app
from dynserver.xfr.notify import SecondaryNotifier
from dynserver.xfr.transfer import Transfers

log = logging.getLogger("dynserver")


class App:
    """A dynserver process's parts, wired: the runtime and everything around it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # Secondaries: transfers (and signed queries) are answered by the runtime through
        # `transfers`, which keeps each zone's IXFR journal; `secondaries` sends NOTIFY.
        self.transfers = Transfers(config.zones, config.keys)
        self.runtime = Runtime(config, self.transfers)
        runtime = self.runtime
        self.scheduler: Scheduler[CheckKey] = Scheduler(
            runtime.on_result, on_lateness=runtime.metrics.check_lateness.observe
        )
        self.notifier = Notifier(config.notify, report=runtime.on_delivery)
        # Mirrors (Cloudflare, RFC 2136 primaries) get each changed answer; queued, never awaited.
        self.mirrors = MirrorWorker.from_config(
            config, event=runtime.add_event, attempt=runtime.on_mirror_attempt
        )
        self.secondaries = SecondaryNotifier(config.zones, config.keys, runtime.zone)
        runtime.attach(
            scheduler=self.scheduler,
            notifier=self.notifier,
            mirrors=self.mirrors,
            secondaries=self.secondaries,
        )
        # [locations] canary: the server's own connectivity, checked as agents check theirs.
        self.canary: Scheduler[str] | None = None
        locations = config.locations
        if locations is not None and locations.local and locations.canary:
            name = locations.name
            self.canary = Scheduler(lambda _key, result: runtime.on_canary(name, result.ok, result.reason))
        self.hub = Hub(runtime)  # the agents' end ([locations]): their streams and results
        self.udp: list[UdpServer] = []
        self.tcp: list[TcpServer] = []
        self._web_server: WebServer | None = None
        self.stopping = asyncio.Event()
        self.store: Store | None = None
        self.writer: Writer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._demo: DemoServers | None = None

    async def start(self) -> None:
        runtime = self.runtime
        database = self.config.database
        if database is not None:
            self.store = await Store.open(database)
            await runtime.restore(self.store)
            self.writer = Writer(self.store)
            self.writer.start()
            runtime.record_to(self.writer)
        await self.hub.start()  # the registered agents, before any check or vote
        for listener in self.config.server.dns:
            udp_sock, tcp_sock = _bind_pair(listener)
            udp = UdpServer(listener, runtime.answer, packets=lambda: runtime.snapshot.packet_cache())
            udp.start(udp_sock)
            tcp = TcpServer(listener, runtime.answer, self.config.server)
            await tcp.start(tcp_sock)
            self.udp.append(udp)
            self.tcp.append(tcp)
            host, port = udp.address
            log.info("event=listening proto=dns address=%s", Listener(host, port))
        if self.udp and self.tcp:
            runtime.dns_listening()
        if self.secondaries.enabled:
            self.secondaries.start(udp.address[0] for udp in self.udp)
        if self.config.demo:
            self._demo = DemoServers(list(self.config.demo))
            await self._demo.start()
            log.info("event=demo_backends count=%d", len(self.config.demo))
        if self.notifier.enabled:
            await self.notifier.start()
        if self.mirrors.enabled:  # the current answers first: the worker adopts or fixes them
            await self.mirrors.start(runtime.current_answers())
        runtime.refresh_checks()  # every target is checked from start-up, queries or not
        if self.canary is not None and self.config.locations and self.config.locations.canary:
            check = canary_check(self.config.locations.canary)
            self.canary.set_checks({"canary": (check, CANARY_INTERVAL)})
        self._tasks.append(asyncio.create_task(runtime.sweep(), name="sweeper"))
        if self.config.server.http is not None:
            await self._start_web(self.config.server.http)

    async def _start_web(self, listener: Listener) -> None:
        server = WebServer(create_app(self.runtime, hub=self.hub), listener)
        await server.start()
        self._web_server = server
        log.info("event=listening proto=http address=%s", Listener(*server.address))

    async def stop(self) -> None:
        await self.secondaries.stop()
        for udp in self.udp:
            udp.close()
        for tcp in self.tcp:
            await tcp.close()
        await self.scheduler.stop()
        if self.canary is not None:
            await self.canary.stop()
        if self._demo is not None:
            await self._demo.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.hub.stop()  # its streams end, so the web server's open requests do
        if self._web_server is not None:
            await self._web_server.stop()
        await self.notifier.stop()
        await self.mirrors.stop()
        await close_clients()
        if self.writer is not None:
            self.runtime.save_at_stop()
            await self.writer.stop()
        if self.store is not None:
            await self.store.close()

    async def serve_forever(self, on_started: Callable[[], None] | None = None) -> None:
        try:
            # Inside the try: a start that fails half-way (a busy port after the database
            # was opened) must still close what it opened, or aiosqlite's thread outlives
            # the event loop and the process hangs or prints tracebacks instead of exiting.
            await self.start()
            if on_started is not None:
                on_started()
            await self.stopping.wait()
        finally:
            await self.stop()


def _bind_pair(listener: Listener) -> tuple[socket.socket, socket.socket]:
    """Bind UDP and TCP on the same port (port 0: the kernel picks one free for both)."""
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    for _ in range(20):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.bind((listener.host, listener.port))
            port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((listener.host, port))
                tcp.listen(128)
            except OSError:
                tcp.close()
                if listener.port:
                    raise
                udp.close()
                continue  # the TCP side of a kernel-chosen port was taken: try another
            return udp, tcp
        except OSError:
            udp.close()
            raise
    raise OSError(f"no port free for both UDP and TCP on {listener.host}")


def with_listeners(config: Config, dns: list[Listener] | None, http: Listener | None) -> Config:
    """The config with listeners overridden from the command line."""
    server = config.server
    if dns:
        server = dataclasses.replace(server, dns=tuple(dns))
    if http is not None:
        server = dataclasses.replace(server, http=http)
    return dataclasses.replace(config, server=server)
