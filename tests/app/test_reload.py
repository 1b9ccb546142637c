"""Runtime.reload in one process: a new config applied as a difference, or nothing."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from dynserver import config
from dynserver.app import App
from dynserver.config import parse_name
from dynserver.health.state import Health, Result

ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 7 3600 600 86400 60
  IN NS ns1
ns1 IN A 192.0.2.53
www IN A 192.0.2.80
"""
CONFIG = """\
# The example config: comments stay (edits are issue 14's editor's; here, by hand).
[server]
dns = ["DNS"]

[monitors.web]
type = "tcp"
port = 9
interval = 600
timeout = 0.5

[zones."dyn.example.test"]
file = "zone"
transfer = { allow = ["127.0.0.0/8"] }

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
monitor = "web"
targets = [
  { name = "primary", value = "127.0.0.21", priority = 1 },
  { name = "backup", value = "127.0.0.22", priority = 2 },
]
"""
APP = parse_name("app.dyn.example.test")
ORIGIN = parse_name("dyn.example.test")
PRIMARY = (APP, "A", "primary")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def write(tmp_path: Path, text: str, zone: str = ZONE) -> Path:
    (tmp_path / "zone").write_text(zone)
    path = tmp_path / "dynserver.toml"
    path.write_text(text)
    return path


def answer(app: App, name: str = "app.dyn.example.test") -> list[str]:
    query = dns.message.make_query(name, dns.rdatatype.A)
    reply = app.runtime.answer(query.to_wire(), False)
    assert isinstance(reply, bytes)
    return sorted(r.to_text() for rrset in dns.message.from_wire(reply).answer for r in rrset)


def report(app: App, address: str, ok: bool) -> None:
    """A check result, as the scheduler would hand it (the interval is long: none comes)."""
    key = next(k for k in app.runtime._check_targets if k.address == address)
    result = Result(ok=ok, reason="connected" if ok else "timeout", at=asyncio.get_running_loop().time())
    app.runtime.on_result(key, result)


def test_states_values_and_schedules_survive_and_a_new_target_is_checked(tmp_path: Path) -> None:
    port = free_port()
    path = write(tmp_path, CONFIG.replace("DNS", f"127.0.0.1:{port}"))

    async def run() -> None:
        app = App(config.load(path))
        await app.start()
        runtime = app.runtime
        try:
            report(app, "127.0.0.22", True)
            report(app, "127.0.0.21", False)
            assert runtime.target_state(PRIMARY).health is Health.DOWN
            assert answer(app) == ["127.0.0.22"]
            await runtime.update_target((APP, "A", "backup"), "127.0.0.23", actor="test")
            # The update checks the new address at once (nothing listens there: refused);
            # let that result land, so what follows counts only the reload's changes.
            for _ in range(100):
                if runtime.target_state((APP, "A", "backup")).health is Health.DOWN:
                    break
                await asyncio.sleep(0.02)
            report(app, "127.0.0.23", True)
            scheduled = app.scheduler.scheduled()
            serial = runtime.serials[ORIGIN]
            text = path.read_text().replace(
                '  { name = "backup", value = "127.0.0.22", priority = 2 },\n',
                '  { name = "backup", value = "127.0.0.22", priority = 2 },\n'
                '  { name = "third", value = "127.0.0.24", priority = 3 },\n',
            )
            path.write_text(text)
            outcome = await runtime.reload(actor="test", via="command")
            assert outcome.ok, outcome
            assert "record app.dyn.example.test A: target third added" in outcome.changes
            # primary is still down with no new check; backup keeps its updated value.
            assert runtime.target_state(PRIMARY).health is Health.DOWN
            assert runtime.value((APP, "A", "backup")) == "127.0.0.23"
            assert answer(app) == ["127.0.0.23"]
            # The unchanged checks kept their schedule (due times); the new one runs.
            now_scheduled = app.scheduler.scheduled()
            for key, due in scheduled.items():
                assert key in now_scheduled
                if due is not None and now_scheduled[key] is not None:
                    assert now_scheduled[key] == due
            assert any(k.address == "127.0.0.24" for k in now_scheduled)
            # The target's own name is new zone content: a new serial, journaled.
            assert runtime.serials[ORIGIN] == serial + 1
            journal = runtime.transfers.journals[ORIGIN]
            assert journal.last_serial == serial + 1
            # Nothing changed: nothing moves.
            again = await runtime.reload(actor="test", via="sighup")
            assert again.ok and again.changes == ()
            assert runtime.serials[ORIGIN] == serial + 1
            # The target removed: its check stops.
            path.write_text(text.replace('  { name = "third", value = "127.0.0.24", priority = 3 },\n', ""))
            removed = await runtime.reload(actor="test", via="api")
            assert "record app.dyn.example.test A: target third removed" in removed.changes
            await asyncio.sleep(0)
            assert not any(k.address == "127.0.0.24" for k in app.scheduler.scheduled())
        finally:
            await app.stop()
        with sqlite3.connect(tmp_path / "dynserver.db") as db:
            rows = list(db.execute("SELECT result, actor, reason FROM event WHERE kind = 'reload'"))
        assert rows[0][:2] == ("ok", "test") and "target third added" in rows[0][2]

    asyncio.run(run())


