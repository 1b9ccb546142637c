"""/metrics: the Prometheus exposition parses, shows what happened (DNS replies by
transport, type and rcode; checks; target states; answer changes; updates; logins), and
is never more open than the dashboard. In-process through the ASGI app, then once
against a real `dynserver serve` with real DNS queries."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import dns.message
import dns.query
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dynserver import config
from dynserver.config import ENV_TOKEN
from dynserver.errors import ConfigError
from tests.support import dynserver, free_port, loopback, wait_for_http
from tests.update.common import APP, BRAVO, add, ask, write_config
from tests.update.common import running as running_updates
from tests.web.test_pages import HASH, login, run, running

TOKEN = "metrics-token-5c1f0e8a9b2d"
STATES = ("up", "down", "pending", "maintenance", "unknown")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels); the parser must accept the whole text."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def test_every_family_is_there_and_parses(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (app, client):
            response = await client.get("/metrics")
            names = {family.name for family in text_string_to_metric_families(response.text)}
            for name in (
                "dynserver_dns_queries",
                "dynserver_dns_dropped",
                "dynserver_checks",
                "dynserver_check_latency_seconds",
                "dynserver_check_lateness_seconds",
                "dynserver_target_state",
                "dynserver_target_transitions",
                "dynserver_answer_changes",
                "dynserver_updates",
                "dynserver_mirror_pushes",
                "dynserver_notifications",
                "dynserver_logins",
                "dynserver_zone_serial",
                "dynserver_build_info",
                "process_cpu_seconds",
            ):
                assert name in names, name
            samples = parse(response.text)
            # Each target: exactly one state is 1. Unchecked targets are up; golf has no
            # address (unknown until an update gives it one).
            expected = {"charlie": "up", "bravo": "up", "delta": "up", "echo": "up", "golf": "unknown"}
            for name, rtype, target in app.runtime.engine.states:
                if target not in expected:
                    continue  # foxtrot: down or still unknown, depending on its first check
                labels = {"record": b".".join(name).decode(), "type": rtype, "target": target}
                states = {s: value(samples, "dynserver_target_state", state=s, **labels) for s in STATES}
                assert states == {s: float(s == expected[target]) for s in STATES}, (target, states)
            serial = app.runtime.snapshot.zones[(b"dyn", b"example", b"test")].serial
            assert value(samples, "dynserver_zone_serial", zone="dyn.example.test") == serial
            # Update counters exist at 0 before the first update, so rate() sees it.
            assert ("dynserver_updates_total", (("path", "api"), ("result", "changed"))) in samples

    run(test)


def test_dns_replies_are_counted_by_transport_type_and_rcode(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (app, client):
            before = await scrape(client)
            assert ask(app, APP) == ["192.0.2.21"]  # NOERROR
            assert ask(app, "nope.dyn.example.test", "AAAA") == []  # NXDOMAIN
            assert ask(app, "example.com", "MX") == []  # REFUSED
            tcp = app.runtime.answer(dns.message.make_query(APP, "A").to_wire(), True)
            assert isinstance(tcp, bytes)
            after = await scrape(client)

            def moved(transport: str, qtype: str, rcode: str) -> float:
                labels = {"transport": transport, "qtype": qtype, "rcode": rcode}
                name = "dynserver_dns_queries_total"
                return value(after, name, **labels) - value(before, name, **labels)

            assert moved("udp", "A", "NOERROR") == 1
            assert moved("udp", "AAAA", "NXDOMAIN") == 1
            assert moved("udp", "MX", "REFUSED") == 1
            assert moved("tcp", "A", "NOERROR") == 1

    run(test)


def test_checks_transitions_and_answer_changes(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (app, client):
            # foxtrot's tcp check (127.0.0.1:9, nothing listens) runs within a second of start.
            deadline = time.monotonic() + 10
            while True:
                samples = await scrape(client)
                failed = value(samples, "dynserver_checks_total", monitor="tcp", type="tcp", result="fail")
                if failed >= 1 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert failed >= 1
            assert value(samples, "dynserver_check_lateness_seconds_count") >= 1
            assert value(samples, "dynserver_check_latency_seconds_count", monitor="tcp", type="tcp") >= 1
            mon = {"record": "mon.dyn.example.test", "type": "A", "target": "foxtrot"}
            assert value(samples, "dynserver_target_transitions_total", state="down", **mon) == 1
            assert value(samples, "dynserver_target_state", state="down", **mon) == 1
            key = next(k for k in app.runtime.engine.states if k[2] == "charlie")
            bravo = next(k for k in app.runtime.engine.states if k[2] == "bravo")
            await app.runtime.update_target(bravo, "192.0.2.22", actor="test")
            app.runtime.set_maintenance(key, True, actor="test")
            after = await scrape(client)
            labels = {"record": APP, "type": "A"}
            assert value(after, "dynserver_answer_changes_total", **labels) == 1  # charlie -> bravo
            charlie = {**labels, "target": "charlie"}
            assert value(after, "dynserver_target_transitions_total", state="maintenance", **charlie) == 1
            assert value(after, "dynserver_target_state", state="maintenance", **charlie) == 1
            assert value(after, "dynserver_updates_total", path="api", result="changed") == 1

    run(test)


def test_updates_are_counted_by_path_and_result(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_updates(tmp_path) as live:
            secret = await live.credential("bravo-backup", targets=(f"{APP}/bravo",))
            async with live.client() as client:
                path = f"/api/v1/records/{APP}/targets/bravo"
                bearer = {"Authorization": f"Bearer {secret}"}
                assert (
                    await client.put(path, json={"value": "192.0.2.7"}, headers=bearer)
                ).status_code == 200
                assert (
                    await client.put(path, json={"value": "192.0.2.7"}, headers=bearer)
                ).status_code == 200
                other = f"/api/v1/records/{APP}/targets/charlie"
                assert (
                    await client.put(other, json={"value": "192.0.2.8"}, headers=bearer)
                ).status_code == 403
                assert (await client.put(path, json={"value": "nope"}, headers=bearer)).status_code == 422
                wrong = {"Authorization": "Bearer not-a-secret"}
                assert (await client.put(path, json={"value": "192.0.2.9"}, headers=wrong)).status_code == 401
                # Reads by the API are not updates.
                assert (await client.get(path, headers=wrong)).status_code == 401
                nic = "/nic/update"
                auth = ("bravo-backup", secret)
                good = await client.get(nic, params={"hostname": BRAVO, "myip": "192.0.2.10"}, auth=auth)
                assert good.text == "good 192.0.2.10\n"
                nohost = await client.get(nic, params={"hostname": f"charlie.{APP}"}, auth=auth)
                assert nohost.text == "nohost\n"
                bad = await client.get(nic, params={"hostname": BRAVO}, auth=("bravo-backup", "wrong"))
                assert bad.text == "badauth\n"
                samples = await scrape(client)
            expected = {
                ("api", "changed"): 1,
                ("api", "unchanged"): 1,
                ("api", "refused"): 2,
                ("api", "unauthorized"): 1,
                ("dyndns2", "changed"): 1,
                ("dyndns2", "refused"): 1,
                ("dyndns2", "unauthorized"): 1,
            }
            for path_name in ("api", "dyndns2", "rfc2136"):
                for result in ("changed", "unchanged", "failed", "unauthorized", "limited", "refused"):
                    got = value(samples, "dynserver_updates_total", path=path_name, result=result)
                    assert got == expected.get((path_name, result), 0), (path_name, result, got)

    run(test)


def test_who_may_read_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def test() -> None:
        # Private pages: /metrics is private too, unless logged in.
        async with running(tmp_path, f'admin_password_hash = "{HASH}"') as (_, client):
            refused = await client.get("/metrics")
            assert refused.status_code == 401 and "metrics_token" in refused.text
            await login(client)
            assert (await client.get("/metrics")).status_code == 200
        async with running(tmp_path, f'admin_password_hash = "{HASH}"\npublic = true') as (_, client):
            assert (await client.get("/metrics")).status_code == 200
        # A token: required whatever else is configured, and wrong ones lock the client out.
        async with running(tmp_path, f'public = true\nmetrics_token = "{TOKEN}"') as (_, client):
            assert (await client.get("/metrics")).status_code == 401
            challenge = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert challenge.status_code == 401 and "Bearer" in challenge.headers["www-authenticate"]
            await scrape(client, Authorization=f"Bearer {TOKEN}")
            for _ in range(8):  # 10 failures in all: the login limiter's lockout
                await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            locked = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        # The environment wins over the file (a container keeps the token out of it).
        monkeypatch.setenv(ENV_TOKEN, "from-the-environment-123")
        async with running(tmp_path, f'metrics_token = "{TOKEN}"') as (_, client):
            assert (
                await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            ).status_code == 401
            await scrape(client, Authorization="Bearer from-the-environment-123")

    run(test)


def test_metrics_token_is_checked_when_loading(tmp_path: Path) -> None:
    loaded = config.load(write_config(tmp_path, f'\n[web]\nmetrics_token = "{TOKEN}"\n'))
    assert loaded.web.metrics_token == TOKEN
    assert config.load(write_config(tmp_path)).web.metrics_token is None
    for bad in ('"short"', '"has a space in it, long enough"', "42"):
        with pytest.raises(ConfigError, match="metrics_token"):
            config.load(write_config(tmp_path, f"\n[web]\nmetrics_token = {bad}\n"))


@pytest.mark.slow
def test_a_running_server_counts_real_queries_checks_and_updates(tmp_path: Path) -> None:
    """`dynserver serve --log-format json`: dnspython over UDP and TCP, a tcp check that
    passes (a socket this test listens on) and one that fails, a dyndns2 update; each
    moves its counter, and every log line is one JSON object without the secret."""
    host = loopback()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listening:
        listening.bind((host, 0))
        listening.listen(64)  # the kernel completes the check's handshakes: a passing check
        open_port = listening.getsockname()[1]
        extra = f"""
