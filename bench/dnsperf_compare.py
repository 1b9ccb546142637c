"""DNS query throughput and CPU cost: dynserver side by side with peer servers.

One command, run from the repository root:

    .venv/bin/python bench/dnsperf_compare.py [--duration 10] [--servers dynserver,gdnsd,...]

For each server it renders the config templates in ``bench/peers/`` into a fresh temp
dir (127.0.0.x address, random free port, never 53), starts the server in the foreground
pinned to CPU 1 (``taskset -c 1``), waits until it answers, then runs dnsperf pinned to
CPU 0 twice with the query mix of ``bench/peers/queries.txt``:

* full load: queries per second, and server CPU (utime + stime of the server's whole
  process tree, from /proc) per answered query;
* a fixed rate of 100k queries per second (``-Q 100000``): server CPU per answered query.

``--mix rotate`` asks only ``rr`` A instead (``bench/peers/queries-rotate.txt``): four
addresses in every zone; in dynserver a dynamic record of four targets, unchecked, whose
answer rotates (issue 17), so the cost of rotating is measured against peers that keep
one order.

gdnsd (metafo + http_status) and PowerDNS (LUA ``ifurlup``) health-check the two backends
of ``app``, so the harness serves HTTP 200 on both backend addresses while it runs.

The machine may be shared: before each run the harness waits for CPUs 0-1 to be quiet,
measures what other processes (and the hypervisor) took during the run, re-runs a
disturbed measurement and flags it in the report if it stays disturbed.

Every process the harness starts is stopped by PID when it is done with it; all traffic
stays on 127.0.0.0/8. Only the standard library and dnspython are used.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.server
import json
import os
import re
import resource
import shlex
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
from benchutil import (
    CLK_TCK,
    display_path,
    dynserver_binary,
    fmt,
    free_port,
    invocation,
    log_tail,
    progress,
    stop,
    tree_cpu_seconds,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
QUERIES_FILE = PEERS_DIR / "queries.txt"
MIXES = {"default": QUERIES_FILE, "rotate": PEERS_DIR / "queries-rotate.txt"}
RR_ADDRESSES = ("192.0.2.21", "192.0.2.22", "192.0.2.23", "192.0.2.24")  # `rr` in every zone

ZONE = "dyn.example.test"
WWW_ADDRESS = "192.0.2.10"  # `www` in every zone template
APP1 = "127.0.0.101"  # preferred backend of `app`
APP2 = "127.0.0.102"  # second backend of `app`
FIRST_SERVER_HOST = 11  # servers listen on 127.0.0.11, .12, ...

SERVER_CPU = 1
CLIENT_CPU = 0
CLIENTS = 10
OUTSTANDING = 200
QUERY_TIMEOUT_S = 1
FIXED_RATE = 100_000
ALL_SERVERS = ("dynserver", "gdnsd", "nsd", "knot", "pdns")

# What dynserver must reach, relative to gdnsd (the fastest health-checking peer).
TARGET_QPS_RATIO = 0.8  # dynserver QPS >= 0.8 x gdnsd
TARGET_CPU_RATIO = 1.5  # dynserver CPU/query at 100k QPS <= 1.5 x gdnsd

PROBE_INTERVAL_S = 0.001  # the latency probe's pause between two queries

MAX_OTHER_LOAD = 0.10  # share of a core taken by others (processes, steal) before a run is flagged
QUIET_SAMPLE_S = 1.0

START_TIMEOUT_S = 20.0
APP_TIMEOUT_S = 10.0  # health checks: gdnsd's shortest interval is 2 s


class ServerFailed(Exception):
    """A server could not be started, did not answer, or died during a run."""


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Env:
    """Where one server under test lives: its address, port and scratch directory."""

    name: str
    addr: str
    port: int
    rundir: Path
    hport: int
    pdns_lua_mode: str
    mix: str = "default"

    @property
    def queries(self) -> Path:
        return MIXES[self.mix]

    def substitutions(self) -> dict[str, str]:
        return {
            "@ADDR@": self.addr,
            "@PORT@": str(self.port),
            "@RUNDIR@": str(self.rundir),
            "@NAME@": self.name,
            "@LUAMODE@": self.pdns_lua_mode,
            "@APP1@": APP1,
            "@APP2@": APP2,
            "@HPORT@": str(self.hport),
        }


def render(template: Path, dest: Path, env: Env) -> Path:
    """Copy a template to dest with every @PLACEHOLDER@ replaced; fail on a leftover one."""
    text = template.read_text()
    for key, value in env.substitutions().items():
        text = text.replace(key, value)
    leftover = re.findall(r"@[A-Z0-9]+@", text)
    if leftover:
        raise ServerFailed(f"{template}: unknown placeholders {sorted(set(leftover))}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest


def render_static_zone(env: Env, dest: Path) -> Path:
    return render(PEERS_DIR / "zones" / f"{ZONE}.zone.in", dest, env)


def mkdirs(*paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)


RRL_RATE = 10_000_000  # replies a second per key: far above dnsperf's ~250k in total


def prepare_dynserver(env: Env) -> list[str]:
    zone = render_static_zone(env, env.rundir / f"{ZONE}.zone")
    config = env.rundir / "dynserver.toml"
    records = ""
    if env.mix == "rotate":
        # `rr` as a dynamic record (its four static lines dropped): unchecked targets are up,
        # so it answers all four, in turn first.
        zone.write_text(
            "".join(line for line in zone.read_text().splitlines(True) if not line.startswith("rr "))
        )
        targets = ", ".join(f'{{ name = "t{i}", value = "{a}" }}' for i, a in enumerate(RR_ADDRESSES))
        records = f'\n[zones."{ZONE}".records.rr]\ntype = "A"\nttl = 300\ntargets = [{targets}]\n'
    # Response rate limiting on, as it ships, and dnsperf's address not exempt, so its cost
    # is measured (issue 15); its rate raised above anything dnsperf sends, so no reply
    # is limited and the answered counts stay comparable with the other servers'.
    config.write_text(
        f'[server]\ndns = ["{env.addr}:{env.port}"]\n\n[server.rrl]\nrate = {RRL_RATE}\n\n'
        f'[zones."{ZONE}"]\nfile = "{ZONE}.zone"\n{records}'
    )
    return [dynserver_binary(), "serve", "--config", str(config)]


def prepare_gdnsd(env: Env) -> list[str]:
    confdir = env.rundir / "gdnsd"
    render(PEERS_DIR / "gdnsd" / "config.in", confdir / "config", env)
    render(PEERS_DIR / "gdnsd" / f"{ZONE}.in", confdir / "zones" / ZONE, env)
    mkdirs(confdir / "run", confdir / "state")
    return ["gdnsd", "-c", str(confdir), "start"]


def prepare_nsd(env: Env) -> list[str]:
    config = render(PEERS_DIR / "nsd.conf.in", env.rundir / "nsd.conf", env)
    render_static_zone(env, env.rundir / "zones" / f"{ZONE}.zone")
    mkdirs(env.rundir / "nsd", env.rundir / "logs")
    return ["nsd", "-d", "-c", str(config)]


def prepare_knot(env: Env) -> list[str]:
    config = render(PEERS_DIR / "knot.conf.in", env.rundir / "knot.conf", env)
    render_static_zone(env, env.rundir / "zones" / f"{ZONE}.zone")
    mkdirs(env.rundir / "knot" / "db")
    return ["knotd", "-c", str(config)]


def prepare_pdns(env: Env) -> list[str]:
    confdir = env.rundir / env.name
    render(PEERS_DIR / "pdns.conf.in", confdir / "pdns.conf", env)
    render(PEERS_DIR / "named.conf.in", confdir / "named.conf", env)
    zone_in = PEERS_DIR / "zones" / f"{ZONE}.lua.zone.in"
    render(zone_in, env.rundir / "zones" / f"{ZONE}.lua.zone", env)
    return ["pdns_server", f"--config-dir={confdir}"]


PREPARE: dict[str, Callable[[Env], list[str]]] = {
    "dynserver": prepare_dynserver,
    "gdnsd": prepare_gdnsd,
    "nsd": prepare_nsd,
    "knot": prepare_knot,
    "pdns": prepare_pdns,
}


@dataclass(frozen=True)
class Flavour:
    """What one comparison sets up: how each server starts, what its answers must be, extra
    dnsperf options, and the peer the targets are measured against. This file's is PLAIN;
    bench/dnssec_compare.py reuses everything else with its own (signed zones, DO=1)."""

    prepare: Mapping[str, Callable[[Env], list[str]]]
    check: Callable[[str, int], list[str]]
    dnsperf_extra: tuple[str, ...] = ()
    reference: str = "gdnsd"


# --------------------------------------------------------------------------- processes


def children_cpu_seconds() -> float:
    """CPU time of the harness's reaped children (dnsperf: the servers are reaped last)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def irq_time_accounting() -> bool:
    """Whether the kernel keeps interrupt time out of the interrupted process's stime
    (CONFIG_IRQ_TIME_ACCOUNTING). Without it (tick-based accounting), the loopback network
    work done in softirq is charged to whichever process was running: server or dnsperf."""
    for path in (Path("/proc/config.gz"), Path(f"/boot/config-{os.uname().release}")):
        with contextlib.suppress(OSError):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt") as config:
                return "CONFIG_IRQ_TIME_ACCOUNTING=y" in config.read()
    return False


