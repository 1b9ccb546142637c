"""How the health engine's cost grows: targets, dynamic records, agents' results, swaps.

One command, run from the repository root (issue 19; results in docs/benchmarks.md):

    .venv/bin/python bench/check_scale.py table     # targets 1k..20k, records 1..10,000
    .venv/bin/python bench/check_scale.py agents    # server CPU per result from an agent
    .venv/bin/python bench/check_scale.py swap      # a health change -> new snapshot, 10,000 records

``table``: for each (targets, records) point, the test server (``http_ok_server.py``,
one loopback listener, CPU 0) and dynserver (CPU 1, database on, every target healthy,
interval 10 s, timeout 2 s) run for a warm-up and a window; printed per point: checks a
second that reached the backends, dynserver's CPU per check (the whole process, from
/proc), the scheduler's lateness (start minus due, via ``dynserver_lateness.py``),
resident memory, healthy targets marked down, the test server's CPU. No DNS load:
``check_capacity.py`` measures DNS next to checks.

``agents``: an App in this process with ``[locations]`` (``local = false``: only the
agent checks), 20,000 targets, a database, and one agent registered in it. The agent's
results go through the hub's own code (``Hub.results``: decode, validate, stamp, apply:
``Runtime.on_location_result``, the vote, the store), paced at what 20,000 checks
every 10 s send (2,000 a second) and sent as the agent sends them: what is queued goes
every 100 results' time, up to the agent's MAX_BATCH a request, and a batch refused as
too fast stays queued until its Retry-After (a fixed 100 a batch, resent alone, never
caught up after one refusal: its results went stale and the window measured a storm
of transitions). The process's CPU (every thread) per result over the window; the
HTTP request around each batch is not counted.

``swap``: an App in this process with 10,000 dynamic records (2 targets each); every
target is made up, then the preferred target of records fails one by one: the time from
the check result to the new snapshot in ``Runtime.swap``, and to the end of the result's
handling (events, store queue), p50 / p99 / max.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchutil as bu
import check_capacity as cc

WARMUP_S = 25.0
WINDOW_S = 30.0
TABLE_POINTS = (  # (targets, records)
    (1000, 200),
    (5000, 1000),
    (10000, 2000),
    (20000, 4000),
    (20000, 1),
    (20000, 100),
    (20000, 10000),
)


def pct(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


# --------------------------------------------------------------------------- table


def table_point(targets: int, records: int, warmup: float, window: float) -> dict[str, float]:
    args = cc.parse_args(["--records", str(records), "--per-record", str(targets // records)])
    rundir = Path(tempfile.mkdtemp(prefix="dynscale-"))
    arrivals = rundir / "arrivals.txt"
    lateness = rundir / "lateness.txt"
    server_argv = [sys.executable, str(bu.HTTP_OK_SERVER), "--count", str(targets), "--port", "0"]
    with (rundir / "test-server.log").open("wb") as log:
        test_server = bu.start([*server_argv, "--log", str(arrivals)], log, cpu=cc.CLIENT_CPU, pipe=True)
    try:
        port = int(cc.ready_line(test_server, 60).split()[1])
        config = rundir / "dynserver.toml"
        config.write_text(cc.dynserver_config(args, port, monitored=True))
        dns_port = bu.free_port(cc.SERVER_ADDR)
        serve = ["serve", "--config", str(config), "--dns", f"{cc.SERVER_ADDR}:{dns_port}"]
        serve += ["--database", str(rundir / "state.db")]
        argv = [sys.executable, str(cc.LATENESS_WRAPPER), str(lateness), "--", *serve]
        with (rundir / "dynserver.log").open("wb") as log:
            dyn = bu.start(argv, log, cpu=cc.SERVER_CPU)
        try:
            bu.wait_soa(dyn, cc.SERVER_ADDR, dns_port, cc.ZONE, 120)
            time.sleep(warmup)
            cpu0, test0, t0 = (
                bu.tree_cpu_seconds(dyn.pid),
                bu.tree_cpu_seconds(test_server.pid),
                time.monotonic(),
            )
            time.sleep(window)
            cpu1, test1, t1 = (
                bu.tree_cpu_seconds(dyn.pid),
                bu.tree_cpu_seconds(test_server.pid),
                time.monotonic(),
            )
            rss = rss_mb(dyn.pid)
            time.sleep(1.5)  # the arrival log and the lateness samples are flushed every second
        finally:
            bu.stop(dyn)
    finally:
        bu.stop(test_server)
    checks = sum(1 for line in arrivals.read_text().splitlines() if t0 <= float(line.split()[1]) <= t1)
    late = [
        float(b)
        for a, b in (line.split() for line in lateness.read_text().splitlines())
        if t0 <= float(a) <= t1
    ]
    downs = cc.count_downs(rundir / "dynserver.log", 0.0) or (0, 0)
    return {
        "targets": targets,
        "records": records,
        "checks_per_s": checks / (t1 - t0),
        "cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "us_per_check": (cpu1 - cpu0) * 1e6 / max(1, checks),
        "late_p50_ms": 1000 * pct(late, 0.5),
        "late_p99_ms": 1000 * pct(late, 0.99),
        "late_max_ms": 1000 * max(late, default=float("nan")),
        "rss_mb": rss,
        "false_downs": sum(downs),
        "test_server_share": (test1 - test0) / (t1 - t0),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_table(points: Sequence[tuple[int, int]], warmup: float, window: float) -> None:
    print(
        "| targets | records | checks/s | dynserver CPU | µs per check | lateness p50 / p99 / max (ms) "
        "| RSS (MB) | healthy marked down | test server CPU |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for targets, records in points:
        bu.progress(f"table: {targets} targets, {records} records")
        row = table_point(targets, records, warmup, window)
        print(
            f"| {targets:,} | {records:,} | {row['checks_per_s']:,.0f} | {100 * row['cpu_share']:.0f} % "
            f"| {row['us_per_check']:.0f} | {row['late_p50_ms']:.0f} / {row['late_p99_ms']:.0f} / "
            f"{row['late_max_ms']:.0f} | {row['rss_mb']:.0f} | {row['false_downs']:.0f} "
            f"| {100 * row['test_server_share']:.0f} % |",
            flush=True,
        )


# --------------------------------------------------------------------------- in-process


def settle_gc() -> None:
    """What `dynserver serve` does once serving (cli._settle_gc: gc.freeze, a higher
    young-generation threshold): these parts run the App in this process instead."""
    from dynserver import cli

    cli._settle_gc()


def zone_config(records: int, per_record: int, extra: str) -> str:
    """A config of ``records`` dynamic records, each with ``per_record`` targets on
    addresses nothing listens on (checks never run in these in-process parts)."""
    lines = [extra, "[monitors.web]", 'type = "http"', "port = 9", "interval = 10", "timeout = 2", ""]
    lines += [f'[zones."{cc.ZONE}"]', f'nameservers = ["ns1.{cc.ZONE}"]']
    lines += [f'glue = {{ "ns1.{cc.ZONE}" = ["{cc.SERVER_ADDR}"] }}', ""]
    for record in range(records):
        targets = ", ".join(
            f'{{ name = "t{p}", value = "{addr}", priority = {p} }}'
            for p, addr in cc.record_targets(record, per_record)
        )
        lines += [f'[zones."{cc.ZONE}".records.r{record}]', 'type = "A"', 'monitor = "web"', "ttl = 30"]
        lines += [f"targets = [{targets}]", ""]
    return "\n".join(lines)


async def send_due(
    hub: Any, agent: Any, head: bytes, items: Sequence[bytes], start: float, rate: float, seconds: float
) -> tuple[int, int]:
    """Send ``items`` as an agent does: results queue up at ``rate`` a second; every
    100 results' time what is queued goes, up to MAX_BATCH a request; a refused batch
    (too fast) stays queued and goes after the Retry-After. (accepted, refusals)."""
    from dynserver.locations.agent import MAX_BATCH
    from dynserver.locations.hub import AgentRefused

    loop = asyncio.get_running_loop()
    sent = accepted = refused = 0
    step = 100 / rate
    while sent < len(items) and loop.time() - start < seconds:
        due = min(len(items), int((loop.time() - start) * rate))
        if due > sent:
            end = min(due, sent + MAX_BATCH)
            body = head + b",".join(items[sent:end]) + b"]}"
            try:
                accepted += await hub.results(agent, body, "127.0.0.2")
                sent = end
            except AgentRefused as refusal:
                refused += 1
                await asyncio.sleep(refusal.retry_after or 0.05)
                continue
        await asyncio.sleep(max(0.0, start + (sent // 100 + 1) * step - loop.time()))
    return accepted, refused


async def agents_part(targets: int, seconds: float) -> None:
    import msgspec

    from dynserver import config as configuration
    from dynserver.app import App, with_listeners
    from dynserver.locations import hub as hub_module
    from dynserver.model import Listener
    from dynserver.store.db import Store

    folder = Path(tempfile.mkdtemp(prefix="dynscale-agents-"))
    database = folder / "state.db"
    store = await Store.open(database)
    stored, token = hub_module.new_agent("paris", canary=None, now=time.time())
    await store.add_agent(stored)
    await store.close()
    path = folder / "dynserver.toml"
    locations = '[locations]\nlocal = false\nquorum = 1\n\n[server]\ndatabase = "state.db"\n'
    path.write_text(zone_config(targets // 5, 5, locations))
    app = App(with_listeners(configuration.load(path), [Listener(cc.SERVER_ADDR, 0)], None))
    await app.start()
    settle_gc()
    try:
        agent = await app.hub.authenticate(f"Bearer {token}", "127.0.0.2")
        session = app.hub.open(agent, "dynserver-agent/bench", "127.0.0.2")
        stream = app.hub.stream(session)
        hello = msgspec.json.decode(await stream.__anext__())
        ids = [spec["id"] for spec in hello["checks"]]
        rate = targets / 10.0
        head = b'{"session":' + msgspec.json.encode(hello["session"]) + b',"results":['
        total = int(seconds * rate) + len(ids)
        fixed: dict[str, object] = {"ok": True, "reason": "status 200", "latency": 0.002}
        encode = msgspec.json.encode
        items = [encode({"check": ids[n % len(ids)], "seq": n + 1} | fixed) for n in range(total)]
        # Warm-up: one pass over every check (first results move targets unknown -> up).
        loop = asyncio.get_running_loop()
        await send_due(app.hub, agent, head, items[: len(ids)], loop.time(), rate, 3 * len(ids) / rate)
        start_cpu, start_wall = time.process_time(), loop.time()
        accepted, refused = await send_due(app.hub, agent, head, items[len(ids) :], start_wall, rate, seconds)
        cpu = time.process_time() - start_cpu
        wall = loop.time() - start_wall
        print(
            f"agents: {accepted:,} results in {wall:.1f} s ({accepted / wall:,.0f}/s, {refused} batches "
            f"refused as too fast and sent again) after a warm-up pass; server CPU {cpu:.2f} s = "
            f"{cpu * 1e6 / max(1, accepted):.1f} µs per result ({100 * cpu / wall:.0f} % of a core), "
            f"{targets:,} targets, database on"
        )
        await stream.aclose()
    finally:
        await app.stop()


async def swap_part(records: int, changes: int) -> None:
    from dynserver import config as configuration
    from dynserver.app import App, with_listeners
    from dynserver.health.state import Result
    from dynserver.model import Listener

    folder = Path(tempfile.mkdtemp(prefix="dynscale-swap-"))
    path = folder / "dynserver.toml"
    path.write_text(zone_config(records, 2, ""))
    app = App(with_listeners(configuration.load(path), [Listener(cc.SERVER_ADDR, 0)], None))
    runtime = app.runtime
    runtime.refresh_checks()
    await app.scheduler.stop()  # results are fed below, nothing is checked
    swapped: list[float] = []
    original = runtime.swap

    def timed_swap(snapshot: object) -> None:
        original(snapshot)  # type: ignore[arg-type]
        swapped.append(time.perf_counter())

    runtime.swap = timed_swap  # type: ignore[method-assign]
    settle_gc()
    checks = runtime.engine.checks()
    loop = asyncio.get_running_loop()
    for key in checks:
        runtime.on_result(key, Result(ok=True, reason="status 200", at=loop.time(), latency=0.001))
    preferred = [key for key, (_, _, targets) in checks.items() if targets[0][2] == "t1"]
    to_swap: list[float] = []
    handled: list[float] = []
    cpu: list[float] = []
    for key in preferred[:changes]:
        swapped.clear()
        began, began_cpu = time.perf_counter(), time.thread_time()
        runtime.on_result(key, Result(ok=False, reason="status 503", at=loop.time(), latency=0.001))
        ended, ended_cpu = time.perf_counter(), time.thread_time()
        if swapped:
            to_swap.append(swapped[0] - began)
            handled.append(ended - began)
            cpu.append(ended_cpu - began_cpu)
    zone = next(iter(runtime.zones.values()))
    print(
        f"swap: {records:,} dynamic records ({len(zone.nodes):,} names in the zone), {len(to_swap)} answer "
        f"changes: result -> new snapshot p50 {1000 * statistics.median(to_swap):.2f} ms, "
        f"p99 {1000 * pct(to_swap, 0.99):.2f} ms, max {1000 * max(to_swap):.2f} ms; "
        f"whole result handled p50 {1000 * statistics.median(handled):.2f} ms, "
        f"p99 {1000 * pct(handled, 0.99):.2f} ms (its CPU: p50 {1000 * statistics.median(cpu):.2f} ms, "
        f"p99 {1000 * pct(cpu, 0.99):.2f} ms: the rest of the wall time is the shared machine)"
    )


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("part", choices=("table", "agents", "swap"))
    parser.add_argument("--warmup", type=float, default=WARMUP_S)
    parser.add_argument("--window", type=float, default=WINDOW_S)
    parser.add_argument(
        "--point", action="append", default=[], metavar="TARGETS:RECORDS", help="table points"
    )
    parser.add_argument("--targets", type=int, default=20000, help="agents: targets (default 20000)")
    parser.add_argument("--records", type=int, default=10000, help="swap: dynamic records (default 10000)")
    args = parser.parse_args(argv)
    print(f"command: {bu.invocation()}\ndynserver: {bu.dynserver_version()}", flush=True)
    if args.part == "table":
        points = [tuple(int(x) for x in p.split(":")) for p in args.point] or list(TABLE_POINTS)
        run_table(points, args.warmup, args.window)  # type: ignore[arg-type]
    elif args.part == "agents":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, cc.FILES_NEEDED)), hard))
        os.environ.setdefault("DYNSERVER_LOOP", "uvloop")
        asyncio.run(agents_part(args.targets, args.window))
    else:
        asyncio.run(swap_part(args.records, 200))
    return 0


if __name__ == "__main__":
    sys.exit(main())
