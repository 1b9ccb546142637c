"""DNSSEC end to end, judged by real validators (issue 16).

The chain a resolver walks, every piece a real server on its own 127.0.0.x and a random
free port:

    unbound (trust anchor: the DS of example.test)
      -> NSD serving example.test, signed by dnssec-signzone, whose DS for
         dyn.example.test is what `dynserver dnssec ds` printed
      -> dynserver serving dyn.example.test signed ([zones."dyn.example.test".dnssec]),
         with a dynamic record `app` failing over between two real HTTP backends.

unbound must set AD=1 and give the right answer for a positive answer, NXDOMAIN, NODATA,
a wildcard, a CNAME, an empty non-terminal and the dynamic name, before and after a
failover and after a key rollover; SERVFAIL must appear nowhere. delv validates the same
names by itself; ldns-verify-zone and dnssec-verify accept an AXFR of the zone; an NSD
secondary serves the signed zone (and a failover, which reaches it by IXFR) and unbound
validates through it; Zonemaster's DNSSEC module reports no error (it only speaks to port
53, so that part runs in a private network namespace, tests/netns.py).

The first test proves the harness itself on a zone signed by BIND and served by NSD, and
that it does fail: a child whose DS the parent does not have is SERVFAIL, never AD.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.backends import Backend, backends
from tests.dnssec_support import (
    Resolver,
    delv,
    describe,
    ds_lines,
    ds_records,
    keygen,
    nsd_serving,
    reload_nsd,
    rrset,
    sign_zone,
    texts,
    validating_unbound,
)
from tests.netns import net_namespace
from tests.secondaries import Primary, secondary
from tests.support import ROOT, Server, dynserver, free_port, loopback, poll, require_program

pytestmark = pytest.mark.slow

PARENT = "example.test"
CHILD = "dyn.example.test"
TTL = 2  # every TTL of the child: unbound asks again within seconds
WWW = "192.0.2.10"
WILD = "192.0.2.20"


def parent_zone(child_host: str, ds: list[str]) -> str:
    delegation = "".join(f"{line}\n" for line in ds)
    return f"""\
$ORIGIN {PARENT}.
$TTL {TTL}
@       IN SOA ns1 hostmaster 1 3600 600 86400 {TTL}
        IN NS  ns1
ns1     IN A   127.0.0.1
www     IN CNAME app.{CHILD}.
dyn     IN NS  ns1.dyn
ns1.dyn IN A   {child_host}
{delegation}"""


def child_zone(host: str, app: str | None = None) -> str:
    static_app = f"app IN A {app}\n" if app else ""
    return f"""\
$ORIGIN {CHILD}.
$TTL {TTL}
@       IN SOA ns1 hostmaster 1 3600 600 86400 {TTL}
        IN NS  ns1
