"""The HTTP(S) probe: an asyncio protocol and httptools, one fresh connection per check.

Why not httpx here: on this class of machine an httpx request costs ~2 ms of CPU (its
transport runs on anyio). A protocol fed straight from the transport, parsing with
httptools (llhttp, the C parser of Node.js, as uvicorn uses), costs ~0.15 ms; asyncio
streams with h11 cost ~0.4 ms. At thousands of targets that is the difference between
checks and DNS sharing a core and checks starving DNS (measurements: docs/benchmarks.md).
httpx stays the client for provider APIs and webhooks, where a request a second is nothing.

The check connects to the target's address and names the site in the Host header and
TLS SNI, as okerr's ``addr=`` and Cloudflare's host header override do.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import errno
import functools
import heapq
import math
import os
import re
import select
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urljoin, urlsplit

import httptools
from cryptography import x509

from dynserver.errors import PeerError

MAX_REDIRECTS = 5
# A response head (status line and headers, 1xx heads included) longer than this fails
# the check: httptools keeps a header being received in memory, and a target that
# streams one endless header must not grow dynserver until the timeout.
MAX_HEAD_BYTES = 64 * 1024


class ProbeFailure(PeerError):
    """The check failed for a reason worth showing as is ("too large ...")."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    url: str
    certificate_expires: float | None = None  # the first hop's certificate (Unix time), if asked


_contexts: dict[bool, ssl.SSLContext] = {}


def tls_context(verify: bool) -> ssl.SSLContext:
    """The shared context (building one loads the CA bundle: call it off the event loop)."""
    context = _contexts.get(verify)
    if context is None:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _contexts[verify] = context
    return context


async def fetch(
    *,
    scheme: str,
    address: str,
    port: int,
    path: str,
    method: str,
    headers: list[tuple[str, str]],
    verify: bool,
    follow_redirects: bool,
    max_bytes: int,
    certificate: bool = False,
) -> Response:
    """One request (plus redirects if asked) to ``address``; raises on network errors.
    ``certificate``: also read when the target's own certificate expires."""
    url, sni, request = first_request(scheme, address, port, path, method, tuple(headers))
    connect_to = (address, port)
    expires = None
    for hop in range(MAX_REDIRECTS + 1):
        status, body, location, hop_expires = await _exchange(
            scheme=scheme,
            connect_to=connect_to,
            sni=sni,
            request=request,
            head_only=method == "HEAD",
            verify=verify,
            max_bytes=max_bytes,
            certificate=certificate and hop == 0,
        )
        expires = expires if hop else hop_expires
        if not (follow_redirects and 300 <= status < 400 and location):
            return Response(status=status, body=body, url=url, certificate_expires=expires)
        previous = urlsplit(url).hostname
        url = urljoin(url, location)
        new = urlsplit(url)
        default = 443 if new.scheme == "https" else 80
        if new.hostname == previous:
            connect_to = (address, new.port or (port if new.scheme == scheme else default))
        else:
            connect_to = (new.hostname or address, new.port or default)
        scheme = new.scheme
        sni, request = _prepare(url, address, method, tuple(headers))
    raise ProbeFailure(f"more than {MAX_REDIRECTS} redirects")


@functools.lru_cache(maxsize=1 << 16)  # one entry per check: the same every run
def first_request(
    scheme: str, address: str, port: int, path: str, method: str, headers: tuple[tuple[str, str], ...]
) -> tuple[str, str, bytes]:
    """The URL, TLS server name and request bytes of a check's first request."""
    host_header = next((v for k, v in headers if k.lower() == "host"), None)
    literal = f"[{address}]" if ":" in address else address  # an IPv6 address in a URL
    site = host_header or literal + ("" if port in (80, 443) else f":{port}")
    url = f"{scheme}://{site}{path}"
    return (url, *_prepare(url, address, method, headers))


def _prepare(url: str, address: str, method: str, headers: tuple[tuple[str, str], ...]) -> tuple[str, bytes]:
    """The TLS server name and the request for ``url``: Host names the URL's site."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    request_headers = [("Host", parts.netloc), *((k, v) for k, v in headers if k.lower() != "host")]
    return parts.hostname or address, _request(method, target, request_headers)


async def _exchange(
    *,
    scheme: str,
    connect_to: tuple[str, int],
    sni: str,
    request: bytes,
    head_only: bool,
    verify: bool,
    max_bytes: int,
    certificate: bool = False,
) -> tuple[int, bytes, str | None, float | None]:
    tls = tls_context(verify) if scheme == "https" else None
    loop = asyncio.get_running_loop()
    reader = _ResponseReader(request, head_only=head_only, max_bytes=max_bytes, done=loop.create_future())
    transport, _ = await loop.create_connection(
        lambda: reader, connect_to[0], connect_to[1], ssl=tls, server_hostname=sni if tls else None
    )
    try:
        expires = _not_after(transport.get_extra_info("ssl_object")) if certificate and tls else None
        status, body, location = await reader.done
        _abort_on_close(transport)
        return status, body, location, expires
    finally:
        transport.close()


_NO_LINGER = struct.pack("ii", 1, 0)


def _abort_on_close(transport: asyncio.BaseTransport) -> None:
    """Once the response is in, close with a reset (SO_LINGER 0), as HAProxy closes its
    health checks: no TIME_WAIT socket is left behind. At 20,000 targets every 10 s the
    TIME_WAITs of 60 s outnumbered the ephemeral ports (32768-60999 here), every
    connect() searched the port space for a free 4-tuple, and checks timed out on our
    own CPU (2,600 µs a check, 42 healthy targets marked down)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)


