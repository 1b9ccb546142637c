"""What the update tests share: a config with targets of each kind, an App run in the
test's own event loop with its web app reached in-process (httpx's ASGI transport, with
the client address a test chooses), a live listener for synchronous clients, the
`dynserver credential` command, and asking the App's DNS core directly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rdatatype
import httpx

from dynserver import config
from dynserver.app import App, with_listeners
from dynserver.model import Listener
from dynserver.store.db import StoredCredential
from dynserver.update import credentials
from dynserver.update.limits import LimitPolicy
from dynserver.web.app import WebServer, create_app
from tests.support import ROOT, loopback

# The nameserver is named outside the zone (no glue here), in .invalid (RFC 6761), so a
# propagation check of this zone asks only the configured resolvers for its address and
# never sends a query off this machine.
ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1.example.invalid.
"""

CONFIG = """\
[server]
dns = ["127.0.0.1:0"]

[monitors.tcp]
type = "tcp"
port = 9
interval = 60
timeout = 0.5

[zones."dyn.example.test"]
file = "dyn.example.test.zone"

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [
  { name = "charlie", value = "192.0.2.21", priority = 1 },
  { name = "bravo", priority = 2 },
]

[zones."dyn.example.test".records.v6]
type = "AAAA"
ttl = 30
targets = [{ name = "delta" }]

[zones."dyn.example.test".records.www]
type = "CNAME"
ttl = 30
targets = [{ name = "echo", value = "charlie.example.net" }]

[zones."dyn.example.test".records.mon]
type = "A"
monitor = "tcp"
ttl = 30
targets = [{ name = "foxtrot", value = "127.0.0.1" }, { name = "golf" }]
"""

APP = "app.dyn.example.test"
BRAVO = f"bravo.{APP}"


def write_config(folder: Path, extra: str = "") -> Path:
    (folder / "dyn.example.test.zone").write_text(ZONE)
    path = folder / "dynserver.toml"
    path.write_text(CONFIG + extra)
    return path


@dataclass
class Running:
    app: App
    asgi: Callable[..., object]

    def client(self, address: str = "198.51.100.7") -> httpx.AsyncClient:
        """An HTTP client whose requests come from ``address``."""
        transport = httpx.ASGITransport(app=self.asgi, client=(address, 40000))  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url="http://dynserver.test")

    async def credential(self, name: str, *, admin: bool = False, targets: tuple[str, ...] = ()) -> str:
        """A new credential, stored as `dynserver credential add` stores it; its secret."""
        stored, secret = credentials.create(name, admin=admin, targets=targets, now=time.time())
        assert self.app.store is not None
        assert await self.app.store.add_credential(stored)
        return secret


@asynccontextmanager
async def running(folder: Path, *, limits: LimitPolicy | None = None) -> AsyncIterator[Running]:
    """The App from the test config, started in this event loop, with its web app."""
    loaded = with_listeners(config.load(write_config(folder)), [Listener(loopback(), 0)], None)
    app = App(loaded)
    await app.start()
    try:
        yield Running(app, create_app(app.runtime, limits=limits))
    finally:
        await app.stop()


@dataclass
class LiveServer:
    app: App
    url: str
    loop: asyncio.AbstractEventLoop

    def add(self, stored: StoredCredential) -> None:
        assert self.app.store is not None
        assert asyncio.run_coroutine_threadsafe(self.app.store.add_credential(stored), self.loop).result(10)


@contextmanager
def live_server(folder: Path, *, limits: LimitPolicy | None = None, extra: str = "") -> Iterator[LiveServer]:
    """The App and its web listener on a fresh 127.0.0.x, in an event loop of their own
    (a thread), for synchronous clients such as schemathesis; limits and config lines
    appended to the test config (``extra``) can be set."""
    host = loopback()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dynserver", daemon=True)
    thread.start()

    async def start() -> tuple[App, WebServer]:
        loaded = with_listeners(config.load(write_config(folder, extra)), [Listener(host, 0)], None)
        app = App(loaded)
        await app.start()
        server = WebServer(create_app(app.runtime, limits=limits), Listener(host, 0))
        await server.start()
        return app, server

    async def stop(app: App, server: WebServer) -> None:
        await server.stop()
        await app.stop()

    app, server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield LiveServer(app, f"http://{host}:{server.address[1]}", loop)
    finally:
        asyncio.run_coroutine_threadsafe(stop(app, server), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def ask(app: App, name: str, rtype: str = "A") -> list[str]:
    query = dns.message.make_query(name, getattr(dns.rdatatype, rtype))
    reply = app.runtime.answer(query.to_wire(), False)
    assert isinstance(reply, bytes)
    return sorted(r.to_text() for rrset in dns.message.from_wire(reply).answer for r in rrset)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynserver", "credential", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def add(config_path: Path, name: str, *scope: str) -> str:
    result = cli("add", "--config", str(config_path), "--name", name, *scope)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]
