"""The composition root: wires config, the answer snapshot, transports and the web UI.

Everything else receives what it needs as arguments; only this module knows the whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket

from dynserver.dns.snapshot import Snapshot
from dynserver.dns.zone import Zone
from dynserver.model import Config, Listener
from dynserver.server.tcp import TcpServer
from dynserver.server.udp import UdpServer

log = logging.getLogger("dynserver")


def build_snapshot(config: Config) -> Snapshot:
    zones = {zone.name: Zone.build(zone.name, zone.rrsets) for zone in config.zones}
    chaos = {}
    if config.server.chaos_version:
        chaos["version"] = config.server.chaos_version
    if config.server.chaos_hostname:
        chaos["hostname"] = config.server.chaos_hostname
    return Snapshot(zones, chaos=chaos)


class App:
    """A running dynserver: owns the current snapshot and every listener."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.snapshot = build_snapshot(config)
        self.udp: list[UdpServer] = []
        self.tcp: list[TcpServer] = []
        self._web_server: object | None = None
        self.stopping = asyncio.Event()

    def answer(self, data: bytes, tcp: bool) -> bytes | None:
        # Reads the reference once per query: a swap between queries is atomic.
        return self.snapshot.answer(data, tcp)

    def swap(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    async def start(self) -> None:
        for listener in self.config.server.dns:
            udp_sock, tcp_sock = _bind_pair(listener)
            udp = UdpServer(listener, self.answer)
            udp.start(udp_sock)
            tcp = TcpServer(listener, self.answer, self.config.server)
            await tcp.start(tcp_sock)
            self.udp.append(udp)
            self.tcp.append(tcp)
            host, port = udp.address
            log.info("event=listening proto=dns address=%s", Listener(host, port))
        if self.config.server.http is not None:
            await self._start_web(self.config.server.http)

    async def _start_web(self, listener: Listener) -> None:
        from dynserver.web.app import WebServer, create_app

        server = WebServer(create_app(self), listener)
        await server.start()
        self._web_server = server
        log.info("event=listening proto=http address=%s", Listener(*server.address))

    async def stop(self) -> None:
        for udp in self.udp:
            udp.close()
        for tcp in self.tcp:
            await tcp.close()
        if self._web_server is not None:
            await self._web_server.stop()  # type: ignore[attr-defined]

    async def serve_forever(self) -> None:
        await self.start()
        try:
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
