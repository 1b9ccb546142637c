"""Runtime.update_target: on disk before it returns, live in the same step, kept on restart."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import dns.message
import dns.rdatatype

from dynserver import config
from dynserver.app import App
from dynserver.config import parse_name

ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1
ns1 IN A 192.0.2.53
"""
CONFIG = """\
[server]
dns = ["127.0.0.1:0"]

[zones."dyn.example.test"]
file = "zone"

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [
  { name = "charlie", value = "192.0.2.21", priority = 1 },
  { name = "bravo", priority = 2 },
]
"""
APP = parse_name("app.dyn.example.test")


def ask(app: App, name: str) -> tuple[str, list[str]]:
    query = dns.message.make_query(name, dns.rdatatype.A)
    reply = app.runtime.answer(query.to_wire(), False)
    assert reply is not None
    message = dns.message.from_wire(reply)
    return dns.rcode.to_text(message.rcode()), sorted(r.to_text() for rrset in message.answer for r in rrset)


def write(tmp_path: Path) -> Path:
    (tmp_path / "zone").write_text(ZONE)
    path = tmp_path / "dynserver.toml"
    path.write_text(CONFIG)
    return path


def test_update_is_durable_live_and_restored(tmp_path: Path) -> None:
    path = write(tmp_path)

    async def first_run() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            assert ask(app, "bravo.app.dyn.example.test") == ("NXDOMAIN", [])  # no value yet
            serial = app.runtime.serials[parse_name("dyn.example.test")]
            changed, previous = await app.runtime.update_target(
                (APP, "A", "bravo"), "192.0.2.23", actor="test"
            )
            assert (changed, previous) == (True, None)
            # committed before update_target returned: another connection sees it
            with sqlite3.connect(tmp_path / "dynserver.db") as db:
                row = db.execute("SELECT value FROM target_state WHERE target = 'bravo'").fetchone()
                assert row == ("192.0.2.23",)
                kinds = [r[0] for r in db.execute("SELECT kind FROM event WHERE kind = 'update'")]
                assert kinds == ["update"]
            assert ask(app, "bravo.app.dyn.example.test") == ("NOERROR", ["192.0.2.23"])
            assert app.runtime.serials[parse_name("dyn.example.test")] == serial + 1
            # unmonitored targets count as up: the currently answered one changes at once
            changed, _ = await app.runtime.update_target((APP, "A", "charlie"), "192.0.2.31", actor="test")
            assert changed
            assert ask(app, "app.dyn.example.test") == ("NOERROR", ["192.0.2.31"])
            assert await app.runtime.update_target((APP, "A", "charlie"), "192.0.2.31", actor="test") == (
                False,
                "192.0.2.31",
            )
        finally:
            await app.stop()

    async def second_run() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            assert ask(app, "app.dyn.example.test") == ("NOERROR", ["192.0.2.31"])
            assert ask(app, "bravo.app.dyn.example.test") == ("NOERROR", ["192.0.2.23"])
        finally:
            await app.stop()

    asyncio.run(first_run())
    asyncio.run(second_run())


def test_a_changed_config_value_wins_over_an_old_update(tmp_path: Path) -> None:
    path = write(tmp_path)

    async def run(expect: str, update: str | None = None) -> None:
        app = App(config.load(path))
        await app.start()
        try:
            if update:
                await app.runtime.update_target((APP, "A", "charlie"), update, actor="test")
            assert ask(app, "app.dyn.example.test") == ("NOERROR", [expect])
        finally:
            await app.stop()

    asyncio.run(run("192.0.2.99", update="192.0.2.99"))
    path.write_text(CONFIG.replace("192.0.2.21", "192.0.2.22"))
    asyncio.run(run("192.0.2.22"))
