"""What signing adds to a failover: the time from a new answer to the swapped snapshot,
for a zone of 1,000 dynamic records, signed and unsigned, in one run.

    .venv/bin/python bench/dnssec_failover.py [--records 1000] [--rounds 300] [--algorithm 13]

Each round changes one record's answer and calls the runtime's publishing path
(``Runtime._publish_nodes``: serial + 1, the zone's changed nodes rebuilt, signed when the
zone is, ``Snapshot.derive``, swap), as a failover does, and times it. Before it, a DO=1
query for the record asks the snapshot (so derive has a template to drop, as in
service). Prints the median, 90th and 99th percentile for both, the difference, and the
cost of one RRSIG with this module's signer and with ``dns.dnssec.sign``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import dns.message
import dns.name
import dns.rrset

from dynserver import config
from dynserver.app import App
from dynserver.cli import _settle_gc as settle_gc
from dynserver.config import parse_name
from dynserver.dns.zone import rrset_from_texts
from dynserver.dnssec.keys import generate
from dynserver.dnssec.signer import Policy, ZoneSigner

ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1
ns1 IN A 192.0.2.53
"""
ORIGIN = parse_name("dyn.example.test")


def write(folder: Path, records: int, signed: bool, algorithm: int) -> Path:
    (folder / "zone").write_text(ZONE)
    lines = [
        '[server]\ndns = ["127.0.0.1:0"]\ndatabase = ""\n',
        '[zones."dyn.example.test"]\nfile = "zone"\n',
    ]
    if signed:
        lines.append(
            '[zones."dyn.example.test".dnssec]\nenabled = true\nkey_directory = "keys"\n'
            f"algorithm = {algorithm}\n"
        )
    for i in range(records):
        lines.append(
            f'[zones."dyn.example.test".records.r{i}]\ntype = "A"\nttl = 30\n'
            f'targets = [{{ name = "a", value = "192.0.2.{i % 250 + 1}" }}]\n'
        )
    path = folder / "dynserver.toml"
    path.write_text("\n".join(lines))
    return path


def measure(records: int, rounds: int, signed: bool, algorithm: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        app = App(config.load(write(Path(folder), records, signed, algorithm)))
        runtime = app.runtime
        settle_gc()  # as `dynserver serve` does once serving: the zone out of the collector's reach
        times = []
        for round_ in range(rounds):
            name = parse_name(f"r{round_ % records}.dyn.example.test")
            value = f"198.51.100.{round_ % 250 + 1}"
            rrset = rrset_from_texts(name, 1, 30, [value])
            query = dns.message.make_query(dns.name.from_text(f"r{round_ % records}.dyn.example.test."), "A")
            query.use_edns(0, dns.flags.DO if signed else 0, 1232)
            runtime.answer(query.to_wire(), False)
            started = time.perf_counter()
            runtime._publish_nodes({ORIGIN: {name: {1: rrset}}})
            times.append(time.perf_counter() - started)
            reply = runtime.answer(query.to_wire(), False)
            assert isinstance(reply, bytes) and socket.inet_aton(value) in reply  # the new answer is live
        return times


def rrsig_cost(algorithm: int, number: int = 2000) -> tuple[float, float]:
    """Microseconds per RRSIG: this signer, and dns.dnssec.sign, over a 2-address A RRset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dns.dnssec
    now = time.time()
    key = generate(ORIGIN, algorithm, now)
    signer = ZoneSigner(ORIGIN, [key], Policy())
    ours = rrset_from_texts(parse_name("www.dyn.example.test"), 1, 300, ["192.0.2.1", "192.0.2.2"])
    started = time.perf_counter()
    for _ in range(number):
        signer.sign_rrset(ours, now)
    mine = (time.perf_counter() - started) / number * 1e6
    theirs_set = dns.rrset.from_text("www.dyn.example.test.", 300, "IN", "A", "192.0.2.1", "192.0.2.2")
    dnskey = dns.dnssec.make_dnskey(key.private.public_key(), algorithm, flags=257)
    origin = dns.name.from_text("dyn.example.test.")
    started = time.perf_counter()
    for _ in range(number):
        dns.dnssec.sign(theirs_set, key.private, origin, dnskey, inception=int(now), lifetime=86400)
    return mine, (time.perf_counter() - started) / number * 1e6


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[int(len(ms) * 0.9)]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"median {statistics.median(ms):.3f} ms  p90 {p90:.3f} ms  p99 {p99:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--algorithm", type=int, default=13, choices=(13, 15))
    args = parser.parse_args()
    unsigned = measure(args.records, args.rounds, False, args.algorithm)
    signed = measure(args.records, args.rounds, True, args.algorithm)
    print(f"{args.records} dynamic records, {args.rounds} answer changes each")
    print(f"unsigned: {summary(unsigned)}")
    print(f"signed (algorithm {args.algorithm}): {summary(signed)}")
    added = statistics.median(signed) - statistics.median(unsigned)
    print(f"signing adds (median): {added * 1000:.3f} ms")
    mine, theirs = rrsig_cost(args.algorithm)
    print(f"one RRSIG: {mine:.1f} us (dynserver.dnssec.signer), {theirs:.1f} us (dns.dnssec.sign)")


if __name__ == "__main__":
    main()
