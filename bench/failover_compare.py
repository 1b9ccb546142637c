"""Failover time: dynserver side by side with PowerDNS (LUA ifurlup) and gdnsd (metafo).

One command, run from the repository root:

    .venv/bin/python bench/failover_compare.py [--rounds 10] [--servers pdns,gdnsd,dynserver,dynserver-fast]

Each server gets its own DNS address (127.0.0.51, .52, ...) and its own pair of HTTP
backends (127.0.0.151/.152, .153/.154, ...), each backend a separate process
(``bench/http_ok_server.py``) answering 200 on the health path. ``app.dyn.example.test``
answers the preferred backend (APP1) while it is healthy, else the backup (APP2).

For each server, N rounds of each failure kind:

* kill: SIGKILL the preferred backend (connections are refused at once);
* hang: SIGSTOP it (connections are accepted by the kernel, never answered).

First the server's check cycle is measured: the mean time between the checks that reach
the preferred backend (it logs their arrivals). A round waits until ``app`` answers APP1,
then 0..1 check cycle more (so the failure falls at a random point of the cycle, as a real
failure does: the rounds of a kind take one random point in each n-th of the cycle, in
random order), fails the backend and asks the server for
``app`` A every 5 ms (dnspython, UDP, 0.1 s timeout) until the answer changes: the
time from the signal to the first changed answer. It then restores the backend (a new
process on the same address once it listens / SIGCONT) and measures the time until the
answer is APP1 again.

Servers and settings (each peer at the fastest settings it accepts):

* pdns: PowerDNS, ``ifurlup`` (check timeout: its default, 2 s), ``lua-health-checks-interval=1``,
  ``enable-lua-records=shared``; templates in ``bench/peers/``;
* gdnsd: ``metafo`` with an ``http_status`` monitor, interval 2 s, timeout 1 s (its minimum);
* dynserver: interval 1 s, timeout 0.5 s, consecutive_down 1, failback_delay 0;
* dynserver-fast: interval 0.25 s, timeout 0.2 s, consecutive_down 1, failback_delay 0.

Every process is stopped by PID when the bench is done with it, all traffic stays on
127.0.0.0/8, and every wait is bounded. The CPU time other processes used meanwhile is
reported: on a busy machine the numbers are flagged as unreliable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import benchutil as bu

ZONE = "dyn.example.test"
APP = f"app.{ZONE}"
FIRST_SERVER_HOST = 51  # servers on 127.0.0.51, .52, ...; backends on 127.0.0.151/152, ...
FIRST_BACKEND_HOST = 151
ALL_SERVERS = ("pdns", "gdnsd", "dynserver", "dynserver-fast")
KINDS = ("kill", "hang")

POLL_S = 0.005  # adds POLL_S / 2 on average to every measured time
QUERY_TIMEOUT_S = 0.1
MIN_SETTLE_S = 0.3  # after the answer is APP1, wait at least this, plus 0..1 check cycle
CYCLE_SAMPLES = 12  # configured intervals over which the check cycle is measured ...
MIN_CYCLE_WINDOW_S = 5.0  # ... and at least this long
ARRIVAL_FLUSH_S = 1.2  # the backends flush their arrival logs once a second
START_TIMEOUT_S = 20.0
HEALTHY_TIMEOUT_S = 20.0
PHASE_TIMEOUT_S = 20.0  # a failover or failback slower than this counts as "timed out"
BACKEND_START_S = 10.0

# Targets of issue 3, for dynserver: median flip time (both failure kinds) <= this.
TARGETS = {"dynserver": 1.0, "dynserver-fast": 0.4}


class Failed(Exception):
    """A server or backend did not start or misbehaved: this server is skipped."""


# --------------------------------------------------------------------------- backends


@dataclass
class Backend:
    """One HTTP backend process on its own address, restartable on the same port."""

    address: str
    port: int
    log: Path
    arrivals: Path  # one line per check that reached it: "<index> <monotonic time>"
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            log.write(b"--- start\n")
            log.flush()
            argv = bu.ok_server_argv([self.address], self.port, ["--log", str(self.arrivals)])
            self.proc = bu.start(argv, log, pipe=True)
        bu.wait_line(self.proc, b"ready", BACKEND_START_S)

    def arrival_times(self, since: float) -> list[float]:
        """When checks reached this backend since `since` (flushed once a second)."""
        if not self.arrivals.exists():
            return []
        times = (float(line.split()[1]) for line in self.arrivals.read_text().splitlines() if line.strip())
        return sorted(t for t in times if t >= since)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def reap(self) -> None:
        """After SIGKILL: collect the dead process."""
        assert self.proc is not None
        self.proc.wait(bu.STOP_TIMEOUT_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            bu.stop(self.proc)
            self.proc = None


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Setup:
    """Where one server under test lives and what it checks."""

    name: str
    addr: str
    port: int
    rundir: Path
    app1: str
    app2: str
    hport: int

    def substitutions(self) -> dict[str, str]:
        return {
            "@ADDR@": self.addr,
            "@PORT@": str(self.port),
            "@RUNDIR@": str(self.rundir),
            "@NAME@": self.name,
            "@LUAMODE@": "shared",
            "@APP1@": self.app1,
            "@APP2@": self.app2,
            "@HPORT@": str(self.hport),
        }


@dataclass(frozen=True)
class Variant:
    name: str
    settings: str
    interval: float  # configured check interval (the cycle, unless measured otherwise)
    prepare: Callable[[Setup], list[str]]


def prepare_pdns(setup: Setup) -> list[str]:
    confdir = setup.rundir / setup.name
    values = setup.substitutions()
    bu.render(bu.PEERS_DIR / "pdns.conf.in", confdir / "pdns.conf", values)
    bu.render(bu.PEERS_DIR / "named.conf.in", confdir / "named.conf", values)
    zone_in = bu.PEERS_DIR / "zones" / f"{ZONE}.lua.zone.in"
    bu.render(zone_in, setup.rundir / "zones" / f"{ZONE}.lua.zone", values)
    return ["pdns_server", f"--config-dir={confdir}"]


def prepare_gdnsd(setup: Setup) -> list[str]:
    confdir = setup.rundir / "gdnsd"
    values = setup.substitutions()
    bu.render(bu.PEERS_DIR / "gdnsd" / "config.in", confdir / "config", values)
    bu.render(bu.PEERS_DIR / "gdnsd" / f"{ZONE}.in", confdir / "zones" / ZONE, values)
    for sub in ("run", "state"):
        (confdir / sub).mkdir(parents=True, exist_ok=True)
    return ["gdnsd", "-c", str(confdir), "start"]


def dynserver_config(setup: Setup, interval: float, timeout: float) -> str:
    return f"""# failover_compare.py: {setup.name}
