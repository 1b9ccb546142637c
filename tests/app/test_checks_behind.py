"""Back pressure, end to end: a cap of one check in flight against targets that never
answer cannot keep up. dynserver says so in /metrics, on the dashboard and in the event
log, instead of letting checks drift later and later in silence."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from dynserver import config
from dynserver.app import App, with_listeners
from dynserver.health import scheduler as scheduler_module
from dynserver.model import Listener
from dynserver.web.app import create_app
from tests.support import loopback

ZONE = """\
$ORIGIN slow.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1.example.invalid.
"""


def write(folder: Path, address: str, port: int) -> Path:
    targets = ", ".join(f'{{ name = "t{n}", value = "{address}", port = {port + n} }}' for n in range(6))
    (folder / "slow.example.test.zone").write_text(ZONE)
    path = folder / "dynserver.toml"
    path.write_text(
        f"""\
[server]
dns = ["127.0.0.1:0"]
checks_in_flight = 1

[web]
public = true

[monitors.web]
type = "http"
interval = 1
timeout = 0.5

[zones."slow.example.test"]
file = "slow.example.test.zone"

[zones."slow.example.test".records.app]
type = "A"
monitor = "web"
targets = [{targets}]
"""
    )
    return path


def test_a_machine_that_cannot_keep_up_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_module, "BEHIND", 0.5)
    address = loopback()
    # Six backends that accept (the kernel completes the handshake) and never answer:
    # each check holds the one slot for its whole 0.5 s timeout, six are due every second.
    listeners = []
    port = 0
    for _ in range(50):
        sockets = []
        try:
            first = socket.create_server((address, 0))
            sockets.append(first)
            port = first.getsockname()[1]
            sockets += [socket.create_server((address, port + n)) for n in range(1, 6)]
            listeners = sockets
            break
        except OSError:
            for sock in sockets:
                sock.close()
    assert listeners, "no six consecutive free ports"

    async def run() -> tuple[str, str, list[str]]:
        loaded = with_listeners(config.load(write(tmp_path, address, port)), [Listener(loopback(), 0)], None)
        app = App(loaded)
        await app.start()
        try:
            assert app.scheduler.max_in_flight == 1
            for _ in range(100):
                if app.scheduler.behind:
                    break
                await asyncio.sleep(0.1)
            transport = httpx.ASGITransport(app=create_app(app.runtime))  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://dynserver.test") as client:
                metrics = (await client.get("/metrics")).text
                page = (await client.get("/")).text
            # The event reaches the store through the writer a moment after the flag.
            reasons: list[str] = []
            for _ in range(50):
                reasons = [event.reason or "" for event in await app.runtime.events(kind="scheduler")]
                if any(reason.startswith("checks are running late") for reason in reasons):
                    break
                await asyncio.sleep(0.1)
            return metrics, page, reasons
        finally:
            await app.stop()
            for sock in listeners:
                sock.close()

    metrics, page, reasons = asyncio.run(run())
    assert "dynserver_checks_behind 1.0" in metrics
    assert "dynserver_checks_in_flight_limit 1.0" in metrics
    assert 'id="checks-behind"' in page and "Checks are running late." in page
    assert any(
        reason.startswith("checks are running late") and "of at most 1 in flight" in reason
        for reason in reasons
    )
