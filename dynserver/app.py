"""The composition root: builds the runtime, storage, scheduler, notifications, mirrors,
secondaries, the DNS listeners and the web server, and starts and stops them in order.
It does nothing else; the running state is dynserver.runtime. Only the command line
imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from dynserver.control import ControlServer, control_socket
from dynserver.demo import DemoServers
from dynserver.health.probes import close_clients
from dynserver.health.scheduler import Scheduler
from dynserver.locations.canary import CANARY_INTERVAL, canary_check
from dynserver.locations.hub import Hub
from dynserver.mirror.worker import MirrorWorker
from dynserver.model import Config, Listener
from dynserver.notify.sender import Notifier
from dynserver.privileges import drop_privileges
from dynserver.runtime import Runtime
from dynserver.server.guard import Guard, rrl_event
from dynserver.server.tcp import TcpServer
from dynserver.server.udp import UdpServer
from dynserver.store.db import EventRow, Store
from dynserver.store.writer import Writer
from dynserver.types import CheckKey
from dynserver.web.app import WebServer, create_app
from dynserver.xfr.notify import SecondaryNotifier
from dynserver.xfr.transfer import Transfers

log = logging.getLogger("dynserver")


class App:
    """A dynserver process's parts, wired: the runtime and everything around it."""

    def __init__(self, config: Config, overrides: Overrides | None = None) -> None:
        self.config = config
        self.overrides = overrides or Overrides()
        # Secondaries: transfers (and signed queries) are answered by the runtime through
        # `transfers`, which keeps each zone's IXFR journal; `secondaries` sends NOTIFY.
        self.transfers = Transfers(config.zones, config.keys)
        self.runtime = Runtime(config, self.transfers)
        runtime = self.runtime
        self.scheduler: Scheduler[CheckKey] = Scheduler(
            on_results=runtime.on_results,  # a loop pass's results together: one swap for them
            on_lateness=runtime.metrics.check_lateness.observe,
            max_in_flight=config.server.checks_in_flight,
            on_behind=runtime.on_checks_behind,
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
            reconfigure=self._reconfigure,
            prepare=self.overrides.apply,
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
        # DNS sockets bound at start and not read yet (closed by stop if the start fails).
        self._bound: list[tuple[Listener, tuple[socket.socket, socket.socket]]] = []
        # Cookies and rate limiting, one for every listener: a cookie from one is valid at
        # all, and a client's budget is one whichever address it asks (issue 15).
        self.guard = Guard.from_config(config.server, event=rrl_event(self._add_event))
        if self.guard.limiter is not None:
            runtime.metrics.watch_rrl(self.guard.limiter)
        self._web_server: WebServer | None = None
        self.stopping = asyncio.Event()
        self.store: Store | None = None
        self.writer: Writer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._demo: DemoServers | None = None
        self.control: ControlServer | None = None  # `dynserver reload` asks here
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = threading.get_ident()

    def _add_event(self, event: EventRow) -> None:
        """An event from any thread: the UDP receive threads' rate limiting notes are
        recorded on the event loop, as every other event."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self.runtime.add_event, event)
        else:
            self.runtime.add_event(event)

    async def start(self, settle: Callable[[], None] | None = None) -> None:
        """Start every part, DNS last (issue 15): its sockets are bound only once the rest
        is up, and read right after, so the first answer comes from a server with nothing
        left to start (no step that fails, a busy web port say, or holds the loop, the
        web app, comes after it), and a query waits unanswered in a bound socket only for
        the few steps between bind and read. ``settle`` runs just before the bind (the
        command line settles the garbage collector there)."""
        runtime = self.runtime
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        database = self.config.database
        if database is not None:
            self.store = await Store.open(database)
            await runtime.restore(self.store)
            self.writer = Writer(self.store)
            self.writer.start()
            runtime.record_to(self.writer)
        await self.hub.start()  # the registered agents, before any check or vote
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
        if settle is not None:
            settle()
        for listener in self.config.server.dns:
            self._bound.append((listener, _bind_pair(listener)))
        # Started as root: every listener is bound, so become [server] user now; the
        # control socket is then the user's, and the user can remove it at stop.
        drop_privileges(self.config.server.user, self.config.database)
        await self._start_control()  # a reload is asked of a server that is up
        bound, self._bound = self._bound, []
        await self._listen(bound)
        if self.secondaries.enabled:  # their SOA and IXFR queries are answered at once
            self.secondaries.start(udp.address[0] for udp in self.udp)
        if self.udp and self.tcp:
            runtime.dns_listening()

    async def _listen(self, bound: list[tuple[Listener, tuple[socket.socket, socket.socket]]]) -> None:
        """Serve DNS on bound sockets: TCP first, then UDP, the readers of the UDP sockets
        last and with nothing awaited after them, so no UDP query is answered before this
        returns."""
        runtime = self.runtime
        tcps: list[TcpServer] = []
        try:
            for listener, (_, tcp_sock) in bound:
                tcp = TcpServer(listener, runtime.answer, self.config.server, guard=self.guard)
                await tcp.start(tcp_sock)
                tcps.append(tcp)
        except BaseException:
            for tcp in tcps:  # each closes its own socket
                await tcp.close()
            for index, (_, (udp_sock, tcp_sock)) in enumerate(bound):
                udp_sock.close()
                if index >= len(tcps):
                    tcp_sock.close()
            raise
        for (listener, (udp_sock, _)), tcp in zip(bound, tcps, strict=True):
            udp = UdpServer(
                listener, runtime.answer, packets=lambda: runtime.snapshot.packet_cache(), guard=self.guard
            )
            udp.start(udp_sock)
            runtime.swap_fences.append(udp.fence)
            self.udp.append(udp)
            self.tcp.append(tcp)
            log.info("event=listening proto=dns address=%s", Listener(*udp.address))

    async def _reconfigure(self, new: Config) -> list[str]:
        """A reload, around the runtime: bind added listeners first (a busy address
        fails the reload before anything changed), swap the runtime's state, then replace
        the parts whose settings changed and close the listeners that were removed."""
        old = self.config
        kept = {(listener.host, listener.port) for listener in old.server.dns}
        wanted = {(listener.host, listener.port) for listener in new.server.dns}
        added = [listener for listener in new.server.dns if (listener.host, listener.port) not in kept]
        bound: list[tuple[Listener, tuple[socket.socket, socket.socket]]] = []
        web: WebServer | None = None
        try:
            for listener in added:
                bound.append((listener, _bind_pair(listener)))
            if new.server.http != old.server.http and new.server.http is not None:
                web = WebServer(create_app(self.runtime, hub=self.hub), new.server.http)
                await web.start()
        except OSError:
            for _, pair in bound:
                for sock in pair:
                    sock.close()
            raise
        changes = self.runtime.apply_config(new)
        self.config = new
        await self._listen(bound)
        for index in [
            i for i, udp in enumerate(self.udp) if (udp.listener.host, udp.listener.port) not in wanted
        ]:
            log.info("event=closed proto=dns address=%s", Listener(*self.udp[index].address))
            self.runtime.swap_fences.remove(self.udp[index].fence)
            self.udp[index].close()
            await self.tcp[index].close()
        self.udp = [u for u in self.udp if (u.listener.host, u.listener.port) in wanted]
        self.tcp = [t for t in self.tcp if (t.listener.host, t.listener.port) in wanted]
        if new.server.http != old.server.http:
            previous, self._web_server = self._web_server, web
            if previous is not None:
                # Not awaited here: the reload may have been asked through this server,
                # whose stop waits for that very request to finish.
                self._tasks.append(asyncio.create_task(previous.stop(), name="old web listener"))
            if web is not None:
                log.info("event=listening proto=http address=%s", Listener(*web.address))
        await self._replace_parts(old, new)
        return changes

    async def _replace_parts(self, old: Config, new: Config) -> None:
        """Mirrors, notifications, secondaries and the canary, rebuilt when theirs changed."""
        runtime = self.runtime
        if _mirrored(old) != _mirrored(new):
            await self.mirrors.stop()
            self.mirrors = MirrorWorker.from_config(
                new, event=runtime.add_event, attempt=runtime.on_mirror_attempt
            )
            if self.mirrors.enabled:
                await self.mirrors.start(runtime.current_answers())
        if old.notify != new.notify:
            await self.notifier.stop()
            self.notifier = Notifier(new.notify, report=runtime.on_delivery)
            if self.notifier.enabled:
                await self.notifier.start()
        if _transferred(old) != _transferred(new):
            await self.secondaries.stop()
            self.secondaries = SecondaryNotifier(new.zones, new.keys, runtime.zone)
            if self.secondaries.enabled:
                self.secondaries.start(udp.address[0] for udp in self.udp)
        runtime.attach(
            scheduler=self.scheduler,
            notifier=self.notifier,
            mirrors=self.mirrors,
            secondaries=self.secondaries,
        )
        if old.locations != new.locations:
            if self.canary is not None:
                await self.canary.stop()
                self.canary = None
            locations = new.locations
            if locations is not None and locations.local and locations.canary:
                name = locations.name
                self.canary = Scheduler(
                    lambda _key, result: runtime.on_canary(name, result.ok, result.reason)
                )
                self.canary.set_checks({"canary": (canary_check(locations.canary), CANARY_INTERVAL)})

    async def _start_control(self) -> None:
        """The control socket. Where [server] control is not set and its default place
        cannot hold one (a read-only folder, a path too long), the server runs without
        it, as it did before the option existed; SIGHUP still reloads."""
        config = self.config
        path = control_socket(config.path, config.server.control, config.database)
        if path is None:
            return
        control = ControlServer(path, reload=lambda: self.runtime.reload(actor="cli", via="command"))
        try:
            await control.start()
        except OSError as error:
            if config.server.control is not None or error.errno in (errno.EADDRINUSE, errno.EEXIST):
                raise
            log.warning("event=control_disabled path=%s reason=%r", path, str(error))
            return
        self.control = control

    async def _start_web(self, listener: Listener) -> None:
        server = WebServer(create_app(self.runtime, hub=self.hub), listener)
        await server.start()
        self._web_server = server
        log.info("event=listening proto=http address=%s", Listener(*server.address))

    async def stop(self) -> None:
        if self.control is not None:  # first: no reload is asked of a server stopping
            await self.control.stop()
        await self.secondaries.stop()
        for _, pair in self._bound:
            for sock in pair:
                sock.close()
        self._bound = []
        for udp in self.udp:
            if udp.fence in self.runtime.swap_fences:
                self.runtime.swap_fences.remove(udp.fence)
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

    async def serve_forever(
        self, on_started: Callable[[], None] | None = None, settle: Callable[[], None] | None = None
    ) -> None:
        try:
            # Inside the try: a start that fails half-way (a busy port after the database
            # was opened) must still close what it opened, or aiosqlite's thread outlives
            # the event loop and the process hangs or prints tracebacks instead of exiting.
            await self.start(settle)
            if on_started is not None:
                on_started()
            await self.stopping.wait()
        finally:
            await self.stop()


def _mirrored(config: Config) -> object:
    """What the mirror worker is built from: the mirrors and each record's mirror settings."""
    return config.mirrors, [(r.name, r.type, r.mirror) for z in config.zones for r in z.records]


def _transferred(config: Config) -> object:
    """What NOTIFY is built from: each zone's secondaries and the keys that sign it."""
    return [(z.name, z.transfer) for z in config.zones], config.keys


def _bind_pair(listener: Listener) -> tuple[socket.socket, socket.socket]:
    """Bind UDP and TCP on the same port (port 0: the kernel picks one free for both);
    an OSError names the listener."""
    try:
        return _bind_udp_tcp(listener)
    except OSError as error:
        raise OSError(error.errno, f"DNS listener {listener}: {error.strerror or error}") from None


def _bind_udp_tcp(listener: Listener) -> tuple[socket.socket, socket.socket]:
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


@dataclasses.dataclass(frozen=True, slots=True)
class Overrides:
    """`serve`'s options that override the config (--dns, --http, --database): the server
    keeps them, and a reload applies them again to the config it reads."""

    dns: tuple[Listener, ...] = ()
    http: Listener | None = None
    database: str | None = None  # None: the config's; "": keep nothing

    def apply(self, config: Config) -> Config:
        config = with_listeners(config, list(self.dns) or None, self.http)
        if self.database is not None:
            config = dataclasses.replace(config, database=Path(self.database) if self.database else None)
        return config


def with_listeners(config: Config, dns: list[Listener] | None, http: Listener | None) -> Config:
    """The config with listeners overridden from the command line."""
    server = config.server
    if dns:
        server = dataclasses.replace(server, dns=tuple(dns))
    if http is not None:
        server = dataclasses.replace(server, http=http)
    return dataclasses.replace(config, server=server)
