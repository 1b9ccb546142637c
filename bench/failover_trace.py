"""Where a hang failover's time goes: the wait for the next check, the check's timeout,
and dynserver's own part (from the check's end to the answer a client sees).

One command, run from the repository root:

    .venv/bin/python bench/failover_trace.py [--rounds 12]

failover_compare.py times a failover from outside: signal to changed answer. This bench
also looks inside, to tell dynserver's own delay from what the settings make inevitable.
It runs ``dynserver serve`` (interval 1 s, timeout 0.5 s, consecutive_down 1: the
settings of issue 3's target) in a Python process that first wraps the scheduler and the
runtime to log a monotonic timestamp: each check (start, end, result) and each snapshot swap. The clock
is CLOCK_MONOTONIC, shared by every process on the machine, so the bench compares the
log with its own times. Per round it hangs the preferred backend (SIGSTOP) at a random
moment, asks dynserver for ``app`` A every 2 ms until the answer changes, and splits the
time into:

* wait: signal -> start of the first check that fails (where the check cycle stands);
* timeout: that check's duration minus the configured timeout (how late it gave up);
* to swap: its end -> the new snapshot in place (state machine, policy, rebuild);
* to client: the swap -> the first changed answer the bench received (includes up to one
  2 ms poll).

Every process is stopped by PID, all traffic stays on 127.0.0.0/8, every wait is bounded.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import benchutil as bu
import failover_compare

ZONE, APP = failover_compare.ZONE, failover_compare.APP  # and its dynserver config
SERVER, APP1, APP2 = "127.0.0.61", "127.0.0.161", "127.0.0.162"
INTERVAL, TIMEOUT = 1.0, 0.5
POLL_S = 0.002
PHASE_TIMEOUT_S = 10.0
START_TIMEOUT_S = 20.0

# Runs in the child (`--serve`): wrap where the scheduler starts and ends a check and
# Runtime.swap, then serve. Plain HTTP checks run as http.Exchange (no coroutine), every
# other kind in a task: both start in the scheduler and end in Scheduler._finished, which
# is where the result is in (before it is handed to the runtime; with on_results, the
# hand-over after the loop pass is part of "to swap").
TRACED_SERVE = """
import sys, time
import dynserver.runtime as runtime_module
import dynserver.health.http as http_module
import dynserver.health.scheduler as scheduler_module
from dynserver.cli import main

trace = open(sys.argv[1], "w", buffering=1)
starts = {}

exchange_start = http_module.Exchange.start

def traced_start(self, address, port, request, timeout):
    starts[address] = time.monotonic()
    return exchange_start(self, address, port, request, timeout)

start_task = scheduler_module.Scheduler._start_task

def traced_task(self, key, due):
    starts[key.address] = time.monotonic()
    return start_task(self, key, due)

finished = scheduler_module.Scheduler._finished

def traced_finished(self, key, due, result):
    end = time.monotonic()
    trace.write(f"check {key.address} {starts.pop(key.address, end):.6f} {end:.6f} {int(result.ok)}\\n")
    return finished(self, key, due, result)

swap = runtime_module.Runtime.swap

def traced_swap(self, snapshot):
    swap(self, snapshot)
    trace.write(f"swap {time.monotonic():.6f}\\n")