[monitors.open]
type = "tcp"
port = {open_port}
interval = 1
timeout = 1

[zones."dyn.example.test".records.ok]
type = "A"
monitor = "open"
ttl = 30
targets = [{{ name = "hotel", value = "{host}" }}]
"""
        path = write_config(tmp_path, extra)
        secret = add(path, "bravo-backup", "--target", f"{APP}/bravo")
        http = f"{host}:{free_port(host)}"
        with dynserver(path, host=host, http=http, extra=["--log-format", "json"]) as server:
            url = f"http://{http}"

            def samples() -> Samples:
                response = httpx.get(f"{url}/metrics", timeout=2)
                assert response.status_code == 200
                return parse(response.text)

            wait_for_http(f"{url}/healthz")
            before = samples()
            for name, rdtype in ((APP, "A"), ("nope.dyn.example.test", "A"), ("example.com", "A")):
                dns.query.udp(dns.message.make_query(name, rdtype), host, port=server.port, timeout=5)
            dns.query.tcp(dns.message.make_query(APP, "A"), host, port=server.port, timeout=5)
            updated = httpx.get(
                f"{url}/nic/update",
                params={"hostname": BRAVO, "myip": "192.0.2.77"},
                auth=("bravo-backup", secret),
                timeout=5,
            )
            assert updated.text == "good 192.0.2.77\n"
            deadline = time.monotonic() + 15
            while True:
                after = samples()
                checks = {
                    result: value(after, "dynserver_checks_total", monitor=monitor, type="tcp", result=result)
                    for monitor, result in (("open", "ok"), ("tcp", "fail"))
                }
                if all(checks.values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert all(checks.values()), checks
            queries = "dynserver_dns_queries_total"
            for transport, rcode in (
                ("udp", "NOERROR"),
                ("udp", "NXDOMAIN"),
                ("udp", "REFUSED"),
                ("tcp", "NOERROR"),
            ):
                labels = {"transport": transport, "qtype": "A", "rcode": rcode}
                assert value(after, queries, **labels) - value(before, queries, **labels) == 1, labels
            assert value(after, "dynserver_updates_total", path="dyndns2", result="changed") == 1
            hotel = {"record": "ok.dyn.example.test", "type": "A", "target": "hotel"}
            assert value(after, "dynserver_target_state", state="up", **hotel) == 1
            log = server.log_text()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "event"} <= set(line) for line in lines)
    events = {line["event"] for line in lines}
    assert {"listening", "target_update", "target_health"} <= events
    assert secret not in log


def test_check_counts_and_histograms_render_as_prometheus_client_renders_them() -> None:
    """Check results add to plain numbers (no lock per check); /metrics shows them
    exactly as prometheus_client's own Counter and Histogram would."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from dynserver.metrics import LATENCY_BUCKETS, LATENESS_BUCKETS, Metrics

    metrics = Metrics(process=False)
    registry = CollectorRegistry()
    checks = Counter("dynserver_checks", "x", ["monitor", "type", "result"], registry=registry)
    latency = Histogram(
        "dynserver_check_latency_seconds",
        "x",
        ["monitor", "type"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    lateness = Histogram("dynserver_check_lateness_seconds", "x", buckets=LATENESS_BUCKETS, registry=registry)
    values = [0.0, 0.0005, 0.001, 0.0010001, 0.003, 0.25, 0.7, 2.5, 20.0]
    for n, seconds in enumerate(values):
        ok = n % 3 != 0
        metrics.check_result("web", "http", ok, seconds)
        checks.labels("web", "http", "ok" if ok else "fail").inc()
        latency.labels("web", "http").observe(seconds)
        metrics.check_lateness.observe(seconds)
        lateness.observe(seconds)
    metrics.check_result("web", "http", True, None)  # no latency measured: counted only
    checks.labels("web", "http", "ok").inc()

    def wanted(text: str) -> Samples:
        return {
            k: v
            for k, v in parse(text).items()
            if k[0].startswith("dynserver_check") and "_created" not in k[0]
        }

    ours, theirs = wanted(metrics.render().decode()), wanted(generate_latest(registry).decode())
    assert ours == theirs
    assert value(ours, "dynserver_check_latency_seconds_bucket", monitor="web", type="http", le="0.001") == 3