ns1     IN A   {host}
www     IN A   {WWW}
alias   IN CNAME www
*.wild  IN A   {WILD}
a.b.ent IN TXT "deep"
{static_app}"""


# What unbound must answer, for every kind of answer the issue names: (name, type) ->
# (rcode, the answer's RRsets as {(owner, type): values}).
def expected(app: str) -> dict[tuple[str, str], tuple[int, dict[tuple[str, str], set[str]]]]:
    return {
        (f"www.{CHILD}", "A"): (dns.rcode.NOERROR, {(f"www.{CHILD}.", "A"): {WWW}}),
        (f"nx.{CHILD}", "A"): (dns.rcode.NXDOMAIN, {}),
        (f"www.{CHILD}", "AAAA"): (dns.rcode.NOERROR, {}),  # NODATA
        (f"x.wild.{CHILD}", "A"): (dns.rcode.NOERROR, {(f"x.wild.{CHILD}.", "A"): {WILD}}),
        (f"alias.{CHILD}", "A"): (
            dns.rcode.NOERROR,
            {(f"alias.{CHILD}.", "CNAME"): {f"www.{CHILD}."}, (f"www.{CHILD}.", "A"): {WWW}},
        ),
        (f"b.ent.{CHILD}", "A"): (dns.rcode.NOERROR, {}),  # an empty non-terminal
        (f"app.{CHILD}", "A"): (dns.rcode.NOERROR, {(f"app.{CHILD}.", "A"): {app}}),
        (f"www.{PARENT}", "A"): (
            dns.rcode.NOERROR,
            {(f"www.{PARENT}.", "CNAME"): {f"app.{CHILD}."}, (f"app.{CHILD}.", "A"): {app}},
        ),
        (CHILD, "DNSKEY"): (dns.rcode.NOERROR, {}),  # values vary: checked apart
    }


def check_validated(resolver: Resolver, app: str) -> list[str]:
    """Every expected answer, with AD=1; the problems found (empty: all good)."""
    problems = []
    for (name, rdtype), (rcode, answer) in expected(app).items():
        reply = resolver.ask(name, rdtype)
        got = {
            (r.name.to_text().lower(), dns.rdatatype.to_text(r.rdtype)): texts(r)
            for r in reply.answer
            if r.rdtype != dns.rdatatype.RRSIG
        }
        if rdtype == "DNSKEY":
            got = {}
        if reply.rcode() != rcode or not reply.flags & dns.flags.AD or got != answer:
            problems.append(f"{name} {rdtype}: {describe(reply)}")
    return problems


# -- the harness, on a zone BIND signs and NSD serves ----------------------------------


def test_the_harness_validates_a_bind_signed_child_and_fails_a_bogus_one(tmp_path: Path) -> None:
    with ExitStack() as stack:
        child_keys = tmp_path / "child-keys"
        keygen(child_keys, CHILD)
        child_host = loopback()
        child = stack.enter_context(
            nsd_serving(
                tmp_path / "child", CHILD, sign_zone(tmp_path, CHILD, child_zone(child_host, WWW), child_keys)
            )
        )
        parent = serve_parent(stack, tmp_path / "parent", child.host, ds_records(child_keys, CHILD))
        resolver = stack.enter_context(
            validating_unbound(
                tmp_path / "unbound",
                parent.anchor,
                {PARENT: (parent.server.host, parent.server.port), CHILD: (child.host, child.port)},
            )
        )
        assert check_validated(resolver, WWW) == []
        # A child the parent's DS does not match: bogus, so SERVFAIL and never AD.
        other_keys = tmp_path / "other-keys"
        keygen(other_keys, CHILD)
        reload_nsd(
            parent.server,
            PARENT,
            sign_zone(
                parent.folder, PARENT, parent_zone(child.host, ds_records(other_keys, CHILD)), parent.keys
            ),
        )
        resolver.control("flush_zone", PARENT)
        resolver.control("flush_zone", CHILD)
        resolver.control("flush_bogus")
        reply = poll(
            lambda: resolver.ask(f"www.{CHILD}", "A"),
            lambda r: r.rcode() == dns.rcode.SERVFAIL,
            "unbound to find the child bogus",
        )
        assert not reply.flags & dns.flags.AD


@dataclass
class Parent:
    server: Server
    folder: Path
    keys: Path
    anchor: list[str]


def serve_parent(stack: ExitStack, folder: Path, child_host: str, ds: list[str]) -> Parent:
    """NSD serving example.test, signed with a fresh CSK, delegating dyn to ``child_host``
    with ``ds``; its own DS is the resolvers' trust anchor."""
    keys = folder / "keys"
    keygen(keys, PARENT)
    folder.mkdir(parents=True, exist_ok=True)
    signed = sign_zone(folder, PARENT, parent_zone(child_host, ds), keys)
    server = stack.enter_context(nsd_serving(folder, PARENT, signed))
    return Parent(server, folder, keys, ds_records(keys, PARENT))


# -- dynserver ---------------------------------------------------------------------------


@dataclass
class World:
    folder: Path
    config: Path
    dynserver: Server
    parent: Parent
    resolver: Resolver
    alpha: Backend
    beta: Backend
    secondary_at: tuple[str, int]


