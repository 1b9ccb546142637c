"""Rotation and weights change with a reload (issue 17): the running server's answers
follow the new weights, or the new order, at once; the zone's data is the same, so its
serial is too (secondaries have nothing new to transfer)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import dns.message
import dns.rdatatype

from dynserver import config
from dynserver.app import App
from dynserver.config import parse_name
from tests.app.test_reload import free_port, write

ORIGIN = parse_name("dyn.example.test")
CONFIG = """\
[server]
dns = ["127.0.0.1:PORT"]
database = ""

[zones."dyn.example.test"]
file = "zone"

[zones."dyn.example.test".records.rr]
type = "A"
ttl = 30
ORDER
targets = [
  { name = "a", value = "192.0.2.1"WEIGHT },
  { name = "b", value = "192.0.2.2" },
]
"""


def firsts(app: App, count: int) -> list[str]:
    found = []
    for i in range(count):
        query = dns.message.make_query("rr.dyn.example.test.", dns.rdatatype.A)
        query.id = i
        reply = app.runtime.answer(query.to_wire(), False)
        assert isinstance(reply, bytes)
        (rrset,) = dns.message.from_wire(reply).answer
        assert len(rrset) == 2
        found.append(rrset[0].to_text())
    return found


def text(port: int, order: str = "", weight: str = "") -> str:
    return CONFIG.replace("PORT", str(port)).replace("ORDER", order).replace("WEIGHT", weight)


def test_a_reload_changes_weights_and_order(tmp_path: Path) -> None:
    port = free_port()
    path = write(tmp_path, text(port))

    async def run() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            assert Counter(firsts(app, 10)) == {"192.0.2.1": 5, "192.0.2.2": 5}
            serial = app.runtime.serials[ORIGIN]
            path.write_text(text(port, weight=", weight = 4"))
            outcome = await app.runtime.reload(actor="test", via="command")
            assert outcome.ok, outcome.errors
            assert Counter(firsts(app, 50)) == {"192.0.2.1": 40, "192.0.2.2": 10}
            path.write_text(text(port, order='order = "fixed"', weight=", weight = 4"))
            outcome = await app.runtime.reload(actor="test", via="command")
            assert outcome.ok, outcome.errors
            assert set(firsts(app, 10)) == {"192.0.2.1"}
            assert app.runtime.serials[ORIGIN] == serial
            assert outcome.changes, "the reload says what it changed"
        finally:
            await app.stop()

    asyncio.run(run())
