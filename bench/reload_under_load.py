"""Reload under load: dnsperf at a fixed rate against dynserver while it is reloaded
again and again with alternating edits; no query may be lost, and every answer must be
one of the two configs' answers.

One command, run from the repository root:

    .venv/bin/python bench/reload_under_load.py [--rate 20000] [--reloads 100] [--via control]

The config has a static record (``www``, from the master file) and a dynamic record
``app`` whose one target's value alternates between 192.0.2.1 and 192.0.2.2: each
reload writes the other value into the file (atomically: a temp file, then rename) and
asks the server to reload, through the control socket (``--via control``, as `dynserver
reload` does, waiting for the reply) or by SIGHUP (``--via sighup``, waiting for the
reload's log line). dynserver is pinned to CPU 1 and dnsperf to CPU 0, as in
dnsperf_compare.py; dnsperf sends ``app`` and ``www`` A queries at ``--rate`` for the
whole run, and its counters give the lost queries. Beside it a dnspython loop asks for
``app`` one query at a time and records every answer, so each answer is checked
against the two configs (dnsperf counts answers but does not read them).

Passes when dnsperf lost 0 queries, every dnsperf answer was NOERROR, every recorded
answer was {192.0.2.1} or {192.0.2.2} (and ``www`` never changed), and every reload was
live. Exit status 1 otherwise. Every process it starts is stopped by PID; all traffic
stays on 127.0.0.0/8. Only the standard library and dnspython.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
from benchutil import (
    NoiseMeter,
    display_path,
    dynserver_binary,
    dynserver_version,
    free_port,
    invocation,
    log_tail,
    noise_note,
    progress,
    start,
    stop,
    wait_soa,
)
from dnsperf_compare import CLIENT_CPU, CLIENTS, OUTSTANDING, QUERY_TIMEOUT_S, SERVER_CPU, parse_dnsperf

ZONE = "dyn.example.test"
VALUES = ("192.0.2.1", "192.0.2.2")  # the target's value in config A and config B
WWW = "192.0.2.10"  # a static record every answer must keep
HOST = "127.0.0.31"
WARMUP_S = 1.0  # dnsperf runs alone this long before the first reload, and after the last
START_TIMEOUT_S = 20.0
REPLY_TIMEOUT_S = 30.0  # one reload, from the request to its reply (or log line)
CHECKER_TIMEOUT_S = 1.0  # the answer loop's wait for one reply: dnsperf's -t

MASTER = f"""$ORIGIN {ZONE}.
$TTL 300
@    IN SOA ns1 hostmaster 1 3600 600 86400 60
     IN NS  ns1
ns1  IN A   192.0.2.53
www  IN A   {WWW}
"""

CONFIG = """# reload_under_load.py: `app` alternates between two values, one per reload.
[server]
dns = ["{host}:{port}"]

[server.rrl]
exempt = ["127.0.0.0/8"]  # dnsperf asks from loopback: rate limiting must not drop what is measured

[zones."{zone}"]
file = "zone"

[zones."{zone}".records.app]
type = "A"
ttl = 30
targets = [
  {{ name = "one", value = "{value}", priority = 1 }},
]
"""


@dataclass
class Answers:
    """What the dnspython loop saw: every answer to ``app`` and ``www``, and timeouts."""

    app: Counter[frozenset[str]] = field(default_factory=Counter)
    www: Counter[frozenset[str]] = field(default_factory=Counter)
    rcodes: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    flips: int = 0  # how often an app answer differed from the one before: the edits seen

    def wrong(self) -> dict[str, int]:
        """Answers that are neither config's, as text -> count."""
        allowed = {frozenset({value}) for value in VALUES}
        out = {f"app {sorted(a)}": n for a, n in self.app.items() if a not in allowed}
        out |= {f"www {sorted(a)}": n for a, n in self.www.items() if a != frozenset({WWW})}
        out |= {f"rcode {code}": n for code, n in self.rcodes.items() if code != "NOERROR"}
        return out


