"""TCP transport (RFC 7766): many queries per connection, answered in order.

Limits keep strangers from holding resources: a total and a per-client connection cap,
an idle timeout between messages, and a bound on the time to receive one message. A
zone transfer is answered by a Stream of messages, written one by one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter

from dynserver.model import Listener, ServerConfig
from dynserver.server.guard import Guard
from dynserver.types import Answerer, Stream

log = logging.getLogger(__name__)


class TcpServer:
    def __init__(
        self, listener: Listener, answer: Answerer, config: ServerConfig, guard: Guard | None = None
    ) -> None:
        self.listener = listener
        self._answer = answer
        self._guard = guard  # DNS Cookies only: TCP is never rate limited
        self._idle_timeout = config.tcp_idle_timeout
        self._message_timeout = config.tcp_message_timeout
        self._max_connections = config.tcp_max_connections
        self._max_per_client = config.tcp_max_connections_per_client
        self._per_client: Counter[str] = Counter()
        self._connections = 0
        self._server: asyncio.base_events.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self, sock: socket.socket | None = None) -> None:
        if sock is not None:
            self._server = await asyncio.start_server(self._serve, sock=sock)
        else:
            self._server = await asyncio.start_server(
                self._serve, self.listener.host, self.listener.port, reuse_address=True
            )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = peer[0] if peer else "?"
        full = self._connections >= self._max_connections
        if full or self._per_client[client] >= self._max_per_client:
            writer.close()  # over the limit: refuse by closing at once
            return
        self._connections += 1
        self._per_client[client] += 1
        try:
            await self._session(reader, writer, (client, peer[1] if peer else 0))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._connections -= 1
            self._per_client[client] -= 1
            if not self._per_client[client]:
                del self._per_client[client]
            writer.close()

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tuple[str, int]
    ) -> None:
        while True:
            # Waiting for the next query is "idle"; once its length arrives, the rest of
            # the message must follow within the message timeout.
            prefix = await asyncio.wait_for(reader.readexactly(2), self._idle_timeout)
            length = int.from_bytes(prefix, "big")
            data = await asyncio.wait_for(reader.readexactly(length), self._message_timeout)
            reply = self._answer(data, True, peer)
            if isinstance(reply, Stream):
                await self._send_stream(writer, reply)
                continue
            if reply is not None and not isinstance(reply, bytes):
                reply = await reply  # a message that must wait (UPDATE) holds this connection
            if reply is None:
                return  # a message we drop over UDP ends the connection over TCP
            if self._guard is not None:
                reply = self._guard.reply(data, reply, peer, True) or reply
            writer.write(len(reply).to_bytes(2, "big") + reply)
            await asyncio.wait_for(writer.drain(), self._message_timeout)

    async def _send_stream(self, writer: asyncio.StreamWriter, stream: Stream) -> None:
        """Write each message of a transfer as it is produced; in between, other tasks run
        (a large zone must not keep queries waiting), and a slow reader is bounded by the
        message timeout, as for any reply."""
        try:
            for message in stream.messages:
                writer.write(len(message).to_bytes(2, "big") + message)
                await asyncio.wait_for(writer.drain(), self._message_timeout)
                await asyncio.sleep(0)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as error:  # pragma: no cover - a bug: end this transfer, keep serving
            log.exception("error while sending a zone transfer")
            raise ConnectionError("transfer failed") from error

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