def test_a_bad_file_changes_nothing_and_says_where(tmp_path: Path) -> None:
    port = free_port()
    path = write(tmp_path, CONFIG.replace("DNS", f"127.0.0.1:{port}"))

    async def run() -> None:
        app = App(config.load(path))
        await app.start()
        runtime = app.runtime
        try:
            before = (answer(app), runtime.serials[ORIGIN], runtime.snapshot)
            path.write_text(path.read_text().replace("ttl = 30", 'ttl = "thirty"'))
            outcome = await runtime.reload(actor="test", via="command")
            assert not outcome.ok
            assert len(outcome.errors) == 1
            where = 'dynserver.toml:17: zones."dyn.example.test".records.app.ttl: expected'
            assert where in outcome.errors[0]
            assert (answer(app), runtime.serials[ORIGIN], runtime.snapshot) == before
        finally:
            await app.stop()
        with sqlite3.connect(tmp_path / "dynserver.db") as db:
            rows = list(db.execute("SELECT result, reason FROM event WHERE kind = 'reload'"))
        assert rows[0][0] == "fail" and "ttl" in rows[0][1]

    asyncio.run(run())


def test_static_records_and_listeners_change(tmp_path: Path) -> None:
    first, second = free_port(), free_port("127.0.0.2")
    path = write(tmp_path, CONFIG.replace("DNS", f"127.0.0.1:{first}"))

    async def run() -> None:
        app = App(config.load(path))
        await app.start()
        runtime = app.runtime
        try:
            (tmp_path / "zone").write_text(ZONE.replace("192.0.2.80", "192.0.2.81"))
            path.write_text(path.read_text().replace(f'"127.0.0.1:{first}"', f'"127.0.0.2:{second}"'))
            outcome = await runtime.reload(actor="test", via="command")
            assert outcome.ok, outcome
            assert "zone dyn.example.test: static records changed" in outcome.changes
            assert answer(app, "www.dyn.example.test") == ["192.0.2.81"]
            query = dns.message.make_query("www.dyn.example.test", dns.rdatatype.A)
            reply = await asyncio.to_thread(dns.query.udp, query, "127.0.0.2", timeout=2, port=second)
            assert [r.to_text() for rrset in reply.answer for r in rrset] == ["192.0.2.81"]
            assert [u.listener.port for u in app.udp] == [second]
            # The old address is closed: the port can be bound again.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", first))
            # A busy address fails the reload before anything changes.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
                busy.bind(("127.0.0.3", 0))
                taken = busy.getsockname()[1]
                path.write_text(path.read_text().replace(f'"127.0.0.2:{second}"', f'"127.0.0.3:{taken}"'))
                refused = await runtime.reload(actor="test", via="command")
            assert not refused.ok and "cannot apply" in refused.errors[0]
            assert [u.listener.port for u in app.udp] == [second]
        finally:
            await app.stop()

    asyncio.run(run())
