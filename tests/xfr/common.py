"""Shared by the transfer tests: an App built from a real config (no sockets), a way to
change an answer as the health engine does, and dnspython's transfer client without
the socket."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rdatatype
import dns.tsig
import dns.xfr
import dns.zone

from dynserver import config
from dynserver.app import App
from dynserver.types import Stream

ORIGIN = "dyn.example.test."
SECRET = base64.b64encode(b"transfer-test-secret-0123456789!").decode()
OTHER = base64.b64encode(b"another-test-secret-0123456789!!").decode()
ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@    IN SOA ns1 hostmaster 1 3600 600 86400 60
     IN NS  ns1
     IN MX  10 mail
ns1  IN A   192.0.2.53
mail IN A   192.0.2.25
www  IN A   192.0.2.10
     IN AAAA 2001:db8::10
txt  IN TXT "hello" "world"
""" + "".join(f"host{i} IN A 198.51.100.{i}\n" for i in range(20))
SECONDARY = ("127.0.0.51", 40000)
STRANGER = ("127.0.0.99", 40000)


def make_config(
    tmp_path: Path,
    *,
    extra_zone: str = "",
    transfer: str | None = None,
    journal: int = 1000,
    database: str = "",
) -> config.Config:
    (tmp_path / "zone").write_text(ZONE + extra_zone)
    transfer = transfer if transfer is not None else 'secondaries = [{ address = "127.0.0.51" }]'
    (tmp_path / "dynserver.toml").write_text(
        f"""\
[server]
dns = ["127.0.0.1:0"]
database = "{database}"

[keys.xfr]
secret = "{SECRET}"

[keys.other]
secret = "{OTHER}"

[zones."dyn.example.test"]
file = "zone"

[zones."dyn.example.test".transfer]
{transfer}
journal = {journal}

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [
  {{ name = "alpha", value = "192.0.2.1", priority = 1 }},
  {{ name = "beta", value = "192.0.2.2", priority = 2 }},
]
"""
    )
    return config.load(tmp_path / "dynserver.toml")


def make_app(tmp_path: Path, **options: Any) -> App:
    return App(make_config(tmp_path, **options))


def set_alpha(app: App, value: str) -> None:
    """A target update, as the health engine and updates publish it (serial + 1)."""
    name = tuple(b"app.dyn.example.test".split(b"."))
    app.runtime.engine.set_value((name, "A", "alpha"), value)
    app.runtime.publish(app.runtime.engine.recompute([(name, "A")]))


def messages(reply: bytes | Stream | object) -> list[bytes]:
    if isinstance(reply, Stream):
        return list(reply.messages)
    assert isinstance(reply, bytes), reply
    return [reply]


def transfer(
    app: App,
    secondary: dns.zone.Zone,
    *,
    serial: int | None = 0,
    peer: tuple[str, int] = SECONDARY,
    tcp: bool = True,
    keyring: dict[dns.name.Name, dns.tsig.Key] | None = None,
    keyname: str | None = None,
) -> list[dns.message.Message]:
    """Transfer into ``secondary`` (IXFR from its serial; AXFR when serial is None or it
    is empty) exactly as dns.query.inbound_xfr does, minus the socket."""
    query, serial_used = dns.xfr.make_query(
        secondary, serial=serial, keyring=keyring, keyname=keyname, use_edns=None if tcp else 0
    )
    replies = messages(app.runtime.answer(query.to_wire(), tcp, peer))
    out = []
    is_ixfr = query.question[0].rdtype == dns.rdatatype.IXFR
    with dns.xfr.Inbound(secondary, query.question[0].rdtype, serial_used, not tcp) as inbound:
        tsig_ctx = None
        done = False
        for index, data in enumerate(replies):
            assert not done, "messages after the final SOA"
            reply = dns.message.from_wire(
                data,
                keyring=query.keyring,
                request_mac=query.mac,
                xfr=True,
                origin=secondary.origin,
                tsig_ctx=tsig_ctx,
                multi=tcp,
                one_rr_per_rrset=is_ixfr,
            )
            assert query.is_response(reply) or index > 0
            done = inbound.process_message(reply)
            tsig_ctx = reply.tsig_ctx
            out.append(reply)
        assert done, "the transfer did not end with the SOA"
    return out


def contents(zone: dns.zone.Zone) -> set[str]:
    return {line for line in zone.to_text(relativize=False).splitlines() if line}


def served(app: App) -> set[str]:
    """What an AXFR from scratch gives: the reference for every incremental result."""
    fresh = dns.zone.Zone(ORIGIN)
    transfer(app, fresh, serial=None)
    return contents(fresh)


def ask_raw(
    app: App, query: dns.message.Message | bytes, *, peer: tuple[str, int] = SECONDARY, tcp: bool = True
) -> bytes:
    reply = app.runtime.answer(query if isinstance(query, bytes) else query.to_wire(), tcp, peer)
    assert isinstance(reply, bytes), reply
    return reply
