"""Failover time with agents (issue 13), side by side with the server alone, in one run.

One command, run from the repository root:

    .venv/bin/python bench/failover_locations.py [--rounds 8] [--variants alone,agent,quorum2]
        [--kinds kill,fail]

Three set-ups of one record (``app``: APP1 at priority 1, APP2 at 2; an http monitor with
interval 0.5 s, timeout 0.25 s, consecutive_down/up 1, failback_delay 0), each with its
own dynserver (DNS and web on 127.0.0.71, .72, ...) and its own two backends (127.0.0.171
and up, each ``python -m tests.backends http``, a process of its own):

* alone: no [locations] table: the server decides alone, as before issue 13;
* agent: [locations] local = false, quorum = 1, one agent: every result the vote sees
  comes from the agent, over its stream and results POSTs;
* quorum2: [locations] quorum = 2, the server and two agents.

Agents are `dynserver agent run` processes on this machine, registered with `dynserver
agent add` (loopback: what is measured is dynserver's own cost, not a network's). Before
the rounds, every location must be fresh for both targets (GET /api/v1/locations).

Per round and kind, after the answer is APP1 and a settle of 0.3 s plus a point of the
check cycle (stratified as in failover_compare.py):

* kill: SIGKILL APP1; *failure → answer* is the time to the first changed answer (app A
  asked every 5 ms); most of it is the wait for the next check;
* fail: APP1 answers 503 from now on. *failure → answer* as above, and *check → answer*:
  from the arrival at APP1 of the check that decided (the first request after the switch;
  with quorum 2, the second: one from each of two locations) to the first changed answer.
  That is dynserver's own part: the check's end, for an agent its result's trip (POST,
  vote), the new snapshot and the poll's 5 ms. Its median minus the median of ``alone``
  is what an agent's result adds; issue 13's target: at most 50 ms on loopback.

Then APP1 is restored (a new process on the same address / 200 again) and the time until
the answer is APP1 again is *back*. Every process is stopped by PID, all traffic stays on
127.0.0.0/8, every wait is bounded; the CPU other processes used meanwhile is reported.
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
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchutil as bu
import failover_compare as fc

ZONE = fc.ZONE
FIRST_SERVER_HOST = 71  # servers on 127.0.0.71, .72, ...; backends on 127.0.0.171, 172, ...
FIRST_BACKEND_HOST = 171
INTERVAL_S = 0.5
TIMEOUT_S = 0.25
CYCLE_S = 0.95 * INTERVAL_S  # dynserver draws each wait between 90 % and 100 % of the interval
FRESH_TIMEOUT_S = 30.0
KINDS = ("kill", "fail")
TARGET_ADDED_S = 0.050  # issue 13: an agent's result adds at most this (median, loopback)


@dataclass(frozen=True)
class Variant:
    name: str
    settings: str
    locations: str | None  # the [locations] table, None for none
    agents: tuple[str, ...]
    need: int  # how many locations must see the failure: which request after it decides


VARIANTS = {
    v.name: v
    for v in (
        Variant("alone", "no [locations]: the server alone", None, (), 1),
        Variant("agent", "local = false, quorum 1, one agent", "quorum = 1\nlocal = false\n", ("east",), 1),
        Variant("quorum2", "the server + two agents, quorum 2", "quorum = 2\n", ("east", "west"), 2),
    )
}


class Backend(fc.Backend):
    """``python -m tests.backends http`` in the folder of ``arrivals`` (its requests.jsonl):
    its answer is switched by a control file there, and it logs every request with its
    arrival time (time.time(), not monotonic as http_ok_server.py)."""

    def start(self) -> None:
        argv = [sys.executable, "-m", "tests.backends", "http", "--host", self.address]
        argv += ["--port", str(self.port), "--state", str(self.arrivals.parent)]
        with self.log.open("ab") as log:
            self.proc = bu.start(argv, log, cwd=bu.REPO_DIR, pipe=True)
        bu.wait_line(self.proc, b"ready", fc.BACKEND_START_S)

    def status(self, code: int) -> None:
        """Answer ``code`` from the next request on (the file is replaced atomically)."""
        temporary = self.arrivals.parent / "control.json.tmp"
        temporary.write_text(json.dumps({"status": code}))
        os.replace(temporary, self.arrivals.parent / "control.json")

    def arrival_times(self, since: float) -> list[float]:
        if not self.arrivals.exists():
            return []
        lines = self.arrivals.read_text().splitlines()
        return sorted(t for t in (json.loads(line)["at"] for line in lines if line.strip()) if t >= since)


@dataclass
class Event:
    kind: str
    round: int
    fail_s: float | None  # failure -> first changed answer (None: timed out)
    check_s: float | None  # fail: the deciding check's arrival -> first changed answer
    back_s: float | None
    unanswered: int
    other_cpu_share: float


@dataclass
class Result:
    variant: Variant
    commands: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    other_cpu_share: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def times(self, kind: str, attr: str) -> list[float]:
        values = (getattr(e, attr) for e in self.events if e.kind == kind)
        return [v for v in values if v is not None]


def config_text(variant: Variant, setup: fc.Setup) -> str:
    monitor = fc.dynserver_config(setup, INTERVAL_S, TIMEOUT_S)
    if variant.locations is None:
        return monitor
    return f"[locations]\n{variant.locations}\n" + monitor


def dynserver(*args: str) -> str:
    """A dynserver command (agent add, credential add) run to its end; its output."""
    done = subprocess.run([bu.dynserver_binary(), *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip().splitlines() or ["no output"]
        raise bu.BenchError(f"dynserver {shlex.join(args[:2])} exited {done.returncode}: {said[-1]}")
    return done.stdout


def api(base: str, secret: str, path: str) -> Any:
    request = urllib.request.Request(f"{base}/api/v1{path}", headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())


def wait_fresh(base: str, secret: str, names: Sequence[str]) -> None:
    """Until every location is fresh for both targets: the vote counts all of them."""
    deadline = time.monotonic() + FRESH_TIMEOUT_S
    seen: Any = None
    while time.monotonic() < deadline:
        try:
            seen = api(base, secret, "/locations")
        except OSError as error:
            seen = str(error)
        else:
            fresh = {s["name"]: s["fresh_targets"] for s in seen["locations"]}
            if all(fresh.get(name) == 2 for name in names):
                return
        time.sleep(0.1)
    raise bu.BenchError(f"locations {list(names)} not fresh within {FRESH_TIMEOUT_S:.0f} s: {seen}")


def one_event(
    setup: fc.Setup, variant: Variant, backend: Backend, kind: str, rnd: int, settle: float
) -> Event:
    if not fc.wait_preferred(setup, fc.HEALTHY_TIMEOUT_S):
        raise bu.BenchError(
            f"app did not answer {setup.app1} within {fc.HEALTHY_TIMEOUT_S:.0f} s before a round"
        )
    time.sleep(settle)
    meter = bu.NoiseMeter()
    preferred = frozenset({setup.app1})
    failed_wall, failed_at = time.time(), time.monotonic()
    if kind == "kill":
        backend.signal(signal.SIGKILL)
        backend.reap()
    else:
        backend.status(503)
    fail_s, _, lost1 = fc.poll_until(setup, failed_at, lambda a: a != preferred)
    check_s = None
    if kind == "fail" and fail_s is not None:
        arrivals = backend.arrival_times(failed_wall)
        if len(arrivals) >= variant.need:
            check_s = failed_wall + fail_s - arrivals[variant.need - 1]
    if kind == "kill":
        backend.start()
    else:
        backend.status(200)
    restored_at = time.monotonic()
    back_s, _, lost2 = fc.poll_until(setup, restored_at, lambda a: a == preferred)
    return Event(kind, rnd, fail_s, check_s, back_s, lost1 + lost2, meter.other_share())


def start_all(
    variant: Variant, index: int, rundir: Path, result: Result, cleanup: ExitStack
) -> tuple[fc.Setup, Backend]:
    """Backends, the server and its agents, each stopped by ``cleanup``; once every location
    is fresh: the set-up and the preferred backend."""
    addr = f"127.0.0.{FIRST_SERVER_HOST + index}"
    app1, app2 = (f"127.0.0.{FIRST_BACKEND_HOST + 2 * index + k}" for k in (0, 1))
    hport = bu.common_tcp_port([app1, app2])
    setup = fc.Setup(variant.name, addr, bu.free_port(addr), rundir, app1, app2, hport)
    backends = []
    for address in (app1, app2):
        folder = rundir / f"backend-{address}"
        folder.mkdir()
        backends.append(Backend(address, hport, folder / "stderr.log", folder / "requests.jsonl"))
        cleanup.callback(backends[-1].stop)
        backends[-1].start()
    config = rundir / "dynserver.toml"
    config.write_text(config_text(variant, setup))
    stored = ["--config", str(config), "--database", str(rundir / "dynserver.db")]
    secret = dynserver("credential", "add", *stored, "--name", "bench", "--admin").splitlines()[-1].strip()
    http = f"{addr}:{bu.free_port(addr)}"
    commands = {
        "server": [bu.dynserver_binary(), "serve", *stored, "--dns", f"{addr}:{setup.port}", "--http", http]
    }
    for name in variant.agents:
        token = rundir / f"{name}.token"
        token.write_text(dynserver("agent", "add", *stored, "--name", name).splitlines()[-1] + "\n")
        commands[name] = [
            bu.dynserver_binary(),
            "agent",
            "run",
            "--server",
            f"http://{http}",
            "--token-file",
            str(token),
        ]
    for name, argv in commands.items():
        result.commands.append(shlex.join(argv))
        with (rundir / f"{name}.log").open("wb") as log:
            process = bu.start(argv, log, cwd=rundir)
        cleanup.callback(bu.stop, process)
        result.processes.append(process)
        if name == "server":
            bu.wait_soa(process, addr, setup.port, ZONE, fc.START_TIMEOUT_S)
    if variant.locations is not None:
        local = [] if "local = false" in variant.locations else ["local"]
        wait_fresh(f"http://{http}", secret, [*local, *variant.agents])
    return setup, backends[0]


def bench_variant(variant: Variant, index: int, args: argparse.Namespace) -> Result:
    """Start one server, its agents and backends, run the rounds, stop everything; never raises."""
    result = Result(variant)
    rundir = Path(tempfile.mkdtemp(prefix=f"dynlocations-{variant.name}-"))
    meter = bu.NoiseMeter()
    try:
        with ExitStack() as cleanup:
            setup, preferred = start_all(variant, index, rundir, result, cleanup)
            bu.progress(f"[{variant.name}] running: {' ; '.join(result.commands)}")
            rng = random.Random(args.seed)
            points = {kind: fc.stratified(rng, args.rounds) for kind in args.kinds}
            for rnd in range(1, args.rounds + 1):
                for kind in args.kinds:
                    settle = fc.MIN_SETTLE_S + points[kind][rnd - 1] * CYCLE_S
                    event = one_event(setup, variant, preferred, kind, rnd, settle)
                    bu.progress(f"[{variant.name}] round {rnd} {kind}: {describe(event)}")
                    result.events.append(event)
            if any(p.poll() is not None for p in result.processes):
                raise bu.BenchError("the server or an agent exited during the rounds")
    except (bu.BenchError, OSError, subprocess.SubprocessError) as exc:
        result.error = str(exc)
        tail = bu.log_tail(rundir / "server.log")
        bu.progress(f"[{variant.name}] FAILED: {exc}" + (f"\n--- server log tail:\n{tail}" if tail else ""))
    result.other_cpu_share = meter.other_share()
    result.notes += notes(result)
    if args.keep_tmp:
        bu.progress(f"[{variant.name}] kept {rundir}")
    else:
        shutil.rmtree(rundir, ignore_errors=True)
    return result


def describe(event: Event) -> str:
    return (
        f"answer after {bu.fmt(event.fail_s, '.3f')} s, check -> answer {bu.fmt(event.check_s, '.3f')} s, "
        f"back after {bu.fmt(event.back_s, '.3f')} s"
    )


def notes(result: Result) -> list[str]:
    found = [bu.noise_note(result.other_cpu_share, f"the {result.variant.name} rounds")]
    timeouts = sum(1 for e in result.events if e.fail_s is None)
    if timeouts:
        found.append(f"{timeouts} rounds without a change within {fc.PHASE_TIMEOUT_S:.0f} s")
    lost = sum(e.unanswered for e in result.events)
    if lost:
        found.append(f"{lost} polls got no reply within {fc.QUERY_TIMEOUT_S} s")
    return [note for note in found if note]


def cells(values: list[float], spec: str = ".3f") -> str:
    return f"{bu.fmt(bu.median(values), spec)} / {bu.fmt(max(values) if values else None, spec)}"


def table(results: Sequence[Result]) -> str:
    lines = [
        "| set-up | kill → answer, median / max (s) | 503 → answer, median / max (s) "
        "| check → answer, median / max (ms) | back, median kill / 503 (s) | rounds | other CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        name = f"{r.variant.name} ({r.variant.settings})"
        if r.error is not None:
            lines.append(f"| {name} | FAILED: {r.error} | | | | | |")
            continue
        checks = [1000 * v for v in r.times("fail", "check_s")]
        back = " / ".join(bu.fmt(bu.median(r.times(kind, "back_s")), ".3f") for kind in KINDS)
        rounds = max((e.round for e in r.events), default=0)
        row = [name, cells(r.times("kill", "fail_s")), cells(r.times("fail", "fail_s")), cells(checks, ".1f")]
        row += [back, str(rounds), f"{100 * r.other_cpu_share:.0f}%"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def verdicts(results: Sequence[Result]) -> list[str]:
    """Issue 13's target: each agent set-up's median check → answer minus the server alone's."""
    alone = next((r for r in results if r.variant.name == "alone" and r.error is None), None)
    base = bu.median(alone.times("fail", "check_s")) if alone else None
    lines = []
    for r in results:
        median = bu.median(r.times("fail", "check_s"))
        if r.variant.name == "alone" or r.error is not None or median is None or base is None:
            continue
        added = median - base
        verdict = "PASS" if added <= TARGET_ADDED_S else "MISS"
        lines.append(
            f"target {r.variant.name}: an agent's result adds {1000 * added:.1f} ms "
            f"(median check → answer {1000 * median:.1f} ms vs {1000 * base:.1f} ms alone) "
            f"<= 50 ms -> {verdict}"
        )
    return lines


