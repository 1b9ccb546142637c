"""UDP transport: a non-blocking socket drained from a reader callback.

asyncio's DatagramProtocol receives each packet into a fresh 256 KiB buffer (about
26 us a packet on CPython 3.11); reading the socket ourselves with a small buffer until
it would block costs a fraction of that (measurements: docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable

from dynserver.model import Listener
from dynserver.types import Answerer

log = logging.getLogger(__name__)

# Largest query we read; bigger datagrams are cut and then answered FORMERR.
RECV_SIZE = 4096
# Packets handled per wake-up before yielding to other tasks (TCP, checks, web).
BATCH = 64


class UdpServer:
    def __init__(self, listener: Listener, answer: Answerer) -> None:
        self.listener = listener
        self._answer = answer
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return host, port

    def start(self, sock: socket.socket | None = None) -> None:
        """Bind (unless given a bound socket) and start reading."""
        if sock is None:
            family = socket.AF_INET6 if ":" in self.listener.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.listener.host, self.listener.port))
        sock.setblocking(False)
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        sock = self._sock
        assert sock is not None
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        answer = self._answer
        for _ in range(BATCH):
            try:
                data, address = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # pragma: no cover - e.g. ICMP errors surfacing
                log.debug("udp recv error: %s", error)
                return
            try:
                reply = answer(data, False, address)
            except Exception:  # pragma: no cover - the core must not raise; keep serving
                log.exception("error answering a UDP query")
                continue
            if reply is None:
                continue
            if reply.__class__ is not bytes:  # rare: a reply that must wait (UPDATE)
                self._later(reply, address)  # type: ignore[arg-type]
                continue
            with contextlib.suppress(OSError):  # a full send buffer: UDP may drop
                sendto(reply, address)

    def _later(self, pending: Awaitable[bytes | None], address: tuple[str, int]) -> None:
        async def send() -> None:
            try:
                reply = await pending
            except Exception:  # pragma: no cover - a bug: log it, keep serving
                log.exception("error answering a UDP message")
                return
            if reply is not None and self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.sendto(reply, address)

        task = asyncio.ensure_future(send())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