IRQ_TIME_ACCOUNTING = irq_time_accounting()


def cpu_times(cpus: Sequence[int]) -> tuple[float, float, float]:
    """Time the given CPUs spent since boot on behalf of processes, in interrupts, and
    stolen by the hypervisor, from /proc/stat. Interrupt time counts as process time unless
    the kernel accounts it apart (then no process is charged for it)."""
    process = interrupt = stolen = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, values[:8])
            process += user + nice + system + (0 if IRQ_TIME_ACCOUNTING else irq + softirq)
            interrupt += irq + softirq
            stolen += steal
    return process / CLK_TCK, interrupt / CLK_TCK, stolen / CLK_TCK


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds at one instant, to subtract from a later sample."""

    server: float  # the server's process tree
    client: float  # the harness's reaped children: dnsperf
    process: float  # CPUs 0-1, charged to any process
    interrupt: float  # CPUs 0-1, in hard and soft interrupts (part of `process`, or not)
    steal: float  # CPUs 0-1, time the hypervisor ran something else

    @classmethod
    def now(cls, server_pid: int) -> CpuSample:
        process, interrupt, steal = cpu_times((SERVER_CPU, CLIENT_CPU))
        return cls(tree_cpu_seconds(server_pid), children_cpu_seconds(), process, interrupt, steal)

    def others_since(self, earlier: CpuSample) -> tuple[float, float]:
        """(CPU time of other processes on CPUs 0-1, steal time) between two samples."""
        mine = (self.server - earlier.server) + (self.client - earlier.client)
        return max(0.0, self.process - earlier.process - mine), self.steal - earlier.steal


@contextlib.contextmanager
def running(argv: Sequence[str], cwd: Path, log: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server pinned to SERVER_CPU in the foreground; stop it on exit."""
    proc = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), *argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C reaches the harness, which stops it in order
    )
    try:
        yield proc
    finally:
        stop(proc)


