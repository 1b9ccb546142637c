"""The application feeds its mirrors: the answer at start-up, then every answer change,
and records each push as an event; DNS never waits for the provider."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import dns.message
import dns.rdatatype

from dynserver import config
from dynserver.app import App
from dynserver.config import parse_name
from tests.mirror.fake_cloudflare import FakeCloudflare, serve
from tests.support import until

TOKEN = "app-Test-Token-0123456789abcdefghijklmn"
APP = parse_name("app.dyn.example.test")
CONFIG = """\
[server]
dns = ["127.0.0.1:0"]

[mirrors.cf]
type = "cloudflare"
zone = "example.com"
api_token_file = "cf-token"
api_base = "{base}"

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [{{ name = "a", value = "192.0.2.1" }}, {{ name = "b", value = "192.0.2.2", priority = 2 }}]
mirror = [{{ to = "cf", name = "www.example.com", ttl = 120, comment = "dynserver" }}]
"""


def answer(app: App) -> list[str]:
    reply = app.runtime.answer(
        dns.message.make_query("app.dyn.example.test", dns.rdatatype.A).to_wire(), False
    )
    assert isinstance(reply, bytes)
    return sorted(r.to_text() for rrset in dns.message.from_wire(reply).answer for r in rrset)


def test_the_answer_at_start_and_every_change_reach_the_mirror(tmp_path: Path) -> None:
    fake = FakeCloudflare(token=TOKEN)
    zone = fake.add_zone("example.com")
    fake.add_record(zone, "A", "www.example.com", "203.0.113.7", ttl=300)  # made by hand
    (tmp_path / "cf-token").write_text(TOKEN + "\n")
    path = tmp_path / "dynserver.toml"

    async def main(base: str) -> None:
        path.write_text(CONFIG.format(base=base))
        app = App(config.load(path))
        await app.start()
        try:
            await until(lambda: fake.contents("www.example.com", "A") == ["192.0.2.1"])
            [record] = fake.find("www.example.com", "A")
            assert (record["ttl"], record["comment"]) == (120, "dynserver")  # adopted, not duplicated
            fake.fail(502, times=50)  # the provider is down: DNS does not care
            started = time.monotonic()
            assert app.runtime.set_maintenance((APP, "A", "a"), True, actor="test")
            assert answer(app) == ["192.0.2.2"]
            assert time.monotonic() - started < 0.1
            await until(lambda: app.mirrors.status()[0].state == "retrying")
            fake.heal()  # back up: the retry pushes the new answer
            await until(lambda: fake.contents("www.example.com", "A") == ["192.0.2.2"])
            await until(lambda: app.mirrors.status()[0].in_sync)
            [status] = app.mirrors.status()
            assert (status.mirror, status.name, status.desired, status.provider) == (
                "cf",
                "www.example.com",
                ("192.0.2.2",),
                ("192.0.2.2",),
            )
            assert status.last_reply.startswith("patch: HTTP 200")
        finally:
            await app.stop()

    with serve(fake) as base:
        asyncio.run(main(base))
    with sqlite3.connect(tmp_path / "dynserver.db") as db:
        rows = db.execute(
            "SELECT record, target, result, previous, current FROM event WHERE kind = 'mirror' ORDER BY id"
        ).fetchall()
    assert rows == [
        ("app.dyn.example.test.", "cf", "ok", "203.0.113.7", "192.0.2.1"),
        ("app.dyn.example.test.", "cf", "error", "192.0.2.1", "192.0.2.1"),
        ("app.dyn.example.test.", "cf", "ok", "192.0.2.1", "192.0.2.2"),
    ]