def ask_forever(port: int, answers: Answers, done: threading.Event) -> None:
    """One query at a time (app, then www, ...) until ``done``: each answer recorded."""
    names = (f"app.{ZONE}.", f"www.{ZONE}.")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        count = 0
        last: frozenset[str] | None = None
        while not done.is_set():
            name = names[count % 2]
            count += 1
            query = dns.message.make_query(name, "A")
            try:
                reply = dns.query.udp(query, HOST, port=port, timeout=CHECKER_TIMEOUT_S, sock=sock)
            except dns.exception.Timeout:
                answers.timeouts += 1
                continue
            values = frozenset(r.to_text() for rrset in reply.answer for r in rrset)
            answers.rcodes[dns.rcode.to_text(reply.rcode())] += 1
            if name.startswith("www."):
                answers.www[values] += 1
                continue
            answers.app[values] += 1
            answers.flips += last is not None and values != last
            last = values


def write_config(path: Path, port: int, value: str) -> None:
    """Atomically, as an edit is written: the server never reads half a file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(CONFIG.format(host=HOST, port=port, zone=ZONE, value=value))
    os.replace(temporary, path)


def reload_by_control(control: Path) -> tuple[bool, float, str]:
    """(live, duration reported, errors) from one request on the control socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(REPLY_TIMEOUT_S)
        sock.connect(str(control))
        sock.sendall(b'{"command": "reload"}\n')
        with sock.makefile("rb") as stream:
            reply = json.loads(stream.readline())
    return bool(reply["ok"]), float(reply["duration"]), "; ".join(reply["errors"])


_RELOADED = re.compile(rb"event=(reloaded|reload_failed) via=sighup [^\n]*?(?:duration=([\d.]+))?\n")


