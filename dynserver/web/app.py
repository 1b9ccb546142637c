"""Starlette application: status pages, health endpoints, and the update paths
(dyndns2 at /nic/update, the REST API at /api/v1)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dynserver.locations.hub import Hub
from dynserver.model import Listener
from dynserver.propagation import Checker
from dynserver.runtime import Runtime
from dynserver.update.limits import LimitPolicy
from dynserver.update.service import Updates
from dynserver.update.targets import Targets
from dynserver.web import acme, agents, dyndns2, metrics, pages, views
from dynserver.web.api import api_aware_http_error, create_api
from dynserver.web.auth import Auth
from dynserver.web.editing import Editing
from dynserver.web.headers import SecurityHeaders


def web_dir() -> Path:
    """Where templates/ and static/ are: the wheel's copy, or the source tree's web/."""
    override = os.environ.get("DYNSERVER_WEB_DIR")
    package = Path(__file__).resolve().parent.parent
    for candidate in (override, package / "_web", package.parent / "web"):
        if candidate and (Path(candidate) / "templates").is_dir():
            return Path(candidate)
    raise FileNotFoundError("web assets not found: set DYNSERVER_WEB_DIR to the web/ folder")


def create_app(
    runtime: Runtime,
    *,
    limits: LimitPolicy | None = None,
    checker: Checker | None = None,
    hub: Hub | None = None,
) -> Starlette:
    """The web app of a runtime. ``limits`` overrides the rate limits and lockout of
    [web.limits]; ``checker`` the propagation checks' cache and budget; ``hub`` the
    agents' end (the composition root's; else one of its own, started on first use).

    [web] is read per request (Runtime.web_settings), never kept from here: a reload
    changes the login, the limits, the resolvers and timeouts without a restart."""
    assets = web_dir()
    checker = checker or views.checker(runtime)
    updates = Updates(runtime, limits or runtime.web_settings().limits)
    templates = Jinja2Templates(directory=str(assets / "templates"))
    auth = Auth(runtime.web_settings, limits or runtime.web_settings().limits)
    hub = hub or Hub(runtime)
    editing = Editing(runtime)  # one for the API and the pages: its lock orders their edits

    def follow() -> None:
        """What a reload changed, taken up before a request reads it."""
        records = runtime.dynamic_records()
        known = updates.targets.records.values()
        if len(records) != len(known) or any(a is not b for a, b in zip(records, known, strict=True)):
            updates.targets = Targets.build(records)
        if limits is None:  # a test's override stays; the config's follows a reload
            updates.limiter.policy = auth.limiter.policy = runtime.web_settings().limits

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        """Ready or not, and why (Runtime.ready): a load balancer waits for 200."""
        body = runtime.ready()
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    web = Starlette(
        routes=[
            *pages.routes(runtime, updates, auth, templates, checker, editing),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *metrics.routes(runtime, auth),
            *dyndns2.routes(updates),
            Mount(
                "/api/v1",
                create_api(
                    runtime,
                    updates,
                    checker,
                    more=[*agents.routes(hub), *acme.routes(runtime, updates)],
                    editing=editing,
                ),
            ),
            Mount("/static", StaticFiles(directory=str(assets / "static")), name="static"),
        ],
        exception_handlers={HTTPException: api_aware_http_error},  # type: ignore[dict-item]
        middleware=[Middleware(SecurityHeaders), Middleware(_Following, follow=follow)],
    )
    web.state.propagation = checker  # WebServer.stop cancels its checks still in flight
    web.state.hub = hub  # ... and ends the agents' streams
    return web


class _Following:
    """Calls ``follow`` before each HTTP request: a plain ASGI wrapper, the cheapest."""

    def __init__(self, app: ASGIApp, follow: Callable[[], None]) -> None:
        self.app = app
        self.follow = follow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.follow()
        await self.app(scope, receive, send)


# Seconds a request may take to send its request line and headers (nginx's
# client_header_timeout, Apache's RequestReadTimeout). uvicorn starts no timer on a new
# connection: without this, clients that never finish their headers (slow loris) are
# held until they leave, and enough of them take every file descriptor of the process.
HEADER_TIMEOUT = 10.0


class _HeadersInTime(HttpToolsProtocol):
    """uvicorn's HTTP protocol, closing a connection whose request head is not complete
    within HEADER_TIMEOUT of the connection (or of the request's first byte)."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT, self._head_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request of a kept-alive connection
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT, self._head_late)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # pragma: no cover - older uvicorn
        pass

    def capture_signals(self):  # type: ignore[no-untyped-def]
        # dynserver owns the process's signals (see cli.py); uvicorn must not take them.
        return contextlib.nullcontext()


def _bind(listener: Listener) -> list[socket.socket]:
    """The web listener's sockets, bound as asyncio's create_server binds a host and port
    (every address of "localhost", SO_REUSEADDR, IPv6 sockets IPv6 only), not listening yet."""
    bound: list[socket.socket] = []
    try:
        addresses = socket.getaddrinfo(
            listener.host, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as error:
        for sock in bound:
            sock.close()
        raise OSError(error.errno, f"web listener {listener}: {error.strerror or error}") from None
    return bound


class WebServer:
    """uvicorn in our event loop, bound before start() returns."""

    def __init__(self, asgi: Starlette, listener: Listener) -> None:
        config = uvicorn.Config(
            asgi,
            host=listener.host,
            port=listener.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,  # uvicorn's lines go through dynserver's handler (one format)
            server_header=False,
            http=_HeadersInTime,
        )
        self._server = _Server(config)
        self._listener = listener
        self._task: asyncio.Task[None] | None = None
        self._checker: Checker | None = getattr(asgi.state, "propagation", None)
        self._hub: Hub | None = getattr(asgi.state, "hub", None)

    @property
    def address(self) -> tuple[str, int]:
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return host, port

    async def start(self) -> None:
        """Bind, then serve. A taken address is an OSError naming it: uvicorn binding
        by itself would log the error and raise SystemExit in its task, which ends the
        event loop before the rest of the server could stop (the database's thread then
        kept the process alive, serving nothing)."""
        sockets = _bind(self._listener)
        self._task = asyncio.create_task(self._server.serve(sockets=sockets))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._checker is not None:  # uvicorn waits for open requests: end slow checks first
            await self._checker.close()
        if self._hub is not None:  # an agent's stream is an open request too
            await self._hub.stop()
        if self._task is not None:
            await self._task