def _not_after(tls: ssl.SSLObject | None) -> float | None:
    """When the peer's certificate expires (Unix time). Read from the DER form, which
    is there whether or not it was verified (allow_insecure), with cryptography."""
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    if not der:
        return None
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2: methods, field names
_FIELD_VALUE = re.compile(r"[\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?|")  # 5.5, ASCII only
_REQUEST_TARGET = re.compile(r"[\x21-\x7e]+")  # no spaces, no controls


def method_problem(method: str) -> str | None:
    """Why ``method`` cannot be sent as an HTTP method, or None (also for the config)."""
    return None if _TOKEN.fullmatch(method) else "expected an HTTP method, e.g. GET or HEAD"


def path_problem(path: str) -> str | None:
    if _REQUEST_TARGET.fullmatch(path):
        return None
    return "expected a URL path without spaces, line breaks or non-ASCII characters, e.g. /health"


def header_problem(name: str, value: str) -> str | None:
    if not _TOKEN.fullmatch(name):
        return f"{name!r} is not a header name; expected letters, digits and -, e.g. X-Check"
    if not _FIELD_VALUE.fullmatch(value):
        return f"{name}: {value!r} has a line break, a control or non-ASCII character; expected one line"
    return None


def _request(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    """The request's bytes (built once per check: see ``first_request``). What would not be valid
    HTTP/1.1 fails the check with a reason instead of being sent (the config loader
    rejects it first; a redirect's Location may still bring it)."""
    problem = method_problem(method) or path_problem(target)
    problem = problem or next(filter(None, (header_problem(n, v) for n, v in headers)), None)
    if problem is not None:
        raise ProbeFailure(f"bad request: {problem}")
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("ascii")


class _Parsing:
    """One response read with httptools (llhttp, the HTTP parser of Node.js): the parser's
    callbacks and the outcome rules, shared by the asyncio protocol (``_ResponseReader``:
    TLS, redirects) and the raw-socket exchange (``Exchange``: plain HTTP at scale).
    Subclasses say what finishing and failing mean (``_complete``, ``_error``)."""

    __slots__ = (
        "body",
        "finished",
        "framed",
        "head_only",
        "location",
        "max_bytes",
        "parser",
        "received",
        "status",
    )

    def __init__(self, *, head_only: bool, max_bytes: int) -> None:
        self.head_only = head_only  # a HEAD response announces a body it never sends
        self.max_bytes = max_bytes
        # None once finished (Exchange drops it: it and the parser refer to each other)
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.status = 0  # of the final (non-1xx) response, once its head is complete
        self.location: str | None = None
        self.framed = False  # Content-Length or Transfer-Encoding: else the body ends at EOF
        self.body = bytearray()
        self.received = 0  # bytes, while the head is incomplete
        self.finished = False

    def _complete(self) -> None:
        raise NotImplementedError

    def _error(self, error: Exception) -> None:
        raise NotImplementedError

    def _feed(self, data: bytes) -> None:
        parser = self.parser
        if self.finished or parser is None:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # 101 Switching Protocols: the head is the answer
            self._finish()
        except httptools.HttpParserError as error:
            if not self.finished:  # (a callback that finished may stop the parser)
                self._fail(ProbeFailure(f"bad HTTP response: {error}"))
            return
        if not self.status:  # the head is not complete yet
            self.received += len(data)
            if self.received > MAX_HEAD_BYTES:
                self._fail(ProbeFailure(f"too large (response head over {MAX_HEAD_BYTES} bytes)"))

    # -- the parser's callbacks (httptools calls them by name)

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in (b"content-length", b"transfer-encoding"):
            self.framed = True
        elif lowered == b"location":
            self.location = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.finished or self.parser is None:  # a second response after the one read
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # informational: the real one follows
            self.location, self.framed = None, False
            return
        self.status = status
        if self.head_only:
            self._finish()

    def on_body(self, body: bytes) -> None:
        if self.finished:
            return
        self.body += body
        if len(self.body) > self.max_bytes:
            self._fail(ProbeFailure(f"too large (over {self.max_bytes} bytes)"))

    def on_message_complete(self) -> None:
        if self.status:  # not the end of a 1xx
            self._finish()

    # -- outcomes

    def _ended(self, exc: Exception | None) -> None:
        """The server closed (or the connection broke) before the response was complete."""
        if self.finished:
            return
        if self.status and not self.framed and exc is None:
            self._finish()  # a body delimited by the end of the connection (RFC 9112 6.3)
        elif self.status:
            self._fail(ProbeFailure("connection closed by the server mid-body"))
        else:
            self._fail(exc or ConnectionResetError("connection closed before a response"))

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self._complete()

    def _fail(self, error: Exception) -> None:
        if not self.finished:
            self.finished = True
            self._error(error)


class _ResponseReader(_Parsing, asyncio.Protocol):
    """Sends the request and reads one response straight from the transport: no stream
    objects, no parser state machine in Python (the h11 + asyncio streams probe cost
    about twice the CPU per check)."""

    def __init__(
        self,
        request: bytes,
        *,
        head_only: bool,
        max_bytes: int,
        done: asyncio.Future[tuple[int, bytes, str | None]],
    ) -> None:
        super().__init__(head_only=head_only, max_bytes=max_bytes)
        self.request = request
        self.done = done
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _complete(self) -> None:
        if not self.done.done():
            self.done.set_result((self.status, bytes(self.body), self.location))
        if self.transport is not None:
            self.transport.close()

    def _error(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()


# What an Exchange reports: (status, body, location, None) or (0, b"", None, the error).
Done = Callable[["Exchange", int, bytes, "str | None", "Exception | None"], None]

# Timeouts of exchanges are swept in slots of this many seconds: a check that hangs fails
# at its timeout, at most one slot (and the loop's own delay) later, never sooner.
TIMEOUT_TICK = 0.02
_EVENTS_PER_WAKE = 512  # sockets handled per readable callback of the poller's epoll


class Poller:
    """The sockets of plain-HTTP checks in one epoll of their own, and their timeouts
    in a wheel of ``TIMEOUT_TICK`` slots, for one event loop.

    Why not the loop's add_reader and call_later per check: uvloop's add_reader builds a
    poll handle (libuv checks the descriptor with an epoll_ctl ADD and DEL, adds it for
    real at the next poll, deletes it on remove_reader: four epoll_ctl calls a check) and
    call_later a timer handle started and cancelled in libuv's timer heap. Here a check's
    socket costs one epoll_ctl (close() takes it out of the epoll set: the descriptor is
    never duplicated), the loop watches one descriptor (the epoll's) for all of them, and
    one loop timer sweeps the slot of timeouts that are due (py-spy and perf at 20,000
    targets: docs/benchmarks.md, issue 19)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._epoll = select.epoll()
        self._fd = self._epoll.fileno()
        self._by_fd: dict[int, Exchange] = {}
        self._slots: dict[int, list[Exchange]] = {}  # slot number -> exchanges ending then
        self._order: list[int] = []  # slot numbers, a heap
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot = -1
        loop.add_reader(self._fd, self._ready)

    @property
    def watched(self) -> int:
        """Sockets registered now."""
        return len(self._by_fd)

    def close(self) -> None:
        """Stop watching (the exchanges still registered are the caller's to cancel)."""
        if self._fd < 0:
            return
        self.loop.remove_reader(self._fd)
        self._epoll.close()
        self._fd = -1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._by_fd.clear()
        self._slots.clear()
        self._order.clear()

    # -- sockets

    def watch(self, exchange: Exchange, events: int) -> None:
        self._epoll.register(exchange.fd, events)
        self._by_fd[exchange.fd] = exchange

    def change(self, exchange: Exchange, events: int) -> None:
        self._epoll.modify(exchange.fd, events)

    def forget(self, fd: int) -> None:
        """Before the socket is closed (closing takes it out of the epoll set)."""
        self._by_fd.pop(fd, None)

    def _ready(self) -> None:
        try:
            events = self._epoll.poll(0, _EVENTS_PER_WAKE)
        except (InterruptedError, ValueError):  # ValueError: closed meanwhile
            return
        by_fd = self._by_fd
        for fd, mask in events:
            # None: ended by an earlier event of this batch; a descriptor closed and
            # reused meanwhile gets a spurious event, which reads EAGAIN and waits on.
            exchange = by_fd.get(fd)
            if exchange is not None:
                exchange._event(mask)

    # -- timeouts

    def expire(self, exchange: Exchange, at: float) -> None:
        """Time ``exchange`` out at ``at`` (the loop's clock) unless it ended before."""
        slot = math.ceil(at / TIMEOUT_TICK)
        bucket = self._slots.get(slot)
        if bucket is None:
            bucket = self._slots[slot] = []
            heapq.heappush(self._order, slot)
            if self._timer is None or slot < self._timer_slot:
                self._arm(slot)
        bucket.append(exchange)

    def _arm(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        self._timer = self.loop.call_at(slot * TIMEOUT_TICK, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self.loop.time()
        order, slots = self._order, self._slots
        while order and order[0] * TIMEOUT_TICK <= now:
            for exchange in slots.pop(heapq.heappop(order)):
                if not exchange.finished:
                    exchange._fail(TimeoutError())
        if order:
            self._arm(order[0])


class Exchange(_Parsing):
    """One plain-HTTP request on a fresh non-blocking socket, driven by a ``Poller``: no
    task, no coroutine, no future, no transport or protocol object, no loop timer or
    reader per check. The checks of thousands of targets are mostly this; on loopback
    the connection is up when connect() returns, so the request goes out at once and one
    readable event brings the response. ``on_done`` is called once (never from ``start``
    itself) unless ``cancel`` came first; the socket is closed with a reset once a
    response is in (see ``_abort_on_close``). The scheduler sets ``key``, ``due``,
    ``started`` and ``plan`` for its own bookkeeping."""

    __slots__ = ("due", "fd", "key", "loop", "on_done", "pending", "plan", "poller", "sock", "started")

    def __init__(self, poller: Poller, on_done: Done, *, head_only: bool, max_bytes: int) -> None:
        super().__init__(head_only=head_only, max_bytes=max_bytes)
        self.poller = poller
        self.loop = poller.loop
        self.on_done = on_done
        self.sock: _socket.socket | None = None
        self.fd = -1
        self.pending = b""
        self.key: object = None
        self.due = 0.0
        self.started = 0.0
        self.plan: object = None

    def start(self, address: str, port: int, request: bytes, timeout: float) -> None:
        self.poller.expire(self, self.loop.time() + timeout)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            # The C socket type: socket.socket's Python __init__ and close() wrappers cost
            # a few microseconds a check (py-spy: 4 % of dynserver at 5,000 targets).
            sock = _socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        except OSError as error:  # out of descriptors, say: a failure of this check
            self.loop.call_soon(self._fail, error)
            return
        self.sock, self.fd = sock, sock.fileno()
        err = sock.connect_ex((address, port))
        if err and err != errno.EINPROGRESS:
            self.loop.call_soon(self._fail, OSError(err, os.strerror(err)))
            return
        self.pending = request
        if self._send():
            self.poller.watch(self, select.EPOLLIN if not self.pending else select.EPOLLOUT)

    def fail(self, error: Exception) -> None:
        """End with this error (reported as any failure)."""
        self._fail(error)

    def cancel(self) -> None:
        """Stop without a report (the check was removed or replaced)."""
        self.finished = True
        self._close(abort=True)

    def _send(self) -> bool:
        """Send what is pending; False if the send failed (the failure is on its way)."""
        assert self.sock is not None
        try:
            sent = self.sock.send(self.pending)
        except BlockingIOError:  # not connected yet: wait until the socket is writable
            sent = 0
        except OSError as error:
            self.loop.call_soon(self._fail, error)
            return False
        self.pending = self.pending[sent:]
        return True

    def _event(self, mask: int) -> None:
        """The poller saw the socket ready (``mask``: the epoll events)."""
        if self.pending:
            self._writable()
        else:
            self._readable()

    def _writable(self) -> None:
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(OSError(err, os.strerror(err)))
            return
        if self._send() and not self.pending:
            self.poller.change(self, select.EPOLLIN)

    def _readable(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as error:
            self._ended(error)
            return
        if data:
            self._feed(data)
        else:
            self._ended(None)

    def _close(self, abort: bool) -> None:
        # The parser holds this exchange (its callbacks) and this exchange the parser:
        # a cycle only the garbage collector would free, 2,000 times a second at 20,000
        # targets. Dropped here (also from inside a parser callback: the running
        # feed_data holds the parser until it returns).
        self.parser = None
        sock, self.sock = self.sock, None
        if sock is not None:
            self.poller.forget(self.fd)
            if abort:
                try:  # noqa: SIM105 (contextlib.suppress: an object per check, 2-5 % in py-spy)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
                except OSError:
                    pass
            sock.close()

    def _complete(self) -> None:
        self._close(abort=True)
        self.on_done(self, self.status, bytes(self.body), self.location, None)

    def _error(self, error: Exception) -> None:
        self._close(abort=False)
        self.on_done(self, 0, b"", None, error)
