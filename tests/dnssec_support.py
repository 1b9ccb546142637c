"""Real DNSSEC peers for the e2e tests: BIND's key and signing tools, NSD serving a signed
zone, and unbound validating from a trust anchor, each on its own 127.0.0.x and a random
free port (never 53). Used by tests/e2e/test_dnssec.py and tests/e2e/test_differential_nsd_dnssec.py.

The parent zone is signed by ``dnssec-signzone`` with a CSK made by ``dnssec-keygen`` (the
same tools an operator uses), NSEC3 with no extra iteration and no salt. unbound is told
only where each zone's server is (a stub-zone each) and trusts only the parent's DS: every
AD bit it sets was earned by walking the chain parent -> DS -> child DNSKEY -> RRSIG.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from tests.support import Server, free_port, loopback, require_program, server_process


def keygen(folder: Path, zone: str) -> str:
    """A CSK for ``zone`` (ECDSA P-256, flags 257) in ``folder``; returns its basename."""
    program = require_program("dnssec-keygen", "bind9-utils")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [program, "-q", "-K", str(folder), "-a", "ECDSAP256SHA256", "-f", "KSK", "-n", "ZONE", zone],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def ds_records(folder: Path, zone: str) -> list[str]:
    """The SHA-256 DS records of every key of ``zone`` in ``folder`` (dnssec-dsfromkey)."""
    program = require_program("dnssec-dsfromkey", "bind9-utils")
    found = []
    for key in sorted(folder.glob(f"K{zone.rstrip('.')}.+*.key")):
        done = subprocess.run(
            [program, "-2", str(key)], capture_output=True, text=True, check=True, timeout=30
        )
        found += [line for line in done.stdout.splitlines() if line.strip()]
    return found


def sign_zone(folder: Path, zone: str, text: str, keys: Path) -> Path:
    """Sign ``text`` with the keys of ``keys`` that their times say are active
    (``dnssec-signzone -S``: smart signing reads BIND's timing metadata), every RRset with
    every active key (``-z``: a CSK), NSEC3 with 0 iterations and no salt (RFC 9276)."""
    program = require_program("dnssec-signzone", "bind9-utils")
    unsigned = folder / f"{zone}.unsigned"
    unsigned.write_text(text)
    signed = folder / f"{zone}.zone"
    done = subprocess.run(
        [
            program,
            "-S",
            "-z",
            "-K",
            str(keys),
            "-d",
            str(folder),
            "-3",
            "-",
            "-H",
            "0",
            "-o",
            zone,
            "-f",
            str(signed),
            str(unsigned),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"dnssec-signzone failed:\n{done.stdout}{done.stderr}"
    return signed


NSD_CONF = """\
server:
    ip-address: {host}@{port}
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{run}"
    database: ""
    zonelistfile: "{run}/zone.list"
    xfrdfile: "{run}/xfrd.state"
    xfrdir: "{run}"
    pidfile: "{run}/nsd.pid"
    logfile: "{run}/nsd.log"
    verbosity: 1
    rrl-ratelimit: 0
    minimal-responses: yes
    refuse-any: no
remote-control:
    control-enable: no
zone:
    name: "{zone}"
    zonefile: "{zone}.zone"
"""


@contextmanager
def nsd_serving(folder: Path, zone: str, signed: Path) -> Iterator[Server]:
    """NSD serving the (signed) master file ``signed`` on a fresh 127.0.0.x."""
    program = require_program("nsd", "nsd")
    run = folder / "nsd"
    run.mkdir(parents=True, exist_ok=True)
    (run / f"{zone}.zone").write_text(signed.read_text())
    host = loopback()
    port = free_port(host)
    conf = run / "nsd.conf"
    conf.write_text(NSD_CONF.format(host=host, port=port, run=run, zone=zone))
    with server_process([program, "-d", "-c", str(conf)], host, port, zone, run / "nsd.out") as server:
        yield server


def reload_nsd(server: Server, zone: str, signed: Path) -> None:
    """Give a running NSD a new version of its zone (SIGHUP reloads it)."""
    run = server.log.parent
    (run / f"{zone}.zone").write_text(signed.read_text())
    server.process.send_signal(1)


@dataclass(frozen=True)
class Resolver:
    host: str
    port: int
    config: Path

    def ask(
        self, name: str, rdtype: str = "A", *, cd: bool = False, tcp: bool = False
    ) -> dns.message.Message:
        """A recursive query with DO=1 (so unbound may set AD: RFC 6840 5.7)."""
        query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
        query.flags |= dns.flags.RD | (dns.flags.CD if cd else 0)
        if tcp:
            return dns.query.tcp(query, self.host, port=self.port, timeout=10)
        return dns.query.udp(query, self.host, port=self.port, timeout=10)

    def control(self, *command: str) -> str:
        program = require_program("unbound-control", "unbound")
        done = subprocess.run(
            [program, "-c", str(self.config), *command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@contextmanager
def validating_unbound(
    folder: Path, anchor: list[str], stubs: dict[str, tuple[str, int]]
) -> Iterator[Resolver]:
    """unbound validating from ``anchor`` (DS records of the parent), with one stub-zone per
    entry of ``stubs`` (zone -> server address and port)."""
    program = require_program("unbound", "unbound")
    work = folder
    work.mkdir(parents=True, exist_ok=True)
    host = loopback()
    port = free_port(host)
    control_port = free_port(host)
    anchors = "".join(f'    trust-anchor: "{line}"\n' for line in anchor)
    stub_zones = "".join(
        f'stub-zone:\n    name: "{zone}"\n    stub-addr: {address}@{at}\n'
        for zone, (address, at) in stubs.items()
    )
    config = work / "unbound.conf"
    config.write_text(
        textwrap.dedent(f"""\
        server:
            interface: {host}
            port: {port}
            access-control: 127.0.0.0/8 allow
            do-ip6: no
            do-not-query-localhost: no
            module-config: "validator iterator"
            local-zone: "test." nodefault
            qname-minimisation: no
            username: ""
            chroot: ""
            directory: "{work}"
            pidfile: "{work}/unbound.pid"
            use-syslog: no
            logfile: ""
            verbosity: 1
            val-log-level: 2
            num-threads: 1
            so-reuseport: no
            prefetch: no
            # the test zones' TTLs are seconds: no cache floor above them
            cache-min-ttl: 0
            cache-max-negative-ttl: 2
        """)
        + anchors
        + textwrap.dedent(f"""\
        remote-control:
            control-enable: yes
            control-interface: {host}
            control-port: {control_port}
            control-use-cert: no
        """)
        + stub_zones
    )
    checked = subprocess.run(
        [require_program("unbound-checkconf", "unbound"), str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    zone = next(iter(stubs))
    with server_process([program, "-d", "-c", str(config)], host, port, zone, work / "unbound.log"):
        yield Resolver(host, port, config)


def rrset(reply: dns.message.Message, name: str, rdtype: str) -> dns.rrset.RRset | None:
    wanted = dns.rdatatype.from_text(rdtype)
    absolute = name if name.endswith(".") else name + "."
    return next(
        (r for r in reply.answer if r.name.to_text().lower() == absolute.lower() and r.rdtype == wanted), None
    )


def texts(found: dns.rrset.RRset | None) -> set[str]:
    return {rdata.to_text() for rdata in found} if found is not None else set()


def describe(reply: dns.message.Message) -> str:
    ad = "AD" if reply.flags & dns.flags.AD else "no AD"
    return f"{dns.rcode.to_text(reply.rcode())}, {ad}: " + "; ".join(r.to_text() for r in reply.answer)


def delv(resolver: Resolver, anchor: list[str], root: str, name: str, rdtype: str) -> str:
    """``delv`` validating ``name`` itself (it asks unbound with CD=1 and checks every
    signature up to the trust anchor of ``root``); returns its output."""
    program = require_program("delv", "bind9-dnsutils")
    anchors = resolver.config.parent / "delv.anchors"
    lines = []
    for line in anchor:
        owner, _cls, _type, tag, algorithm, digest_type, *digest = line.split()
        lines.append(f'    {owner} static-ds {tag} {algorithm} {digest_type} "{"".join(digest)}";')
    anchors.write_text("trust-anchors {\n" + "\n".join(lines) + "\n};\n")
    done = subprocess.run(
        [
            program,
            f"@{resolver.host}",
            "-p",
            str(resolver.port),
            "-a",
            str(anchors),
            f"+root={root}",
            name,
            rdtype,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout + done.stderr


def ds_lines(text: str) -> list[str]:
    """DS records in the presentation form, one per line, from any tool's output."""
    return [line.strip() for line in text.splitlines() if re.search(r"\sIN\s+DS\s", line)]
