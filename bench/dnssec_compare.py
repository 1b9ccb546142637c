"""Signed answers (DO=1): dynserver side by side with Knot and PowerDNS, in one run.

One command, run from the repository root:

    .venv/bin/python bench/dnssec_compare.py [--duration 10] [--servers dynserver,knot,pdns]

The method, the CPU accounting, the quiet-machine checks and the report are those of
``bench/dnsperf_compare.py`` (imported, not copied); what differs is the flavour below:

* every server serves ``dyn.example.test`` signed with one combined key (CSK), ECDSA P-256
  (algorithm 13), and NSEC3 with no extra iteration and no salt (RFC 9276):
  - dynserver: the static zone of ``bench/peers/zones`` with ``[zones."dyn.example.test".dnssec]``
    (keys generated at first start in a key directory of the temp dir);
  - Knot: the same zone signed by Knot's automatic signing (``bench/peers/knot-dnssec.conf.in``);
  - knot-online: Knot signing each answer as it goes (``mod-onlinesign``,
    ``bench/peers/knot-onlinesign.conf.in``), with its compact denial (NODATA for ``nope``);
  - PowerDNS: the LUA zone of dnsperf_compare (``app`` is an ``ifurlup`` record) with live
    signing: the bind backend with a DNSSEC database, ``pdnsutil secure-zone`` and
    ``set-nsec3 '1 0 0 -'`` before it starts;
* dnsperf sets the DO bit on every query (``-D``), so every answer carries RRSIGs and the
  NXDOMAIN of ``nope`` carries NSEC3 records and their signatures;
* before measuring, the harness checks each server's signed answers: the RRSIG of ``www``
  A validates with the zone's DNSKEY (dnspython), and ``nope`` is NXDOMAIN with NSEC3;
* the targets are against Knot: dynserver QPS >= 0.8 x Knot, CPU per query at 100k QPS
  <= 1.5 x Knot.

Every process is stopped by PID; all traffic stays on 127.0.0.0/8, never port 53.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dnsperf_compare as bench
from dnsperf_compare import PEERS_DIR, ZONE, Env, Flavour, ServerFailed, render

SERVERS = ("dynserver", "knot", "knot-online", "pdns")
KEY_DIRECTORY = "keys"


def prepare_dynserver(env: Env) -> list[str]:
    """dnsperf_compare's dynserver (static zone, RRL on), with the zone signed."""
    argv = bench.prepare_dynserver(env)
    config = env.rundir / "dynserver.toml"
    (env.rundir / KEY_DIRECTORY).mkdir()
    with config.open("a") as out:
        out.write(f'\n[zones."{ZONE}".dnssec]\nenabled = true\nkey_directory = "{KEY_DIRECTORY}"\n')
    return argv


def prepare_knot(env: Env) -> list[str]:
    config = render(PEERS_DIR / "knot-dnssec.conf.in", env.rundir / "knot.conf", env)
    bench.render_static_zone(env, env.rundir / "zones" / f"{ZONE}.zone")
    bench.mkdirs(env.rundir / "knot" / "db")
    return ["knotd", "-c", str(config)]


def prepare_knot_online(env: Env) -> list[str]:
    """Knot signing each answer as it sends it (mod-onlinesign): online signing like
    PowerDNS's, with Knot's compact denial (a NODATA "black lie" instead of NXDOMAIN)."""
    config = render(PEERS_DIR / "knot-onlinesign.conf.in", env.rundir / "knot.conf", env)
    bench.render_static_zone(env, env.rundir / "zones" / f"{ZONE}.zone")
    bench.mkdirs(env.rundir / "knot" / "db")
    return ["knotd", "-c", str(config)]


def prepare_pdns(env: Env) -> list[str]:
    """dnsperf_compare's PowerDNS (bind backend, LUA records), with a DNSSEC database and
    the zone secured: PowerDNS signs every answer as it sends it (and caches signatures)."""
    argv = bench.prepare_pdns(env)
    confdir = env.rundir / env.name
    database = confdir / "dnssec.sqlite3"
    with (confdir / "pdns.conf").open("a") as out:
        out.write(f"bind-dnssec-db={database}\ndefault-ksk-algorithm=ecdsa256\n")
    pdnsutil = ["pdnsutil", f"--config-dir={confdir}"]
    for command in (
        ["create-bind-db", str(database)],
        ["secure-zone", ZONE],
        ["set-nsec3", ZONE, "1 0 0 -"],
    ):
        done = subprocess.run([*pdnsutil, *command], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ServerFailed(f"pdnsutil {' '.join(command)}: {(done.stdout + done.stderr).strip()[-500:]}")
    return argv


PREPARE: dict[str, Callable[[Env], list[str]]] = {
    "dynserver": prepare_dynserver,
    "knot": prepare_knot,
    "knot-online": prepare_knot_online,
    "pdns": prepare_pdns,
}


def ask_signed(addr: str, port: int, name: str, rdtype: str) -> dns.message.Message | None:
    query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
    try:
        return dns.query.udp(query, addr, port=port, timeout=1.0)
    except (dns.exception.DNSException, OSError):
        try:
            return dns.query.tcp(query, addr, port=port, timeout=1.0)
        except (dns.exception.DNSException, OSError):
            return None


def check_signed(addr: str, port: int) -> list[str]:
    """dnsperf_compare's answer checks, plus: www A's RRSIG validates with the zone's
    DNSKEY RRset (itself signed), and nope A is NXDOMAIN proven by NSEC3."""
    problems = bench.check_answers(addr, port)
    origin = dns.name.from_text(ZONE)
    keys = ask_signed(addr, port, ZONE, "DNSKEY")
    dnskey = keys and keys.get_rrset(keys.answer, origin, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    if keys is None or dnskey is None:
        return [*problems, "no DNSKEY RRset with DO=1"]
    www = ask_signed(addr, port, f"www.{ZONE}", "A")
    name = dns.name.from_text(f"www.{ZONE}")
    try:
        assert www is not None, "no reply"
        rrset = www.find_rrset(www.answer, name, dns.rdataclass.IN, dns.rdatatype.A)
        rrsig = www.find_rrset(www.answer, name, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.A)
        dns.dnssec.validate(rrset, rrsig, {origin: dnskey})
    except (AssertionError, KeyError, dns.dnssec.ValidationFailure) as error:
        problems.append(f"www A with DO=1 does not validate: {error!r}")
    nope = ask_signed(addr, port, f"nope.{ZONE}", "A")
    denial = {r.rdtype for r in (nope.authority if nope else [])} & {dns.rdatatype.NSEC3, dns.rdatatype.NSEC}
    compact = nope is not None and nope.rcode() == dns.rcode.NOERROR and denial == {dns.rdatatype.NSEC}
    if compact:  # Knot's onlinesign: compact denial answers NODATA where others say NXDOMAIN
        problems = [p for p in problems if not p.startswith("nope A:")]
        problems.append("nope A: compact denial (NOERROR + NSEC 'black lie'), not NXDOMAIN + NSEC3")
    elif nope is None or nope.rcode() != dns.rcode.NXDOMAIN or denial != {dns.rdatatype.NSEC3}:
        problems.append("nope A with DO=1: expected NXDOMAIN with NSEC3 records")
    return problems


SIGNED = Flavour(PREPARE, check_signed, dnsperf_extra=("-D",), reference="knot")


def main(argv: Sequence[str] | None = None) -> int:
    return bench.main(argv, SIGNED, SERVERS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