http_module.Exchange.start = traced_start
scheduler_module.Scheduler._start_task = traced_task
scheduler_module.Scheduler._finished = traced_finished
runtime_module.Runtime.swap = traced_swap
sys.exit(main(sys.argv[2:]))
"""


def answer(port: int) -> frozenset[str]:
    return bu.addresses(bu.ask(SERVER, port, APP, "A", timeout=0.1))


def wait_answer(port: int, wanted: frozenset[str], poll: float) -> float:
    """Poll until the answer is `wanted`; the time it first was."""
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while time.monotonic() < deadline:
        if answer(port) == wanted:
            return time.monotonic()
        time.sleep(poll)
    raise bu.BenchError(f"{APP} did not answer {sorted(wanted)} within {PHASE_TIMEOUT_S:.0f} s")


def read_trace(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def checked_up(path: Path) -> set[str]:
    """The addresses that have passed a check so far."""
    return {row[1] for row in read_trace(path) if row[0] == "check" and row[4] == "1"}


def split_round(trace: list[list[str]], hung_at: float, seen_at: float) -> tuple[float, ...]:
    """(total, wait, timeout, to swap, to client) of one hang, from the trace."""
    checks = [row for row in trace if row[0] == "check" and row[1] == APP1 and float(row[3]) > hung_at]
    failed = [(float(row[2]), float(row[3])) for row in checks if row[4] == "0"]
    if not failed:
        raise bu.BenchError(f"no failed check of {APP1} after the hang in the trace: {checks[-3:]}")
    start, end = failed[0]
    swaps = [float(row[1]) for row in trace if row[0] == "swap" and float(row[1]) >= end]
    if not swaps:
        raise bu.BenchError(f"no snapshot swap after the failed check ended at {end:.6f}")
    return (seen_at - hung_at, start - hung_at, end - start - TIMEOUT, swaps[0] - end, seen_at - swaps[0])


def run(args: argparse.Namespace) -> int:
    rundir = Path(tempfile.mkdtemp(prefix="dynfailover-trace-"))
    hport = bu.common_tcp_port([APP1, APP2])
    port = bu.free_port(SERVER)
    setup = failover_compare.Setup("dynserver", SERVER, port, rundir, APP1, APP2, hport)
    (rundir / "dynserver.toml").write_text(failover_compare.dynserver_config(setup, INTERVAL, TIMEOUT))
    trace_path = rundir / "trace.txt"
    procs: list[subprocess.Popen[bytes]] = []
    rng = random.Random(args.seed)
    rows: list[tuple[float, ...]] = []
    try:
        for address in (APP1, APP2):
            with (rundir / f"backend-{address}.log").open("wb") as log:
                procs.append(bu.start(bu.ok_server_argv([address], hport), log, pipe=True))
            bu.wait_line(procs[-1], b"ready", 10)
        backend = procs[0]
        serve = ["serve", "--config", str(rundir / "dynserver.toml"), "--dns", f"{SERVER}:{port}"]
        argv = [sys.executable, "-c", TRACED_SERVE, str(trace_path), *serve, "--database", ""]
        with (rundir / "server.log").open("wb") as log:
            server = bu.start(argv, log, cwd=rundir)
        procs.append(server)
        bu.wait_soa(server, SERVER, port, ZONE, START_TIMEOUT_S)
        preferred, backup = frozenset({APP1}), frozenset({APP2})
        # Before the first checks, "unknown" targets answer the preferred one by default;
        # start once both have passed a check, or round 1 could see start-up, not a hang.
        deadline = time.monotonic() + START_TIMEOUT_S
        while not checked_up(trace_path) >= {APP1, APP2}:
            if time.monotonic() > deadline:
                raise bu.BenchError(f"both backends were not checked up within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        wait_answer(port, preferred, 0.05)
        for rnd in range(1, args.rounds + 1):
            time.sleep(0.3 + rng.uniform(0, INTERVAL))
            hung_at = time.monotonic()
            backend.send_signal(signal.SIGSTOP)
            seen_at = wait_answer(port, backup, POLL_S)
            backend.send_signal(signal.SIGCONT)
            wait_answer(port, preferred, 0.01)
            rows.append(split_round(read_trace(trace_path), hung_at, seen_at))
            bu.progress(f"round {rnd}: " + " ".join(f"{v:.4f}" for v in rows[-1]))
    except (bu.BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"failed: {exc!r}", file=sys.stderr)
        return 1
    finally:
        for proc in reversed(procs):
            bu.stop(proc)
        shutil.rmtree(rundir, ignore_errors=True)
    report(rows)
    return 0


PARTS = (
    "signal → changed answer",
    "wait for the next check",
    "check past its timeout",
    "check end → swap",
    "swap → answer seen",
)


def report(rows: list[tuple[float, ...]]) -> None:
    print(f"command: {bu.invocation()}")
    print(f"dynserver: {bu.dynserver_version()}")
    settings = f"interval {INTERVAL} s, timeout {TIMEOUT} s"
    print(f"{len(rows)} hangs, {settings}, a poll every {1000 * POLL_S:.0f} ms")
    print("\n| part | median (ms) | max (ms) |\n|---|---:|---:|")
    for index, name in enumerate(PARTS):
        values = [row[index] for row in rows]
        print(f"| {name} | {1000 * statistics.median(values):.1f} | {1000 * max(values):.1f} |")
    own = statistics.median(row[2] + row[3] + row[4] for row in rows)
    print(f"\ndynserver's own part (past the timeout + to swap + to client), median: {1000 * own:.1f} ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="hangs to trace (default 12)")
    parser.add_argument("--seed", type=int, default=1, help="random moments of the hangs (default 1)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
