"""Demo backends: tiny local web servers that simulate outages on a schedule, the way
okerr's demo servers do, so `make run` shows failover by itself within a minute.

Each backend answers every request with "status=OK" (200), or "status=ERR" (503) while
the current second of the cycle is inside its outage window.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable

from dynserver.model import DemoBackend


def failing(backend: DemoBackend, now: float) -> bool:
    """Is this backend in its outage window at wall-clock time ``now``?"""
    if backend.outage is None:
        return False
    second = now % backend.cycle
    start, end = backend.outage
    return start <= second < end


class DemoServers:
    def __init__(self, backends: list[DemoBackend], clock: Callable[[], float] = time.time) -> None:
        self.backends = backends
        self._clock = clock
        self._servers: list[asyncio.base_events.Server] = []

    async def start(self) -> None:
        for backend in self.backends:
            handler = functools.partial(self._serve, backend)
            server = await asyncio.start_server(handler, backend.host, backend.port, reuse_address=True)
            self._servers.append(server)

    async def _serve(
        self, backend: DemoBackend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await reader.readuntil(b"\r\n\r\n")  # the request head; the path does not matter
            bad = failing(backend, self._clock())
            body = b"status=ERR\n" if bad else b"status=OK\n"
            status = b"503 Service Unavailable" if bad else b"200 OK"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        writer.close()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers.clear()