[server.rrl]
exempt = ["127.0.0.0/8"]  # the poller asks every 5 ms from loopback: never rate limited here

[monitors.web]
type = "http"
port = {setup.hport}
path = "/"
interval = {interval}
timeout = {timeout}
consecutive_down = 1
consecutive_up = 1
failback_delay = 0

[zones."{ZONE}"]
nameservers = ["ns1.{ZONE}"]
glue = {{ "ns1.{ZONE}" = ["{setup.addr}"] }}

[zones."{ZONE}".records.app]
type = "A"
monitor = "web"
ttl = 5
targets = [
  {{ name = "app1", value = "{setup.app1}", priority = 1 }},
  {{ name = "app2", value = "{setup.app2}", priority = 2 }},
]
"""


def dynserver_preparer(interval: float, timeout: float) -> Callable[[Setup], list[str]]:
    def prepare(setup: Setup) -> list[str]:
        config = setup.rundir / "dynserver.toml"
        config.write_text(dynserver_config(setup, interval, timeout))
        listen = f"{setup.addr}:{setup.port}"
        return [bu.dynserver_binary(), "serve", "--config", str(config), "--dns", listen, "--database", ""]

    return prepare


VARIANTS = {
    v.name: v
    for v in (
        Variant(
            "pdns",
            "PowerDNS ifurlup, lua-health-checks-interval=1, check timeout 2 s (default), lua shared",
            1.0,
            prepare_pdns,
        ),
        Variant("gdnsd", "gdnsd metafo + http_status, interval 2 s, timeout 1 s", 2.0, prepare_gdnsd),
        Variant(
            "dynserver",
            "interval 1 s, timeout 0.5 s, consecutive_down 1",
            1.0,
            dynserver_preparer(1.0, 0.5),
        ),
        Variant(
            "dynserver-fast",
            "interval 0.25 s, timeout 0.2 s, consecutive_down 1",
            0.25,
            dynserver_preparer(0.25, 0.2),
        ),
    )
}


# --------------------------------------------------------------------------- measuring


@dataclass
class Event:
    """One failure and its restore."""

    kind: str
    round: int
    fail_s: float | None  # failure -> first changed answer (None: timed out)
    new_answer: list[str]
    back_s: float | None  # restore -> preferred answer again (None: timed out)
    unanswered: int  # polls without a reply (timeouts) during both phases
    other_cpu_share: float  # other processes' CPU, share of a core, over the round


def app_answer(setup: Setup) -> frozenset[str] | None:
    reply = bu.ask(setup.addr, setup.port, APP, "A", timeout=QUERY_TIMEOUT_S)
    return None if reply is None else bu.addresses(reply)


def poll_until(
    setup: Setup, since: float, done: Callable[[frozenset[str]], bool]
) -> tuple[float | None, frozenset[str], int]:
    """Ask every POLL_S until done(answer); (seconds since `since`, answer, unanswered)."""
    unanswered = 0
    tick = time.monotonic()
    while time.monotonic() - since < PHASE_TIMEOUT_S:
        answer = app_answer(setup)
        now = time.monotonic()
        if answer is None:
            unanswered += 1
        elif done(answer):
            return now - since, answer, unanswered
        tick += POLL_S
        time.sleep(max(0.0, tick - time.monotonic()))
    return None, frozenset(), unanswered


def wait_preferred(setup: Setup, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app_answer(setup) == frozenset({setup.app1}):
            return True
        time.sleep(POLL_S)
    return False


def one_event(setup: Setup, backend: Backend, kind: str, rnd: int, settle: float) -> Event:
    """Fail the preferred backend once (kill or hang), measure, restore, measure."""
    if not wait_preferred(setup, HEALTHY_TIMEOUT_S):
        raise Failed(f"app did not answer {setup.app1} within {HEALTHY_TIMEOUT_S:.0f} s before a round")
    time.sleep(settle)
    meter = bu.NoiseMeter()
    failed_at = time.monotonic()
    backend.signal(signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
    preferred = frozenset({setup.app1})
    fail_s, answer, lost1 = poll_until(setup, failed_at, lambda a: a != preferred)
    if kind == "kill":
        backend.reap()
        backend.start()
    else:
        backend.signal(signal.SIGCONT)
    restored_at = time.monotonic()
    back_s, _, lost2 = poll_until(setup, restored_at, lambda a: a == preferred)
    return Event(kind, rnd, fail_s, sorted(answer), back_s, lost1 + lost2, meter.other_share())


@dataclass
class ServerResult:
    name: str
    settings: str
    command: str = ""
    address: str = ""
    backends: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    other_cpu_share: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    cycle_s: float | None = None  # mean time between checks, measured at the backend

    def times(self, kind: str, attr: str) -> list[float]:
        values = (getattr(e, attr) for e in self.events if e.kind == kind)
        return [v for v in values if v is not None]

    def timeouts(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind and e.fail_s is None)


def stratified(rng: random.Random, n: int) -> list[float]:
    """n points of the check cycle (0..1), one at random in each n-th, in random order.

    The failure time within the cycle decides most of a failover time (the wait for the
    next check), so plain random points make the median of 10 rounds move by ~0.1 s
    between runs; one point per stratum measures the same median with far less spread.
    """
    points = [(i + rng.random()) / n for i in range(n)]
    rng.shuffle(points)
    return points


def measure_cycle(variant: Variant, backend: Backend) -> tuple[float | None, str]:
    """The server's mean time between checks of the preferred backend, from the arrivals
    it logs over CYCLE_SAMPLES configured intervals (at least MIN_CYCLE_WINDOW_S);
    (cycle or None when it could not be measured: the interval stands in, how it went).

    A failure strikes at a random moment, independent of the checks: the wait for the
    next check then follows the server's real cycle, not its configured interval (they
    differ when a server jitters its checks). Failing at anchor + uniform(0, W) after a
    check reproduces that only when W is the mean cycle; with W = the interval and
    checks every 0.95 interval, the median wait comes out ~5 % of an interval too long.
    """
    since = time.monotonic()
    time.sleep(max(CYCLE_SAMPLES * variant.interval, MIN_CYCLE_WINDOW_S) + ARRIVAL_FLUSH_S)
    arrivals = backend.arrival_times(since)
    if len(arrivals) >= 4:
        cycle = (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)
        if 0.5 * variant.interval <= cycle <= 1.5 * variant.interval:
            return cycle, f"check cycle {cycle:.3f} s, measured over {len(arrivals)} checks at the backend"
        return None, (
            f"check cycle measured as {cycle:.3f} s ({len(arrivals)} arrivals): implausible for interval "
            f"{variant.interval} s, so the interval is used"
        )
    return None, f"only {len(arrivals)} checks reached the backend: the interval is the cycle"


def run_rounds(
    setup: Setup, variant: Variant, backend: Backend, cycle: float, args: argparse.Namespace
) -> list[Event]:
    rng = random.Random(args.seed)
    phases = {kind: stratified(rng, args.rounds) for kind in args.kinds}
    events = []
    for rnd in range(1, args.rounds + 1):
        for kind in args.kinds:
            settle = MIN_SETTLE_S + phases[kind][rnd - 1] * cycle
            event = one_event(setup, backend, kind, rnd, settle)
            bu.progress(f"[{setup.name}] round {rnd} {kind}: {describe(event)}")
            events.append(event)
    return events


def describe(event: Event) -> str:
    return (
        f"new answer {event.new_answer} after {bu.fmt(event.fail_s, '.3f')} s, "
        f"back after {bu.fmt(event.back_s, '.3f')} s, {event.unanswered} polls unanswered, "
        f"other processes {100 * event.other_cpu_share:.0f}% of a core"
    )


def bench_server(variant: Variant, index: int, args: argparse.Namespace) -> ServerResult:
    """Start one server with its two backends, run its rounds, stop everything; never raises."""
    result = ServerResult(variant.name, variant.settings)
    rundir = Path(tempfile.mkdtemp(prefix=f"dynfailover-{variant.name}-"))
    backends: list[Backend] = []
    server: subprocess.Popen[bytes] | None = None
    log_path = rundir / "server.log"
    meter = bu.NoiseMeter()
    try:
        addr = f"127.0.0.{FIRST_SERVER_HOST + index}"
        app1, app2 = (f"127.0.0.{FIRST_BACKEND_HOST + 2 * index + k}" for k in (0, 1))
        hport = bu.common_tcp_port([app1, app2])
        setup = Setup(variant.name, addr, bu.free_port(addr), rundir, app1, app2, hport)
        result.address = f"{addr}:{setup.port}"
        result.backends = [f"{app1}:{hport}", f"{app2}:{hport}"]
        for address in (app1, app2):
            backends.append(
                Backend(address, hport, rundir / f"backend-{address}.log", rundir / f"arrivals-{address}.txt")
            )
            backends[-1].start()
        argv = variant.prepare(setup)
        result.command = shlex.join(argv)
        if shutil.which(argv[0]) is None:
            raise Failed(f"{argv[0]} not found")
        bu.progress(f"[{variant.name}] {result.command}  (on {result.address}, backends {result.backends})")
        with log_path.open("wb") as log:
            server = bu.start(argv, log, cwd=rundir)
        bu.wait_soa(server, addr, setup.port, ZONE, START_TIMEOUT_S)
        if not wait_preferred(setup, HEALTHY_TIMEOUT_S):
            raise Failed(f"app did not answer {app1} within {HEALTHY_TIMEOUT_S:.0f} s after start")
        cycle, how = measure_cycle(variant, backends[0])
        bu.progress(f"[{variant.name}] {how}")
        if cycle is None:
            result.notes.append(how)
        result.cycle_s = cycle
        result.events = run_rounds(setup, variant, backends[0], cycle or variant.interval, args)
        if server.poll() is not None:
            raise Failed(f"server exited with code {server.returncode} during the rounds")
    except (Failed, bu.BenchError, OSError, subprocess.SubprocessError) as exc:
        result.error = str(exc)
        tail = bu.log_tail(log_path)
        bu.progress(f"[{variant.name}] FAILED: {exc}" + (f"\n--- server log tail:\n{tail}" if tail else ""))
    finally:
        if server is not None:
            bu.stop(server)
        for backend in backends:
            backend.stop()
        result.other_cpu_share = meter.other_share()
        note = bu.noise_note(result.other_cpu_share, f"the {variant.name} rounds")
        if note:
            result.notes.append(note)
        if args.keep_tmp:
            bu.progress(f"[{variant.name}] kept {rundir}")
        else:
            shutil.rmtree(rundir, ignore_errors=True)
    result.notes += answer_notes(result)
    return result


def answer_notes(result: ServerResult) -> list[str]:
    """Anything odd: timeouts, a changed answer that is not the backup alone, lost polls."""
    notes = []
    backup = result.backends[1].split(":")[0] if len(result.backends) > 1 else None
    for kind in KINDS:
        if result.timeouts(kind):
            count = result.timeouts(kind)
            notes.append(f"{kind}: {count} rounds without a change in {PHASE_TIMEOUT_S:.0f} s")
    odd = {tuple(e.new_answer) for e in result.events if e.fail_s is not None and e.new_answer != [backup]}
    if odd:
        notes.append(f"changed answers other than the backup alone: {sorted(odd)}")
    lost = sum(e.unanswered for e in result.events)
    if lost:
        notes.append(f"{lost} polls got no reply within {QUERY_TIMEOUT_S} s")
    noisy = sum(1 for e in result.events if e.other_cpu_share > bu.NOISY_SHARE)
    if noisy:
        notes.append(f"{noisy} of {len(result.events)} rounds ran while other processes used > 10% of a core")
    return notes


# --------------------------------------------------------------------------- report


def stat_cells(result: ServerResult, kind: str) -> str:
    values = result.times(kind, "fail_s")
    if not values:
        return "-"
    text = f"{bu.fmt(bu.median(values))} / {bu.fmt(max(values))}"
    return text + (f" ({result.timeouts(kind)} timed out)" if result.timeouts(kind) else "")


def table(results: Sequence[ServerResult]) -> str:
    """A Markdown table, readable in a terminal and pasteable into docs/benchmarks.md."""
    lines = [
        "| server | settings | kill → answer, median / max (s) | hang → answer, median / max (s) "
        "| back, median (s) kill / hang | check cycle (s) | rounds | other CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error is not None:
            lines.append(f"| {r.name} | {r.settings} | FAILED: {r.error} | | | | | |")
            continue
        back = " / ".join(bu.fmt(bu.median(r.times(kind, "back_s"))) for kind in KINDS)
        rounds = max((e.round for e in r.events), default=0)
        cycle = bu.fmt(r.cycle_s, ".3f")
        cells = [r.name, r.settings, stat_cells(r, "kill"), stat_cells(r, "hang"), back, cycle, str(rounds)]
        cells.append(f"{100 * r.other_cpu_share:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(results: Sequence[ServerResult]) -> list[str]:
    lines = []
    for r in results:
        if r.name not in TARGETS or r.error is not None:
            continue
        limit = TARGETS[r.name]
        for kind in KINDS:
            med = bu.median(r.times(kind, "fail_s"))
            if med is None:
                continue
            verdict = "PASS" if med <= limit and not r.timeouts(kind) else "MISS"
            goal = f"target {r.name} ({r.settings}): {kind} median {med:.2f} s <= {limit} s"
            lines.append(f"{goal} -> {verdict}")
    return lines


def report(results: Sequence[ServerResult], args: argparse.Namespace) -> str:
    lines = [
        f"command: {bu.invocation()}",
        f"dynserver: {bu.dynserver_version()}",
        f"{args.rounds} rounds per failure kind; app A polled every {POLL_S * 1000:.0f} ms "
        f"(UDP, {QUERY_TIMEOUT_S} s timeout); other CPU = CPU time of processes not started by this "
        "bench, share of one core",
        "",
        table(results),
        "",
        *targets(results),
    ]
    for r in results:
        if r.command:
            lines.append(f"server [{r.name}]: {r.command}")
        lines += [f"note [{r.name}]: {note}" for note in r.notes]
    return "\n".join(lines)


def write_json(path: Path, results: Sequence[ServerResult], args: argparse.Namespace) -> None:
    data = {
        "command": bu.invocation(),
        "dynserver_version": bu.dynserver_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rounds": args.rounds,
        "poll_s": POLL_S,
        "targets": targets(results),
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rounds", type=int, default=10, help="failures of each kind per server (default 10)"
    )
    parser.add_argument(
        "--servers", default=",".join(ALL_SERVERS), help=f"comma-separated subset of {','.join(ALL_SERVERS)}"
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="kill,hang (default both)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random settle times (default 1)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--keep-tmp", action="store_true", help="keep each server's config dir and log")
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if unknown := sorted(set(args.servers) - set(ALL_SERVERS)):
        parser.error(f"unknown servers {unknown}; choose from {', '.join(ALL_SERVERS)}")
    if unknown := sorted(set(args.kinds) - set(KINDS)):
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    for name in args.servers:
        results.append(bench_server(VARIANTS[name], ALL_SERVERS.index(name), args))
    print(report(results, args))
    if args.json:
        write_json(args.json, results, args)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