def report(results: Sequence[Result], args: argparse.Namespace) -> str:
    lines = [
        f"command: {bu.invocation()}",
        f"dynserver: {bu.dynserver_version()}",
        f"{args.rounds} rounds per kind; interval {INTERVAL_S} s, timeout {TIMEOUT_S} s; app A polled every "
        f"{fc.POLL_S * 1000:.0f} ms; other CPU = CPU time of processes not started by this bench, "
        "share of one core",
        "",
        table(results),
        "",
        *verdicts(results),
    ]
    for r in results:
        lines += [f"command [{r.variant.name}]: {c}" for c in r.commands]
        lines += [f"note [{r.variant.name}]: {n}" for n in r.notes]
    return "\n".join(lines)


def subset(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated subset of ``allowed``."""

    def parse(text: str) -> list[str]:
        chosen = [part.strip() for part in text.split(",") if part.strip()]
        if unknown := sorted(set(chosen) - set(allowed)):
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {','.join(allowed)}")
        return chosen

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=8, help="failures of each kind per set-up (default 8)")
    parser.add_argument(
        "--variants", type=subset(list(VARIANTS)), default=list(VARIANTS), help="alone,agent,quorum2"
    )
    parser.add_argument("--kinds", type=subset(KINDS), default=list(KINDS), help="kill,fail (default both)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random settle times (default 1)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep each set-up's folder and logs")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = [bench_variant(VARIANTS[name], list(VARIANTS).index(name), args) for name in args.variants]
    print(report(results, args))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
