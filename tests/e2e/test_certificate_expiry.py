"""certificate_expiry_days (issue 17) against a real HTTPS server on 127.0.0.x whose
certificate, made by the test, expires in 2 days: the probe reads its expiry, the check
fails for it only with certificate_expiry_fails, and the server says it once as an event
and a notification."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dynserver import config
from dynserver.app import App
from dynserver.health.probes import Check, run_check
from dynserver.health.state import Result
from dynserver.model import Monitor, MonitorType
from dynserver.notify.sender import Alert
from tests.backends import Backend, backends, self_signed
from tests.support import free_port, loopback, require_program

HTTPS = Monitor(name="tls", type=MonitorType.HTTPS, timeout=2.0, allow_insecure=True)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    require_program("openssl", "openssl")
    folder = tmp_path_factory.mktemp("certificate")
    cert = self_signed(folder, "secure.example.test")  # valid for 2 days from now
    with backends(folder) as pool:
        host = loopback()
        yield pool.add("https", "tls", host, free_port(host), tls=cert)


def check(backend: Backend, **options: Any) -> Result:
    monitor = replace(HTTPS, **options)
    return asyncio.run(run_check(Check(monitor, backend.host, backend.port, "/", ())))


def test_the_probe_reads_the_expiry_only_when_asked(backend: Backend) -> None:
    plain = check(backend)
    assert plain.ok and plain.certificate_expires is None
    result = check(backend, certificate_expiry_days=14)
    assert result.ok, result.reason  # a warning, not a failure, unless configured
    assert result.certificate_expires is not None
    assert 1.9 * 86400 < result.certificate_expires - time.time() <= 2 * 86400


def test_it_fails_the_check_only_when_configured(backend: Backend) -> None:
    failing = check(backend, certificate_expiry_days=14, certificate_expiry_fails=True)
    assert not failing.ok
    assert failing.reason.startswith(
        "certificate expires in 1.9 days (under 14)"
    ) or failing.reason.startswith("certificate expires in 2.0 days (under 14)"), failing.reason
    assert check(backend, certificate_expiry_days=1, certificate_expiry_fails=True).ok  # 2 days left


class Recorder:
    enabled = True

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def stop(self) -> None:
        pass


def test_the_server_says_it_once_as_an_event_and_a_notification(tmp_path: Path, backend: Backend) -> None:
    path = tmp_path / "dynserver.toml"
    path.write_text(
        f"""\
[server]
dns = ["{loopback()}:0"]

[monitors.tls]
type = "https"
allow_insecure = true
interval = 0.3
timeout = 0.3
certificate_expiry_days = 14

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]
type = "A"
monitor = "tls"
targets = [{{ name = "secure", value = "{backend.host}", port = {backend.port} }}]
"""
    )

    async def run() -> list[Alert]:
        app = App(config.load(path))
        recorder = Recorder()
        app.runtime.notifier = recorder  # type: ignore[assignment]
        await app.start()
        try:
            for _ in range(100):
                if app.scheduler.runs >= 4:
                    break
                await asyncio.sleep(0.1)
            assert app.scheduler.runs >= 4  # several results, one warning
        finally:
            await app.stop()
        return recorder.alerts

    alerts = asyncio.run(run())
    assert [(a.event, a.target) for a in alerts] == [("certificate", "secure")]
    assert "(under 14): valid until" in alerts[0].reason
    assert "expires soon" in alerts[0].title()
    with sqlite3.connect(tmp_path / "dynserver.db") as db:
        rows = list(db.execute("SELECT target, reason FROM event WHERE kind = 'certificate'"))
        health = list(db.execute("SELECT current FROM event WHERE kind = 'health'"))
    assert len(rows) == 1 and rows[0][0] == "secure", rows
    assert health == [("up",)]  # a warning only: the target is answered