# --------------------------------------------------------------------------- HTTP backend


class _OkHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET/HEAD with 200: the health-checked backends of `app`."""

    body = b"ok\n"

    def _ok(self, with_body: bool) -> None:
        # gdnsd's http_status closes the connection once it has read the status line.
        with contextlib.suppress(ConnectionError):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            if with_body:
                self.wfile.write(self.body)

    def do_GET(self) -> None:
        self._ok(with_body=True)

    def do_HEAD(self) -> None:
        self._ok(with_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_backends(addrs: Sequence[str]) -> Iterator[int]:
    """Serve HTTP 200 on the same free port of every address; yield that port."""
    servers = bind_http_servers(addrs)
    try:
        for server in servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        yield servers[0].server_address[1]
    finally:
        for server in servers:
            server.shutdown()  # returns once serve_forever has stopped
            server.server_close()


class _LocalHTTPServer(http.server.ThreadingHTTPServer):
    """No PTR query for its own name (http.server's server_bind calls socket.getfqdn):
    the bench sends nothing outside 127.0.0.0/8."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def bind_http_servers(addrs: Sequence[str]) -> list[http.server.ThreadingHTTPServer]:
    """One HTTP server per address, all on the same free port."""
    for _ in range(20):
        port = free_port(addrs[0])
        servers: list[http.server.ThreadingHTTPServer] = []
        try:
            for addr in addrs:
                servers.append(_LocalHTTPServer((addr, port), _OkHandler))
        except OSError:
            for server in servers:
                server.server_close()
            continue
        for server in servers:
            server.daemon_threads = True
        return servers
    raise RuntimeError("no common free port for the HTTP backends")


# --------------------------------------------------------------------------- DNS checks


def ask(addr: str, port: int, name: str, rdtype: str) -> dns.message.Message | None:
    query = dns.message.make_query(name, rdtype)
    try:
        return dns.query.udp(query, addr, port=port, timeout=0.3)
    except (dns.exception.DNSException, OSError):
        return None


def addresses(reply: dns.message.Message | None) -> set[str]:
    if reply is None:
        return set()
    return {rd.to_text() for rrset in reply.answer for rd in rrset}


def wait_ready(proc: subprocess.Popen[bytes], addr: str, port: int) -> None:
    """Wait until the server answers the SOA of the zone."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with code {proc.returncode} before answering")
        reply = ask(addr, port, ZONE, "SOA")
        if reply is not None and reply.rcode() == dns.rcode.NOERROR and reply.answer:
            return
        time.sleep(0.1)
    raise ServerFailed(f"no SOA answer on {addr}:{port} within {START_TIMEOUT_S:.0f} s")


def wait_app_healthy(addr: str, port: int) -> bool:
    """Wait until `app` answers the preferred backend only (health checks have run)."""
    deadline = time.monotonic() + APP_TIMEOUT_S
    while time.monotonic() < deadline:
        if addresses(ask(addr, port, f"app.{ZONE}", "A")) == {APP1}:
            return True
        time.sleep(0.2)
    return False


def check_answers(addr: str, port: int) -> list[str]:
    """Compare the answers to the query mix with what every zone template says."""
    problems = []
    rr = ask(addr, port, f"rr.{ZONE}", "A")
    if addresses(rr) != set(RR_ADDRESSES):
        problems.append(f"rr A: expected {sorted(RR_ADDRESSES)}, got {sorted(addresses(rr))}")
    www = ask(addr, port, f"www.{ZONE}", "A")
    if addresses(www) != {WWW_ADDRESS}:
        problems.append(f"www A: expected {WWW_ADDRESS}, got {sorted(addresses(www))}")
    nope = ask(addr, port, f"nope.{ZONE}", "A")
    if nope is None or nope.rcode() != dns.rcode.NXDOMAIN:
        got = "no reply" if nope is None else dns.rcode.to_text(nope.rcode())
        problems.append(f"nope A: expected NXDOMAIN, got {got}")
    return problems


PLAIN = Flavour(PREPARE, check_answers)


# --------------------------------------------------------------------------- dnsperf


@dataclass(frozen=True)
class Run:
    """One dnsperf run against one server, with the server's CPU time over it."""

    qps: float
    sent: int
    completed: int
    lost: int
    rcodes: dict[str, int]
    cpu_s: float
    cpu_us_per_query: float
    wall_s: float  # how long dnsperf ran (its -l, plus start-up and the last replies' timeout)
    client_cpu_s: float  # dnsperf's own CPU time: near `wall_s` means dnsperf was the limit
    other_cpu_s: float  # CPU time of other processes on the two CPUs: should be near 0
    steal_s: float  # time the hypervisor took the two CPUs away: should be near 0
    interrupt_s: float  # interrupt time on the two CPUs: mostly the loopback traffic itself
    command: str
    # Round-trip times seen by the latency probe beside dnsperf (fixed-rate runs only).
    probe_p50_us: float | None = None
    probe_p99_us: float | None = None
    probe_lost: int = 0

    @property
    def disturbed_s(self) -> float:
        return self.other_cpu_s + self.steal_s


def dnsperf_argv(
    addr: str,
    port: str,
    duration: int,
    rate: int | None,
    queries: Path = QUERIES_FILE,
    extra: Sequence[str] = (),
) -> list[str]:
    """dnsperf's command line; ``extra``: more options (bench/dnssec_compare.py: -D, DO=1)."""
    argv = ["taskset", "-c", str(CLIENT_CPU), "dnsperf", "-s", addr, "-p", port]
    argv += ["-d", display_path(queries), "-c", str(CLIENTS), "-q", str(OUTSTANDING)]
    argv += ["-t", str(QUERY_TIMEOUT_S), "-l", str(duration), *extra]
    return argv + (["-Q", str(rate)] if rate else [])


def parse_dnsperf(output: str) -> tuple[float, int, int, int, dict[str, int]]:
    """(qps, sent, completed, lost, response codes) from dnsperf's summary."""

    def number(label: str) -> str:
        match = re.search(rf"{label}:\s+([\d.]+)", output)
        if match is None:
            raise ServerFailed(f"dnsperf output has no '{label}':\n{output[-2000:]}")
        return match.group(1)

    codes_line = re.search(r"Response codes:\s+(.*)", output)
    codes = dict(re.findall(r"([A-Z]+) (\d+)", codes_line.group(1))) if codes_line else {}
    return (
        float(number("Queries per second")),
        int(number("Queries sent")),
        int(number("Queries completed")),
        int(number("Queries lost")),
        {code: int(count) for code, count in codes.items()},
    )


def wait_quiet(proc: subprocess.Popen[bytes], max_wait: float) -> bool:
    """Wait (at most max_wait s) until nothing but the server runs on the two CPUs."""
    deadline = time.monotonic() + max_wait
    while True:
        before = CpuSample.now(proc.pid)
        time.sleep(QUIET_SAMPLE_S)
        other, steal = CpuSample.now(proc.pid).others_since(before)
        if other + steal <= MAX_OTHER_LOAD * QUIET_SAMPLE_S:
            return True
        if time.monotonic() >= deadline:
            return False


def measure(
    proc: subprocess.Popen[bytes],
    addr: str,
    port: int,
    duration: int,
    rate: int | None,
    queries: Path = QUERIES_FILE,
    extra: Sequence[str] = (),
) -> Run:
    """Run dnsperf once; charge the server's CPU time over the run to the answered queries."""
    argv = dnsperf_argv(addr, str(port), duration, rate, queries, extra)
    probe = LatencyProbe(addr, port, duration) if rate else None
    before = CpuSample.now(proc.pid)
    started = time.monotonic()
    if probe is not None:
        probe.start()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    wall_s = time.monotonic() - started
    if probe is not None:
        probe.join()
    after = CpuSample.now(proc.pid)
    if proc.poll() is not None:
        raise ServerFailed(f"server exited (code {proc.returncode}) during dnsperf")
    if done.returncode != 0:
        raise ServerFailed(f"dnsperf failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    qps, sent, completed, lost, rcodes = parse_dnsperf(done.stdout)
    if completed == 0:
        raise ServerFailed("dnsperf got no answers")
    cpu_s = after.server - before.server
    other_s, steal_s = after.others_since(before)
    return Run(
        qps=qps,
        sent=sent,
        completed=completed,
        lost=lost,
        rcodes=rcodes,
        cpu_s=cpu_s,
        cpu_us_per_query=cpu_s * 1e6 / completed,
        wall_s=wall_s,
        client_cpu_s=after.client - before.client,
        other_cpu_s=other_s,
        steal_s=steal_s,
        interrupt_s=after.interrupt - before.interrupt,
        command=shlex.join(argv),
        probe_p50_us=probe.percentile(50) if probe is not None else None,
        probe_p99_us=probe.percentile(99) if probe is not None else None,
        probe_lost=probe.lost if probe is not None else 0,
    )


class LatencyProbe(threading.Thread):
    """Beside a fixed-rate dnsperf run, one query (`www` A) every PROBE_INTERVAL_S from
    CPU 0, each waited for, its round trip timed: dnsperf 2.10 prints only the mean and
    standard deviation of its latencies, this gives percentiles. Its ~1k queries a
    second are answered by the server too (about 1 % on top of dnsperf's 100k)."""

    def __init__(self, addr: str, port: int, duration: float) -> None:
        super().__init__(daemon=True)
        self.addr, self.port, self.duration = addr, port, duration
        self.rtts: list[float] = []
        self.lost = 0

    def run(self) -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {CLIENT_CPU})  # this thread only, beside dnsperf
        query = bytearray(dns.message.make_query(f"www.{ZONE}", "A").to_wire())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((self.addr, self.port))
            sock.settimeout(0.5)
            time.sleep(0.5)  # dnsperf has started
            end = time.monotonic() + self.duration - 1.0
            ident = 0
            while time.monotonic() < end:
                ident = (ident + 1) & 0xFFFF
                query[0:2] = ident.to_bytes(2, "big")
                sent = time.perf_counter()
                sock.send(query)
                try:
                    while sock.recv(512)[:2] != query[:2]:  # a late reply to an earlier one
                        pass
                    self.rtts.append(time.perf_counter() - sent)
                except TimeoutError:
                    self.lost += 1
                time.sleep(PROBE_INTERVAL_S)

    def percentile(self, p: float) -> float | None:
        if not self.rtts:
            return None
        ordered = sorted(self.rtts)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1e6


# --------------------------------------------------------------------------- one server


@dataclass
class ServerResult:
    """Every round's runs of one server; the report uses the median run of each kind."""

    name: str
    full_runs: list[Run] = field(default_factory=list)
    fixed_runs: list[Run] = field(default_factory=list)
    error: str | None = None  # the last failure, if any round failed
    notes: list[str] = field(default_factory=list)
    command: str = ""

    @property
    def full(self) -> Run | None:
        """The full-load run with the median QPS."""
        return median_run(self.full_runs, lambda run: run.qps)

    @property
    def fixed(self) -> Run | None:
        """The fixed-rate run with the median CPU per query."""
        return median_run(self.fixed_runs, lambda run: run.cpu_us_per_query)

    @property
    def measured(self) -> bool:
        return self.full is not None and self.fixed is not None


def median_run(runs: Sequence[Run], key: Callable[[Run], float]) -> Run | None:
    """The run in the middle by key (the lower middle of an even number of runs)."""
    if not runs:
        return None
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


def bench_server(
    name: str,
    addr: str,
    hport: int,
    args: argparse.Namespace,
    result: ServerResult,
    flavour: Flavour = PLAIN,
) -> None:
    """Start one server in a fresh temp dir, measure it twice, stop it; never raises."""
    rundir = Path(tempfile.mkdtemp(prefix=f"dynbench-{name}-"))
    log_path = rundir / "server.log"
    try:
        env = Env(name, addr, free_port(addr), rundir, hport, args.pdns_lua_mode, args.mix)
        start_and_measure(env, log_path, args, result, flavour)
    except (ServerFailed, OSError, subprocess.SubprocessError) as exc:
        result.error = str(exc)
        result.notes.append(f"failed: {exc}")
        tail = log_tail(log_path)
        progress(f"[{name}] FAILED: {exc}" + (f"\n--- server log tail:\n{tail}" if tail else ""))
    finally:
        if args.keep_tmp:
            progress(f"[{name}] kept {rundir}")
        else:
            shutil.rmtree(rundir, ignore_errors=True)


def start_and_measure(
    env: Env, log_path: Path, args: argparse.Namespace, result: ServerResult, flavour: Flavour = PLAIN
) -> None:
    argv = flavour.prepare[env.name](env)
    result.command = shlex.join(["taskset", "-c", str(SERVER_CPU), *argv])
    if shutil.which(argv[0]) is None:
        raise ServerFailed(f"{argv[0]} not found")
    progress(f"[{env.name}] {result.command}  (on {env.addr}:{env.port})")
    with log_path.open("wb") as log, running(argv, env.rundir, log) as proc:
        wait_ready(proc, env.addr, env.port)
        if not wait_app_healthy(env.addr, env.port):
            result.notes.append(f"app A did not settle on {APP1} within {APP_TIMEOUT_S:.0f} s")
        result.notes += flavour.check(env.addr, env.port)
        extra = flavour.dnsperf_extra
        if args.warmup:
            measure(proc, env.addr, env.port, args.warmup, None, env.queries, extra)
        full = quiet_run(proc, env, args, None, extra)
        fixed = quiet_run(proc, env, args, FIXED_RATE, extra)
    result.full_runs.append(full)
    result.fixed_runs.append(fixed)
    result.notes += run_notes(full) + run_notes(fixed)


def quiet_run(
    proc: subprocess.Popen[bytes],
    env: Env,
    args: argparse.Namespace,
    rate: int | None,
    extra: Sequence[str] = (),
) -> Run:
    """Measure once; if other processes got in the way, retry and keep the quietest run."""
    label = "full load" if rate is None else f"at {rate:,} QPS"
    runs: list[Run] = []
    for attempt in range(1 + args.retries):
        if not wait_quiet(proc, args.quiet_wait):
            progress(f"[{env.name}] CPUs still busy after {args.quiet_wait} s: measuring anyway")
        run = measure(proc, env.addr, env.port, args.duration, rate, env.queries, extra)
        progress(f"[{env.name}] {label} (try {attempt + 1}): {describe(run)}")
        runs.append(run)
        if run.disturbed_s <= MAX_OTHER_LOAD * run.wall_s:
            break
    return min(runs, key=lambda r: r.disturbed_s)


def share(run: Run, seconds: float) -> str:
    """CPU seconds over a run as a share of one core."""
    return f"{100 * seconds / run.wall_s:.0f}%"


def describe(run: Run) -> str:
    """One progress line: the result, and who used CPUs 0-1."""
    return (
        f"{run.qps:,.0f} QPS, server {run.cpu_us_per_query:.2f} µs CPU/query "
        f"({share(run, run.cpu_s)} of a core), "
        f"dnsperf {share(run, run.client_cpu_s)} of a core, "
        f"interrupts {share(run, run.interrupt_s)}, "
        f"other processes {share(run, run.other_cpu_s)}, "
        f"steal {share(run, run.steal_s)}"
    )


def run_notes(run: Run) -> list[str]:
    """What makes a run suspect: a busy machine, error responses."""
    notes = []
    if run.disturbed_s > MAX_OTHER_LOAD * run.wall_s:
        notes.append(
            f"other processes used {share(run, run.other_cpu_s)} of a core and the "
            f"hypervisor stole {share(run, run.steal_s)} on CPUs {CLIENT_CPU}-{SERVER_CPU} "
            f"during `{run.command}`: the machine was not quiet, numbers are unreliable"
        )
    bad = {k: v for k, v in run.rcodes.items() if k not in ("NOERROR", "NXDOMAIN")}
    if bad:
        notes.append(f"unexpected response codes {bad} in `{run.command}`")
    return notes


# --------------------------------------------------------------------------- report


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def table(results: Sequence[ServerResult]) -> str:
    """A Markdown table: readable in a terminal, pasteable into docs/benchmarks.md."""
    dyn = next((r for r in results if r.name == "dynserver" and r.measured), None)
    header = (
        "| server | QPS | lost | CPU µs/query, full load | QPS at -Q 100000 "
        "| CPU µs/query at 100k | QPS dyn/peer | CPU dyn/peer (full) "
        "| CPU dyn/peer (100k) |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r.full is None or r.fixed is None:
            lines.append(f"| {r.name} | FAILED: {r.error} | | | | | | | |")
            continue
        lost = 100.0 * r.full.lost / max(r.full.sent, 1)
        cells = [
            r.name,
            f"{r.full.qps:,.0f}",
            f"{lost:.2f}%",
            f"{r.full.cpu_us_per_query:.2f}",
            f"{r.fixed.qps:,.0f}",
            f"{r.fixed.cpu_us_per_query:.2f}",
        ]
        if dyn is None or dyn is r or dyn.full is None or dyn.fixed is None:
            cells += ["-", "-", "-"]
        else:
            cells += [
                fmt(ratio(dyn.full.qps, r.full.qps), ".2f"),
                fmt(ratio(dyn.full.cpu_us_per_query, r.full.cpu_us_per_query), ".2f"),
                fmt(ratio(dyn.fixed.cpu_us_per_query, r.fixed.cpu_us_per_query), ".2f"),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(results: Sequence[ServerResult], reference: str = "gdnsd") -> list[str]:
    """The two goals of dynserver against the reference peer, with PASS/MISS or why it is n/a."""
    by_name = {r.name: r for r in results if r.measured}
    dyn, ref = by_name.get("dynserver"), by_name.get(reference)
    goals = [
        f"dynserver QPS >= {TARGET_QPS_RATIO} x {reference}",
        f"dynserver CPU/query at {FIXED_RATE // 1000}k QPS <= {TARGET_CPU_RATIO} x {reference}",
    ]
    if dyn is None or ref is None or not (dyn.full and dyn.fixed and ref.full and ref.fixed):
        missing = " and ".join(n for n in ("dynserver", reference) if n not in by_name)
        return [f"{goal}: n/a ({missing} not measured)" for goal in goals]
    qps = dyn.full.qps / ref.full.qps
    cpu = dyn.fixed.cpu_us_per_query / ref.fixed.cpu_us_per_query
    return [
        f"{goals[0]}: {qps:.2f} x -> {'PASS' if qps >= TARGET_QPS_RATIO else 'MISS'}",
        f"{goals[1]}: {cpu:.2f} x -> {'PASS' if cpu <= TARGET_CPU_RATIO else 'MISS'}",
    ]


def report(results: Sequence[ServerResult], args: argparse.Namespace, flavour: Flavour = PLAIN) -> str:
    queries = MIXES[args.mix]
    dnsperf = shlex.join(dnsperf_argv("ADDR", "PORT", args.duration, None, queries, flavour.dnsperf_extra))
    rounds = "" if args.rounds == 1 else f"; {args.rounds} rounds, median run shown"
    lines = [
        f"command: {invocation()}",
        f"dnsperf: {dnsperf}   (and again with -Q {FIXED_RATE}{rounds})",
        f"servers pinned to CPU {SERVER_CPU}, dnsperf to CPU {CLIENT_CPU}; CPU = utime+stime "
        "of the server's process tree / answered queries",
        "",
        table(results),
        "",
        *targets(results, flavour.reference),
    ]
    for r in results:
        runs = [run for run in r.fixed_runs if run.probe_p99_us is not None]
        if runs:
            shown = ", ".join(f"{run.probe_p50_us:.0f} / {run.probe_p99_us:.0f}" for run in runs)
            lines.append(
                f"latency at {FIXED_RATE // 1000}k QPS [{r.name}], p50 / p99 µs of a probe asking "
                f"once a millisecond beside dnsperf, round by round: {shown}"
            )
    for r in results:
        lines += [f"note [{r.name}]: {note}" for note in dict.fromkeys(r.notes)]
    return "\n".join(lines)


def write_json(
    path: Path, results: Sequence[ServerResult], args: argparse.Namespace, flavour: Flavour = PLAIN
) -> None:
    data = {
        "command": invocation(),
        "duration_s": args.duration,
        "fixed_rate_qps": FIXED_RATE,
        "server_cpu": SERVER_CPU,
        "client_cpu": CLIENT_CPU,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "targets": targets(results, flavour.reference),
        "rounds": args.rounds,
        "mix": args.mix,
        "results": [
            {**asdict(r), "full": r.full and asdict(r.full), "fixed": r.fixed and asdict(r.fixed)}
            for r in results
        ],
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- main


def parse_args(
    argv: Sequence[str] | None = None, servers: Sequence[str] = ALL_SERVERS, doc: str | None = __doc__
) -> argparse.Namespace:
    """The options of this bench, shared by bench/dnssec_compare.py (its own servers and doc)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds per dnsperf run (two runs per server; default 10)"
    )
    parser.add_argument(
        "--servers", default=",".join(servers), help=f"comma-separated subset of {','.join(servers)}"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure all servers this many times, in turn, and report each one's median run "
        "(the speed of a shared VM drifts over minutes; default 1)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="seconds of unmeasured load before the runs (0 = none; default 1)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=int,
        default=30,
        help="before each run, wait up to this many seconds for other "
        "processes to leave CPUs 0-1 alone (default 30)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="re-run a measurement disturbed by other processes up to N times (default 2)",
    )
    parser.add_argument(
        "--pdns-lua-mode",
        choices=("shared", "yes"),
        default="shared",
        help="PowerDNS enable-lua-records (default shared)",
    )
    parser.add_argument(
        "--mix",
        choices=sorted(MIXES),
        default="default",
        help="the queries: default (www, app, nope, SOA) or rotate (`rr` A: four addresses, "
        "rotating in dynserver)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--keep-tmp", action="store_true", help="keep each server's rendered config dir and log"
    )
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(args.servers) - set(servers))
    if unknown:
        parser.error(f"unknown servers {unknown}; choose from {', '.join(servers)}")
    if args.duration < 1 or args.rounds < 1:
        parser.error("--duration and --rounds must be >= 1")
    if args.retries < 0 or args.quiet_wait < 0 or args.warmup < 0:
        parser.error("--retries, --quiet-wait and --warmup must be >= 0")
    return args


def preflight() -> str | None:
    """Why the bench cannot run at all on this machine, or None."""
    if not {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0):
        return f"needs CPUs {CLIENT_CPU} and {SERVER_CPU} (dnsperf and server on separate cores)"
    for tool in ("taskset", "dnsperf"):
        if shutil.which(tool) is None:
            return f"{tool} not found (make debs-bench installs it)"
    return None


def main(
    argv: Sequence[str] | None = None,
    flavour: Flavour = PLAIN,
    servers: Sequence[str] = ALL_SERVERS,
    doc: str | None = __doc__,
) -> int:
    """Measure every server in turn, print the report; bench/dnssec_compare.py passes its own
    flavour, servers and doc."""
    args = parse_args(argv, servers, doc)
    problem = preflight()
    if problem:
        print(f"{Path(sys.argv[0]).stem}: {problem}", file=sys.stderr)
        return 2
    results = [ServerResult(name) for name in args.servers]
    with http_backends([APP1, APP2]) as hport:
        for round_ in range(args.rounds):
            if args.rounds > 1:
                progress(f"--- round {round_ + 1} of {args.rounds}")
            for index, result in enumerate(results):
                addr = f"127.0.0.{FIRST_SERVER_HOST + index}"
                bench_server(result.name, addr, hport, args, result, flavour)
    print(report(results, args, flavour))
    if args.json:
        write_json(args.json, results, args, flavour)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