def dynserver_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynserver", *args, "--config", str(config), CHILD]
        if args[0] == "dnssec"
        else [sys.executable, "-m", "dynserver", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def write_child_config(
    folder: Path, host: str, alpha: Backend, beta: Backend, secondary: tuple[str, int]
) -> Path:
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    (folder / f"{CHILD}.zone").write_text(child_zone(host))
    config = folder / "dynserver.toml"
    config.write_text(f"""\
[server]
dns = ["{host}:0"]

[server.rrl]
exempt = ["127.0.0.0/8"]

[monitors.web]
type = "http"
port = {alpha.port}
interval = 0.3
timeout = 0.3

[zones."{CHILD}"]
file = "{CHILD}.zone"

[zones."{CHILD}".dnssec]
enabled = true
key_directory = "keys"

[zones."{CHILD}".transfer]
secondaries = [{{ address = "{secondary[0]}:{secondary[1]}" }}]
allow = ["127.0.0.0/8"]  # dig's AXFR for ldns-verify-zone and dnssec-verify

[zones."{CHILD}".records.app]
type = "A"
ttl = {TTL}
monitor = "web"
targets = [
  {{ name = "alpha", value = "{alpha.host}", priority = 1 }},
  {{ name = "beta", value = "{beta.host}", priority = 2 }},
]
""")
    return config


def child_ds(config: Path) -> list[str]:
    done = dynserver_cli(config, "dnssec", "ds")
    assert done.returncode == 0, done.stdout + done.stderr
    found = ds_lines(done.stdout)
    assert found and all(f" {CHILD}." in f" {line}" for line in found), done.stdout
    assert all(line.split()[5] == "2" for line in found), "DS digest type 2 (SHA-256)"
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("dnssec")
    with ExitStack() as stack:
        registry = stack.enter_context(backends(folder / "backends"))
        port = free_port("127.0.0.1")
        alpha = registry.add("http", "alpha", loopback(), port)
        beta = registry.add("http", "beta", loopback(), port)
        host = loopback()
        secondary_at = (loopback(), 0)
        secondary_at = (secondary_at[0], free_port(secondary_at[0]))
        config = write_child_config(folder / "child", host, alpha, beta, secondary_at)
        server = stack.enter_context(dynserver(config, host=host, zone=CHILD))
        wait_signed(server)
        parent = serve_parent(stack, folder / "parent", host, child_ds(config))
        resolver = stack.enter_context(
            validating_unbound(
                folder / "unbound",
                parent.anchor,
                {PARENT: (parent.server.host, parent.server.port), CHILD: (server.host, server.port)},
            )
        )
        poll(
            lambda: ask(server, f"app.{CHILD}", "A"),
            lambda r: app_values(r) == {alpha.host},
            "app to be alpha",
        )
        yield World(folder, config, server, parent, resolver, alpha, beta, secondary_at)


def ask(server: Server, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
    return dns.query.udp(query, server.host, port=server.port, timeout=3)


def app_values(reply: dns.message.Message) -> set[str]:
    return texts(rrset(reply, f"app.{CHILD}", "A"))


def wait_signed(server: Server) -> None:
    poll(
        lambda: ask(server, CHILD, "DNSKEY"),
        lambda r: rrset(r, CHILD, "DNSKEY") is not None and rrset(r, CHILD, "RRSIG") is not None,
        "dynserver to serve a signed DNSKEY RRset",
    )


def test_unbound_validates_every_kind_of_answer(world: World) -> None:
    assert check_validated(world.resolver, world.alpha.host) == []
    # Over TCP as well (answers with signatures are larger).
    reply = world.resolver.ask(f"www.{CHILD}", "A", tcp=True)
    assert reply.flags & dns.flags.AD and texts(rrset(reply, f"www.{CHILD}", "A")) == {WWW}, describe(reply)


def test_delv_validates_the_same_names(world: World) -> None:
    resolver, anchor = world.resolver, world.parent.anchor
    for name, rdtype in [
        (f"www.{CHILD}", "A"),
        (f"x.wild.{CHILD}", "A"),
        (f"alias.{CHILD}", "A"),
        (f"app.{CHILD}", "A"),
        (CHILD, "DNSKEY"),
    ]:
        out = delv(resolver, anchor, PARENT, name, rdtype)
        assert "; fully validated" in out, f"{name} {rdtype}:\n{out}"
    for name, rdtype in [(f"nx.{CHILD}", "A"), (f"www.{CHILD}", "AAAA"), (f"b.ent.{CHILD}", "A")]:
        out = delv(resolver, anchor, PARENT, name, rdtype)
        assert "negative response, fully validated" in out, f"{name} {rdtype}:\n{out}"


def test_failover_answers_stay_validated(world: World) -> None:
    resolver = world.resolver
    assert check_validated(resolver, world.alpha.host) == []
    seen: list[str] = []
    world.alpha.kill()
    try:

        def fetch() -> dns.message.Message:
            reply = resolver.ask(f"app.{CHILD}", "A")
            seen.append(describe(reply))
            return reply

        poll(fetch, lambda r: app_values(r) == {world.beta.host}, "unbound to validate beta", timeout=20)
        assert not [s for s in seen if not s.startswith("NOERROR, AD")], seen
        assert check_validated(resolver, world.beta.host) == []
    finally:
        world.alpha.start()
    poll(lambda: resolver.ask(f"app.{CHILD}", "A"), lambda r: app_values(r) == {world.alpha.host}, "failback")
    assert check_validated(resolver, world.alpha.host) == []


def axfr(server: Server) -> str:
    dig = require_program("dig", "dnsutils")
    done = subprocess.run(
        [dig, f"@{server.host}", "-p", str(server.port), CHILD, "AXFR", "+nocmd", "+nostats", "+nocomments"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_ldns_verify_zone_and_dnssec_verify_accept_the_axfr(world: World, tmp_path: Path) -> None:
    zone = tmp_path / "axfr.zone"
    text = axfr(world.dynserver)
    zone.write_text(text)
    assert " RRSIG " in text and " NSEC3 " in text and " NSEC3PARAM " in text, text[:2000]
    ldns = require_program("ldns-verify-zone", "ldnsutils")
    done = subprocess.run(
        [ldns, "-V", "2", str(zone)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    verify = require_program("dnssec-verify", "bind9-utils")  # -z: a CSK signs everything
    done = subprocess.run(
        [verify, "-z", "-o", CHILD, str(zone)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Zone fully signed" in done.stdout + done.stderr


def test_an_nsd_secondary_serves_the_signed_zone_and_unbound_validates_through_it(world: World) -> None:
    program = require_program("nsd", "nsd")
    host, port = world.secondary_at
    primary = Primary(world.dynserver.host, world.dynserver.port, CHILD)
    with ExitStack() as stack:
        nsd = stack.enter_context(
            secondary("nsd", program, world.folder / "nsd-secondary", host, port, primary, None)
        )
        serial = ask(world.dynserver, CHILD, "SOA").answer[0][0].serial
        poll(nsd.serial, lambda s: s is not None and s >= serial, "the NSD secondary to copy the zone")
        resolver = stack.enter_context(
            validating_unbound(
                world.folder / "unbound-via-secondary",
                world.parent.anchor,
                {PARENT: (world.parent.server.host, world.parent.server.port), CHILD: (host, port)},
            )
        )
        problems = check_validated(resolver, world.alpha.host)
        assert problems == [], problems
        # The answers came from NSD: it holds the signatures, dynserver's own.
        reply = dns.query.udp(
            dns.message.make_query(f"www.{CHILD}", "A", want_dnssec=True), host, port=port, timeout=3
        )
        assert rrset(reply, f"www.{CHILD}", "RRSIG") is not None
        # A failover reaches NSD as an IXFR carrying the new signatures: still AD=1.
        seen: list[str] = []

        def fetch() -> dns.message.Message:
            reply = resolver.ask(f"app.{CHILD}", "A")
            seen.append(describe(reply))
            return reply

        world.alpha.kill()
        try:
            poll(
                fetch, lambda r: app_values(r) == {world.beta.host}, "beta through the secondary", timeout=20
            )
        finally:
            world.alpha.start()
        poll(
            fetch,
            lambda r: app_values(r) == {world.alpha.host},
            "alpha again through the secondary",
            timeout=20,
        )
        assert not [s for s in seen if not s.startswith("NOERROR, AD")], seen
        transfers = re.findall(r"event=transfer type=(\S+)", world.dynserver.log_text())
        assert "IXFR" in transfers, transfers


def test_zonemaster_dnssec_module_reports_no_error(world: World, tmp_path: Path) -> None:
    """Zonemaster's DNSSEC tests, undelegated (--ns, --ds), offline: it speaks only to port
    53, so a copy of the child (same keys) runs in a private network namespace."""
    zonemaster = require_program("zonemaster-cli", "zonemaster-cli")
    ds = child_ds(world.config)
    with net_namespace() as ns:
        host = "127.0.0.4"
        folder = tmp_path / "zm"
        folder.mkdir()
        (folder / f"{CHILD}.zone").write_text(child_zone(host, WWW))
        config = folder / "dynserver.toml"
        keys = world.config.parent / "keys"
        config.write_text(
            f'[server]\ndns = ["{host}:53"]\n\n[zones."{CHILD}"]\nfile = "{CHILD}.zone"\n\n'
            f'[zones."{CHILD}".dnssec]\nenabled = true\nkey_directory = "{keys}"\n'
        )
        log = folder / "dynserver.log"
        process = ns.popen([sys.executable, "-m", "dynserver", "serve", "--config", config], log, cwd=ROOT)
        ns.wait_for_dns(host, 53, CHILD, process=process, log=log)
        argv = [
            zonemaster,
            "--no-ipv6",
            "--no-progress",
            "--level",
            "WARNING",
            "--show-level",
            "--show-testcase",
        ]
        argv += ["--ns", f"ns1.{CHILD}/{host}", "--test", "DNSSEC"]
        for line in ds:
            _owner, _cls, _type, tag, algorithm, digest_type, *digest = line.split()
            argv += ["--ds", f"{tag},{algorithm},{digest_type},{''.join(digest)}"]
        done = ns.run([*argv, CHILD], timeout=120, check=False)
    out = done.stdout + done.stderr
    levels = [
        line.split()[1] for line in out.splitlines() if len(line.split()) > 2 and line.split()[1].isupper()
    ]
    assert not {"ERROR", "CRITICAL"} & set(levels), out
    assert "WARNING" not in levels, out


# -- a key rollover, end to end ---------------------------------------------------------


def test_a_key_rollover_never_breaks_validation(tmp_path: Path) -> None:
    """`dynserver dnssec rollover` with the waits shrunk to the test's TTLs: the new key is
    published and signs, CDS switches to it when `dnssec status` says so, the parent gets
    the new DS, `rollover --ds-published`, the old key goes; unbound validates every
    answer all along, and the zone ends with the new key alone."""
    with ExitStack() as stack:
        registry = stack.enter_context(backends(tmp_path / "backends"))
        port = free_port("127.0.0.1")
        alpha = registry.add("http", "alpha", loopback(), port)
        beta = registry.add("http", "beta", loopback(), port)
        host = loopback()
        config = write_child_config(tmp_path / "child", host, alpha, beta, (loopback(), 53))
        server = stack.enter_context(dynserver(config, host=host, zone=CHILD))
        wait_signed(server)
        old_ds = child_ds(config)
        parent = serve_parent(stack, tmp_path / "parent", host, old_ds)
        resolver = stack.enter_context(
            validating_unbound(
                tmp_path / "unbound",
                parent.anchor,
                {PARENT: (parent.server.host, parent.server.port), CHILD: (server.host, server.port)},
            )
        )
        poll(lambda: ask(server, f"app.{CHILD}", "A"), lambda r: app_values(r) == {alpha.host}, "app")
        seen: list[str] = []

        def validated(stage: str) -> None:
            problems = check_validated(resolver, alpha.host)
            seen.extend(f"{stage}: {problem}" for problem in problems)

        validated("before")
        # Dprp 6 s: the new key is announced (CDS) 8 s after the start, time enough for the
        # "too early" check below on a loaded machine (each command takes 1-2 s there).
        waits = ["--propagation", "6", "--parent-ds-ttl", str(TTL), "--parent-propagation", "1"]
        started = dynserver_cli(config, "dnssec", "rollover", *waits)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "phase: publishing" in started.stdout, started.stdout
        # Too early for the DS: refused.
        early = dynserver_cli(config, "dnssec", "rollover", "--ds-published", *waits)
        assert early.returncode != 0 and "too early" in early.stderr, early.stdout + early.stderr
        keys = dnskeys(server)
        assert len(keys) == 2, keys
        # Double signature: from now on every RRset is signed by both keys.
        for name, rdtype in [(f"www.{CHILD}", "A"), (f"app.{CHILD}", "A"), (CHILD, "SOA"), (CHILD, "DNSKEY")]:
            signers = {sig.key_tag for sig in rrset(ask(server, name, rdtype), name, "RRSIG") or []}
            assert len(signers) == 2, f"{name} {rdtype} is signed by {signers} only"
        # Wait for the state machine's time while validating, then the CDS is the new key.
        await_phase(config, "submit-ds", lambda: validated("publishing"))
        new_ds = child_ds(config)
        assert new_ds != old_ds
        cds = ask(server, CHILD, "CDS")
        assert {r.to_text().split()[0] for r in cds.answer[0]} == {line.split()[3] for line in new_ds}
        validated("cds-switched")
        # The user hands the new DS to the parent.
        reload_nsd(
            parent.server, PARENT, sign_zone(parent.folder, PARENT, parent_zone(host, new_ds), parent.keys)
        )
        poll(
            lambda: dns.query.udp(
                dns.message.make_query(CHILD, "DS"), parent.server.host, port=parent.server.port, timeout=3
            ),
            lambda r: (
                bool(r.answer)
                and {x.key_tag for x in r.answer[0]} == {int(line.split()[3]) for line in new_ds}
            ),
            "the parent to serve the new DS",
        )
        done = dynserver_cli(config, "dnssec", "rollover", "--ds-published", *waits)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "phase: retiring" in done.stdout, done.stdout
        status = await_phase(config, "idle", lambda: validated("retiring"))
        poll(lambda: dnskeys(server), lambda k: len(k) == 1, "the old key to leave the DNSKEY RRset")
        assert "removed" in status
        time.sleep(TTL + 1)  # every cached copy of the old DNSKEY RRset has expired
        validated("after")
        log = (resolver.config.parent / "unbound.log").read_text(errors="replace")
        reasons = [line for line in log.splitlines() if "validation failure" in line][-5:]
        keyset = ask(server, CHILD, "DNSKEY").to_text()
        assert seen == [], "\n".join([*seen, "unbound:", *reasons, "dynserver's DNSKEY reply:", keyset])


def await_phase(config: Path, phase: str, meanwhile: Callable[[], None]) -> str:
    """Until `dnssec status` says ``phase`` (calling ``meanwhile`` every half second), then
    `dynserver reload` so the server applies the key times now; returns the status."""
    deadline = time.monotonic() + 30
    while f"phase: {phase}" not in (status := dynserver_cli(config, "dnssec", "status")).stdout:
        assert time.monotonic() < deadline, status.stdout
        meanwhile()
        time.sleep(0.5)
    reload = dynserver_cli(config, "reload")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    return status.stdout


def dnskeys(server: Server) -> set[str]:
    return texts(rrset(ask(server, CHILD, "DNSKEY"), CHILD, "DNSKEY"))