class SignalReloads:
    """Reloads by SIGHUP; each one's result read from the log (only what is new since the
    last one: rereading the whole file every few ms took the CPU the load needed)."""

    def __init__(self, server: subprocess.Popen[bytes], log: Path) -> None:
        self.server = server
        self.log = log
        self.offset = 0
        self.pending = b""

    def __call__(self) -> tuple[bool, float, str]:
        os.kill(self.server.pid, signal.SIGHUP)
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        with open(self.log, "rb") as stream:
            while time.monotonic() < deadline:
                stream.seek(self.offset)
                chunk = stream.read()
                self.offset += len(chunk)
                self.pending += chunk
                found = _RELOADED.search(self.pending)
                if found is not None:
                    self.pending = self.pending[found.end() :]
                    live = found.group(1) == b"reloaded"
                    return live, float(found.group(2) or 0), "" if live else "see the log"
                self.pending = self.pending[self.pending.rfind(b"\n") + 1 :]
                time.sleep(0.005)
        return False, REPLY_TIMEOUT_S, "no reload line in the log"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=20_000, help="dnsperf queries per second (-Q)")
    parser.add_argument("--reloads", type=int, default=100, help="how many reloads (alternating edits)")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds from one reload's start to the next's"
    )
    parser.add_argument("--via", choices=("control", "sighup"), default="control")
    parser.add_argument(
        "--names", type=int, default=0, help="static names added to the zone (h0, h1, ...): a larger zone"
    )
    parser.add_argument(
        "--duration",
        type=int,
        help="dnsperf's seconds (default: the reloads' time plus 3 s); with --reloads 0, a baseline",
    )
    parser.add_argument("--keep-tmp", action="store_true", help="keep the config, zone and log")
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("needs CPUs 0 and 1 (dnsperf and the server on separate cores)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="reload-bench-"))
    try:
        return measure(args, folder)
    finally:
        if args.keep_tmp:
            print(f"  kept: {display_path(folder)}")
        else:
            shutil.rmtree(folder)


def measure(args: argparse.Namespace, folder: Path) -> int:
    (folder / "zone").write_text(
        MASTER + "".join(f"h{i} IN A 198.51.100.{i % 250 + 1}\n" for i in range(args.names))
    )
    queries = folder / "queries.txt"
    queries.write_text(f"app.{ZONE} A\nwww.{ZONE} A\n")
    config = folder / "dynserver.toml"
    port = free_port(HOST)
    write_config(config, port, VALUES[0])
    log = folder / "dynserver.log"
    # The whole run: warm-up, the reloads at their interval, and as long again after.
    duration = args.duration or int(2 * WARMUP_S + args.reloads * args.interval + 0.999) + 1
    dnsperf = ["taskset", "-c", str(CLIENT_CPU), "dnsperf", "-s", HOST, "-p", str(port)]
    dnsperf += ["-d", str(queries), "-c", str(CLIENTS), "-q", str(OUTSTANDING)]
    dnsperf += ["-t", str(QUERY_TIMEOUT_S), "-l", str(duration), "-Q", str(args.rate)]
    serve = [dynserver_binary(), "serve", "--config", str(config)]

    answers = Answers()
    done = threading.Event()
    results: list[tuple[bool, float, str]] = []
    late = 0.0
    with open(log, "wb") as out:
        server = start(serve, out, cpu=SERVER_CPU)
    try:
        wait_soa(server, HOST, port, ZONE, START_TIMEOUT_S)
        control = folder / "dynserver.control"
        reload = SignalReloads(server, log) if args.via == "sighup" else lambda: reload_by_control(control)
        # The harness beside dnsperf, not beside the server it measures.
        os.sched_setaffinity(0, {CLIENT_CPU})
        checker = threading.Thread(target=ask_forever, args=(port, answers, done), daemon=True)
        checker.start()
        progress(f"dnsperf at {args.rate} qps for {duration} s; {args.reloads} reloads via {args.via}")
        noise = NoiseMeter([CLIENT_CPU, SERVER_CPU])  # others' share of the two CPUs: a loss's suspect
        load = subprocess.Popen(dnsperf, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(WARMUP_S)
        begin = time.monotonic()
        for number in range(args.reloads):
            write_config(config, port, VALUES[(number + 1) % 2])
            results.append(reload())
            wait = begin + (number + 1) * args.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                late = max(late, -wait)
        reloading = time.monotonic() - begin
        output, errors = load.communicate(timeout=duration + 30)
        others = noise.other_share()
        done.set()
        checker.join(5)
        if server.poll() is not None:
            raise SystemExit(f"dynserver exited (code {server.returncode}):\n{log_tail(log)}")
    finally:
        done.set()
        stop(server)
    if load.returncode != 0:
        print(f"dnsperf failed ({load.returncode}): {errors.strip()[-500:]}", file=sys.stderr)
        return 1
    qps, sent, completed, lost, rcodes = parse_dnsperf(output)
    live = sum(ok for ok, _, _ in results)
    durations = sorted(d for ok, d, _ in results if ok)
    wrong = answers.wrong()
    ended_in_time = reloading + WARMUP_S < duration

    print(
        f"reload under load: {args.reloads} reloads via {args.via}, dnsperf at -Q {args.rate}, "
        f"zone of {args.names + 4} names"
    )
    print(f"  dynserver {dynserver_version()}; command: {invocation()}")
    print(f"  dnsperf: {shlex.join(dnsperf).replace(str(folder), '$TMP')}")
    print(f"  dnsperf: sent {sent}, completed {completed}, lost {lost}, {qps:.0f} qps, codes {rcodes}")
    print(
        f"  reloads: {live} of {len(results)} live in {reloading:.1f} s"
        + (
            f"; reload time median {statistics.median(durations) * 1000:.1f} ms, "
            f"max {durations[-1] * 1000:.1f} ms"
            if durations
            else ""
        )
        + (f"; at most {late * 1000:.0f} ms behind the {args.interval} s schedule" if late else "")
    )
    seen = ", ".join(f"{sorted(a)[0] if a else 'empty'} {n}" for a, n in sorted(answers.app.items(), key=str))
    print(
        f"  answers read: {sum(answers.app.values())} app ({seen}), {sum(answers.www.values())} www; "
        f"{answers.flips} changes seen; wrong {sum(wrong.values())}{f' {wrong}' if wrong else ''}; "
        f"timeouts {answers.timeouts}"
    )
    print(f"  other processes on CPUs {CLIENT_CPU}-{SERVER_CPU}: {100 * others:.0f}% of a core")
    note = noise_note(others, "the run")
    if note:
        print(f"  note: {note}")
    for ok, _, error in results:
        if not ok:
            print(f"  a reload failed: {error}")
            break
    lost_anywhere = lost + answers.timeouts
    passed = not lost_anywhere and set(rcodes) <= {"NOERROR"} and not wrong and live == len(results)
    passed = passed and ended_in_time
    if not ended_in_time:
        print("  the reloads outlasted dnsperf's run: use a larger --interval or fewer --reloads")
    print(
        f"  {'PASS' if passed else 'FAIL'}: lost 0, every answer one of the two configs', every reload live"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
