"""Knot and BIND as secondaries of a DNSSEC-signed dynserver zone (issue 16).

NSD is covered in tests/e2e/test_dnssec.py. Here dynserver signs dyn.example.test
(``[zones."dyn.example.test".dnssec]``) and a Knot and a BIND secondary, each on its own
127.0.0.x and a random free port (tests/secondaries.py), copy it by AXFR. Each must
serve it unchanged: dynserver's DNSKEY and NSEC3PARAM, and RRSIGs over the SOA and an A
that dnspython validates against dynserver's DNSKEY. Then a real failover (a TCP
backend stopped, its check fails, ``app`` moves to beta) must reach both by IXFR, with
the new serial and a valid RRSIG over the changed RRset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import dns.dnssec
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.backends import Backend, backends
from tests.dnssec_support import rrset, texts
from tests.secondaries import PROGRAMS, Primary, Secondary, listen_host, primary_config, secondary
from tests.support import Server, dynserver, free_port, loopback, master_file, poll, require_program

ZONE = "dyn.example.test"
ORIGIN = dns.name.from_text(ZONE)
KINDS = ("knot", "bind")
WWW = "192.0.2.10"


@dataclass
class World:
    server: Server
    alpha: Backend
    beta: Backend
    secondaries: dict[str, Secondary]


def ask(host: str, port: int, name: str, rdtype: str) -> dns.message.Message:
    """A DO=1 query, over TCP if the UDP answer is truncated."""
    query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
    reply, _ = dns.query.udp_with_fallback(query, host, port=port, timeout=3)
    return reply


def ask_server(server: Server, name: str, rdtype: str) -> dns.message.Message:
    return ask(server.host, server.port, name, rdtype)


def ask_secondary(running: Secondary, name: str, rdtype: str) -> dns.message.Message:
    return ask(running.host, running.port, name, rdtype)


def serial(reply: dns.message.Message) -> int | None:
    found = rrset(reply, ZONE, "SOA")
    return int(found[0].serial) if found is not None else None


def signed(reply: dns.message.Message, name: str, rdtype: str) -> tuple[dns.rrset.RRset, dns.rrset.RRset]:
    """The RRset and its RRSIGs in ``reply`` (both must be there)."""
    data = rrset(reply, name, rdtype)
    sigs = next(
        (
            r
            for r in reply.answer
            if r.name == dns.name.from_text(name)
            and r.rdtype == dns.rdatatype.RRSIG
            and r.covers == dns.rdatatype.from_text(rdtype)
        ),
        None,
    )
    assert data is not None and sigs is not None, f"{name} {rdtype} unsigned:\n{reply}"
    return data, sigs


def validate(reply: dns.message.Message, name: str, rdtype: str, dnskey: dns.rrset.RRset) -> None:
    """Raises dns.dnssec.ValidationFailure unless an RRSIG in ``reply`` over ``name``
    ``rdtype`` validates with ``dnskey`` (dynserver's)."""
    data, sigs = signed(reply, name, rdtype)
    dns.dnssec.validate(data, sigs, {ORIGIN: dnskey})


def write_config(
    folder: Path, alpha: Backend, beta: Backend, secondaries: dict[str, tuple[str, int]]
) -> Path:
    """test_secondaries' primary (record ``app`` failing over on a tcp check), signed."""
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    (folder / "zone").write_text(master_file(ZONE, f"ns1 IN A 192.0.2.53\nwww IN A {WWW}\n"))
    pair = ((alpha.host, alpha.port), (beta.host, beta.port))
    config = folder / "dynserver.toml"
    config.write_text(
        primary_config(ZONE, secondaries, {}, False, pair, 0.2)
        + f'\n[zones."{ZONE}".dnssec]\nenabled = true\nkey_directory = "keys"\n'
        + '\n[server.rrl]\nexempt = ["127.0.0.0/8"]\n'
    )
    return config


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    programs = {kind: require_program(*PROGRAMS[kind]) for kind in KINDS}
    folder = tmp_path_factory.mktemp("dnssec-secondaries")
    with backends(folder / "backends") as pool:
        backend_port = free_port("127.0.0.1")
        alpha = pool.add("tcp", "alpha", loopback(), backend_port)
        beta = pool.add("tcp", "beta", loopback(), backend_port)
        places = {kind: listen_host(kind, loopback()) for kind in KINDS}
        addresses = {kind: (host, free_port(host)) for kind, host in places.items()}
        config = write_config(folder, alpha, beta, addresses)
        with dynserver(config, zone=ZONE) as server:
            poll(
                lambda: ask_server(server, f"app.{ZONE}", "A"),
                lambda r: texts(rrset(r, f"app.{ZONE}", "A")) == {alpha.host},
                "dynserver to answer alpha, signed",
            )
            primary = Primary(server.host, server.port, ZONE)
            with (
                secondary(
                    "knot", programs["knot"], folder / "knot", *addresses["knot"], primary, None
                ) as knot,
                secondary(
                    "bind", programs["bind"], folder / "bind", *addresses["bind"], primary, None
                ) as bind,
            ):
                yield World(server, alpha, beta, {"knot": knot, "bind": bind})


def in_step(world: World) -> int:
    """Wait until both secondaries are at dynserver's serial; return it."""
    current = serial(ask_server(world.server, ZONE, "SOA"))
    assert current is not None
    for kind, running in world.secondaries.items():
        poll(running.serial, lambda s: s == current, f"{kind} at serial {current}", timeout=20)
    return current


def transfers(server: Server, peer: str) -> list[str]:
    """The type of every transfer dynserver served to ``peer``."""
    return re.findall(rf"event=transfer type=(\S+) zone=\S+ .*peer={re.escape(peer)} ", server.log_text())


def test_knot_and_bind_serve_the_signed_zone_unchanged(world: World) -> None:
    server = world.server
    in_step(world)
    dnskey = rrset(ask_server(server, ZONE, "DNSKEY"), ZONE, "DNSKEY")
    nsec3param = rrset(ask_server(server, ZONE, "NSEC3PARAM"), ZONE, "NSEC3PARAM")
    assert dnskey is not None and nsec3param is not None
    validate(ask_server(server, ZONE, "DNSKEY"), ZONE, "DNSKEY", dnskey)
    for kind, running in world.secondaries.items():
        assert texts(rrset(ask_secondary(running, ZONE, "DNSKEY"), ZONE, "DNSKEY")) == texts(dnskey), kind
        got = rrset(ask_secondary(running, ZONE, "NSEC3PARAM"), ZONE, "NSEC3PARAM")
        assert texts(got) == texts(nsec3param), kind
        for name, rdtype in [(ZONE, "SOA"), (f"www.{ZONE}", "A"), (f"app.{ZONE}", "A"), (ZONE, "DNSKEY")]:
            reply = ask_secondary(running, name, rdtype)
            assert reply.rcode() == dns.rcode.NOERROR, (kind, name, rdtype, reply.to_text())
            validate(reply, name, rdtype, dnskey)
            # dynserver's own signatures, copied as they are.
            mine = signed(ask_server(server, name, rdtype), name, rdtype)[1]
            assert texts(signed(reply, name, rdtype)[1]) == texts(mine), (kind, name, rdtype)
        assert texts(rrset(ask_secondary(running, f"www.{ZONE}", "A"), f"www.{ZONE}", "A")) == {WWW}
        assert transfers(server, running.host)[:1] == ["AXFR"], (kind, server.log_text()[-2000:])
    # The harness can fail: a signature over other data does not validate.
    data, sigs = signed(ask_secondary(world.secondaries["knot"], f"www.{ZONE}", "A"), f"www.{ZONE}", "A")
    forged = dns.rrset.from_text(data.name, data.ttl, "IN", "A", "192.0.2.99")
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(forged, sigs, {ORIGIN: dnskey})


def test_a_failover_reaches_knot_and_bind_by_ixfr_with_new_signatures(world: World) -> None:
    server = world.server
    app = f"app.{ZONE}"
    before_serial = in_step(world)
    before = {kind: len(transfers(server, s.host)) for kind, s in world.secondaries.items()}
    dnskey = rrset(ask_server(server, ZONE, "DNSKEY"), ZONE, "DNSKEY")
    assert dnskey is not None
    world.alpha.kill()
    try:
        poll(
            lambda: ask_server(server, app, "A"),
            lambda r: texts(rrset(r, app, "A")) == {world.beta.host},
            "the failover at dynserver",
        )
        after_serial = in_step(world)
        assert after_serial > before_serial
        for kind, running in world.secondaries.items():
            reply = poll(
                partial(ask_secondary, running, app, "A"),
                lambda r: texts(rrset(r, app, "A")) == {world.beta.host},
                f"{kind} to answer beta",
            )
            validate(reply, app, "A", dnskey)
            soa = ask_secondary(running, ZONE, "SOA")
            assert serial(soa) == after_serial, kind
            validate(soa, ZONE, "SOA", dnskey)
            new = transfers(server, running.host)[before[kind] :]
            assert new and all(t == "IXFR" for t in new), (kind, new)
    finally:
        world.alpha.start()
