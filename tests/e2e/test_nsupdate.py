"""RFC 2136 UPDATE with TSIG, with the real nsupdate: signed and in scope updates a
target; unsigned, badly signed, out-of-window or out-of-scope updates are refused."""

from __future__ import annotations

import base64
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from unittest import mock

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from tests.support import Server, dynserver, master_file, require_program

SECRET = base64.b64encode(b"dynserver-test-secret-0123456789").decode()
OTHER = base64.b64encode(b"someone-else-secret-9876543210ab").decode()
ZONE = master_file("dyn.example.test", "ns1 IN A 192.0.2.53\n")
CONFIG = f"""\
[server]
dns = ["127.0.0.1:0"]

[zones."dyn.example.test"]
file = "zone"

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [
  {{ name = "charlie", value = "192.0.2.21", priority = 1 }},
  {{ name = "bravo", value = "192.0.2.23", priority = 2 }},
]

[keys.upd]
algorithm = "hmac-sha256"
secret = "{SECRET}"
update = ["app.dyn.example.test/bravo"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    folder = tmp_path_factory.mktemp("nsupdate")
    (folder / "zone").write_text(ZONE)
    (folder / "dynserver.toml").write_text(CONFIG)
    with dynserver(folder / "dynserver.toml") as running:
        yield running


def nsupdate(
    server: Server, commands: str, key: str | None, tcp: bool = False
) -> subprocess.CompletedProcess[str]:
    program = require_program("nsupdate", "dnsutils")
    script = f"server {server.host} {server.port}\nzone dyn.example.test\n{commands}\nsend\n"
    args = [program, *(["-v"] if tcp else []), *(["-y", key] if key else [])]
    return subprocess.run(args, input=script, capture_output=True, text=True, timeout=30)


def address(server: Server, name: str) -> list[str]:
    reply = dns.query.udp(
        dns.message.make_query(name, dns.rdatatype.A), server.host, port=server.port, timeout=2
    )
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_signed_update_sets_the_target(server: Server, tcp: bool) -> None:
    value = "192.0.2.101" if tcp else "192.0.2.100"
    done = nsupdate(
        server,
        f"update delete bravo.app.dyn.example.test A\nupdate add bravo.app.dyn.example.test 60 A {value}",
        f"hmac-sha256:upd:{SECRET}",
        tcp=tcp,
    )
    assert done.returncode == 0, done.stderr
    assert address(server, "bravo.app.dyn.example.test") == [value]
    assert "update" in server.log_text() and "via=rfc2136" in server.log_text()


@pytest.mark.parametrize(
    ("commands", "key", "error"),
    [
        ("update add bravo.app.dyn.example.test 60 A 192.0.2.9", None, "REFUSED"),  # unsigned
        ("update add bravo.app.dyn.example.test 60 A 192.0.2.9", f"hmac-sha256:upd:{OTHER}", "tsig"),
        ("update add bravo.app.dyn.example.test 60 A 192.0.2.9", f"hmac-sha256:nokey:{SECRET}", "tsig"),
        ("update add charlie.app.dyn.example.test 60 A 192.0.2.9", f"hmac-sha256:upd:{SECRET}", "REFUSED"),
        ("update add dyn.example.test 60 A 192.0.2.9", f"hmac-sha256:upd:{SECRET}", "REFUSED"),
        ("update add dyn.example.test 60 NS ns2.example.net.", f"hmac-sha256:upd:{SECRET}", "REFUSED"),
        ("update delete bravo.app.dyn.example.test A", f"hmac-sha256:upd:{SECRET}", "REFUSED"),
        ("update add www.dyn.example.test 60 A 192.0.2.9", f"hmac-sha256:upd:{SECRET}", "REFUSED"),
        ("update add bravo.app.dyn.example.test 60 AAAA 2001:db8::9", f"hmac-sha256:upd:{SECRET}", "REFUSED"),
    ],
    ids=[
        "unsigned",
        "bad-secret",
        "unknown-key",
        "out-of-scope",
        "apex",
        "ns",
        "delete-only",
        "other",
        "aaaa",
    ],
)
def test_refused_updates_change_nothing(server: Server, commands: str, key: str | None, error: str) -> None:
    before = {
        name: address(server, name) for name in ("bravo.app.dyn.example.test", "charlie.app.dyn.example.test")
    }
    done = nsupdate(server, commands, key)
    assert done.returncode != 0
    assert error.lower() in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    after = {name: address(server, name) for name in before}
    assert after == before


def test_out_of_window_signature_is_badtime(server: Server) -> None:
    before = address(server, "bravo.app.dyn.example.test")
    ring = dns.tsigkeyring.from_text({"upd.": ("hmac-sha256", SECRET)})
    update = dns.update.UpdateMessage(
        "dyn.example.test", keyring=ring, keyname="upd.", keyalgorithm="hmac-sha256"
    )
    update.replace("bravo.app", 60, "A", "192.0.2.77")
    # Signed an hour ago: outside the 300 s fudge.
    with mock.patch("dns.message.time.time", return_value=time.time() - 3600):
        wire = update.to_wire()
    response = _send(server, wire)
    assert response.rcode() == dns.rcode.NOTAUTH
    assert response.tsig_error == dns.rcode.BADTIME
    assert address(server, "bravo.app.dyn.example.test") == before


def test_prerequisites_are_checked(server: Server) -> None:
    ring = dns.tsigkeyring.from_text({"upd.": ("hmac-sha256", SECRET)})
    update = dns.update.UpdateMessage(
        "dyn.example.test", keyring=ring, keyname="upd.", keyalgorithm="hmac-sha256"
    )
    update.absent("bravo.app")  # bravo's name exists: YXDOMAIN
    update.replace("bravo.app", 60, "A", "192.0.2.55")
    response = _send(server, update.to_wire())
    assert response.rcode() == dns.rcode.YXDOMAIN
    update = dns.update.UpdateMessage(
        "dyn.example.test", keyring=ring, keyname="upd.", keyalgorithm="hmac-sha256"
    )
    update.present("bravo.app", "A")
    update.replace("bravo.app", 60, "A", "192.0.2.56")
    response = _send(server, update.to_wire())
    assert response.rcode() == dns.rcode.NOERROR
    assert response.had_tsig  # the acknowledgement is signed with the same key
    assert address(server, "bravo.app.dyn.example.test") == ["192.0.2.56"]


def _send(server: Server, wire: bytes) -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(wire, (server.host, server.port))
        data, _ = sock.recvfrom(65535)
    return dns.message.from_wire(data, keyring=False)


def test_update_is_persisted(server: Server) -> None:
    done = nsupdate(
        server,
        "update delete bravo.app.dyn.example.test A\nupdate add bravo.app.dyn.example.test 60 A 192.0.2.88",
        f"hmac-sha256:upd:{SECRET}",
    )
    assert done.returncode == 0, done.stderr
    database = next(Path(server.log).parent.glob("*.db"))
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT actor, current, reason FROM event WHERE kind = 'update' ORDER BY id DESC LIMIT 1"
        ).fetchall()
    assert rows and rows[0][0] == "tsig:upd" and rows[0][1] == "192.0.2.88" and "rfc2136" in rows[0][2]
