"""Conditions on a result (issue 17) against real HTTP servers on 127.0.0.x: expected_json
on the body a backend sends, max_response_time on a slow backend, invert with and without
retries, and the reasons `dynserver probe` prints for each."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dynserver.health.conditions import parse_json_condition
from dynserver.health.probes import Check, run_check
from dynserver.health.state import Result
from dynserver.model import Monitor, MonitorType
from tests.backends import ROOT, Backend, backends
from tests.support import free_port, loopback

WEB = Monitor(name="web", type=MonitorType.HTTP, path="/health", timeout=1.0)
JSON_BODY = '{"status": "ok", "queue": 150, "healthy": true, "version": "1.0"}'


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with backends(tmp_path_factory.mktemp("conditions")) as pool:
        host = loopback()
        yield pool.add("http", "web", host, free_port(host))


@pytest.fixture(autouse=True)
def fresh(backend: Backend) -> None:
    backend.reset()


def check(backend: Backend, **options: Any) -> Result:
    monitor = replace(WEB, **options)
    return asyncio.run(run_check(Check(monitor, backend.host, backend.port, monitor.path, ())))


# (body, condition, ok, reason)
JSON_CASES = [
    (JSON_BODY, '$.status == "ok"', True, "status 200"),
    (JSON_BODY, "$.queue < 100", False, "json $.queue is 150, expected < 100"),
    (JSON_BODY, "$.healthy == true", True, "status 200"),
    (JSON_BODY, '$.version != "1.0"', False, 'json $.version is "1.0", expected != "1.0"'),
    ("status=OK", '$.status == "ok"', False, "body is not JSON"),
    (JSON_BODY, '$.missing == "ok"', False, "json $.missing matches nothing"),
    (JSON_BODY, "$.status > 3", False, 'json $.status is "ok", not comparable with > 3'),
]


@pytest.mark.parametrize(("body", "condition", "ok", "reason"), JSON_CASES, ids=[c[1] for c in JSON_CASES])
def test_expected_json_reads_the_body(
    backend: Backend, body: str, condition: str, ok: bool, reason: str
) -> None:
    backend.set(body=body)
    result = check(backend, expected_json=parse_json_condition(condition))
    assert (result.ok, result.reason) == (ok, reason)


def test_expected_json_reads_no_more_than_max_response_bytes(backend: Backend) -> None:
    backend.set(body='{"status": "ok", "pad": "' + "x" * 4096 + '"}')
    result = check(backend, expected_json=parse_json_condition('$.status == "ok"'), max_response_bytes=1024)
    assert (result.ok, result.reason) == (False, "too large (over 1024 bytes)")


def test_a_status_outside_expected_codes_fails_before_the_body_is_read(backend: Backend) -> None:
    backend.set(status=503, body=JSON_BODY)
    result = check(backend, expected_json=parse_json_condition('$.status == "ok"'))
    assert (result.ok, result.reason) == (False, "status 503")


def test_a_slow_answer_fails_with_the_measured_time(backend: Backend) -> None:
    backend.set(delay=0.3)
    result = check(backend, max_response_time=0.1)
    assert not result.ok
    match = re.fullmatch(r"slow: (\d+\.\d{3}) s > 0\.100 s", result.reason)
    assert match is not None, result.reason
    assert 0.3 <= float(match.group(1)) < 1.0
    assert result.latency is not None and abs(result.latency - float(match.group(1))) < 0.001


def test_a_fast_answer_passes_max_response_time(backend: Backend) -> None:
    result = check(backend, max_response_time=0.5)
    assert (result.ok, result.reason) == (True, "status 200")


def test_a_slow_failure_keeps_its_own_reason(backend: Backend) -> None:
    backend.set(delay=0.3, status=503)
    result = check(backend, max_response_time=0.1)
    assert (result.ok, result.reason) == (False, "status 503")


# (control, ok, reason): the probe's outcome flipped, with the probe's reason
INVERT_CASES = [
    ({}, False, "inverted: status 200"),
    ({"status": 503}, True, "inverted: status 503"),
    ({"delay": 0.5}, True, "inverted: timeout"),
]


@pytest.mark.parametrize(("control", "ok", "reason"), INVERT_CASES, ids=[c[2] for c in INVERT_CASES])
def test_invert_flips_the_outcome(backend: Backend, control: dict[str, Any], ok: bool, reason: str) -> None:
    backend.set(**control)
    result = check(backend, invert=True, timeout=0.3)
    assert (result.ok, result.reason) == (ok, reason)


def test_invert_of_a_refused_connection_passes() -> None:
    host = loopback()  # nothing listens here
    monitor = replace(WEB, invert=True)
    result = asyncio.run(run_check(Check(monitor, host, free_port(host), "/", ())))
    assert (result.ok, result.reason) == (True, "inverted: connection refused")


def test_invert_with_slow_and_json_conditions(backend: Backend) -> None:
    backend.set(body=JSON_BODY)
    failing = check(backend, invert=True, expected_json=parse_json_condition("$.queue < 100"))
    assert (failing.ok, failing.reason) == (True, "inverted: json $.queue is 150, expected < 100")
    backend.set(delay=0.3)
    slow = check(backend, invert=True, max_response_time=0.1)
    assert slow.ok and slow.reason.startswith("inverted: slow: "), slow.reason


def test_invert_retries_the_failing_probe_then_flips_its_last_verdict(backend: Backend) -> None:
    """The rule: retries are for a transient failure of the probe, invert or not; invert
    flips the verdict reached after them."""
    backend.set(status=503)
    before = len(backend.requests())
    result = check(backend, invert=True, retries=2)
    assert (result.ok, result.reason) == (True, "inverted: status 503")
    assert len(backend.requests()) - before == 3


def test_invert_does_not_retry_a_passing_probe(backend: Backend) -> None:
    before = len(backend.requests())
    result = check(backend, invert=True, retries=2)
    assert (result.ok, result.reason) == (False, "inverted: status 200")
    assert len(backend.requests()) - before == 1


def test_invert_fails_when_a_retry_passes() -> None:
    """A probe that fails once then passes (a transient failure) is a passing probe:
    inverted, the check fails."""
    statuses = iter([b"503 Service Unavailable", b"200 OK"])

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 " + next(statuses) + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> Result:
        host = loopback()
        server = await asyncio.start_server(serve, host, 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run_check(Check(replace(WEB, invert=True, retries=2), host, port, "/", ()))

    result = asyncio.run(scenario())
    assert (result.ok, result.reason) == (False, "inverted: status 200")


def test_the_probe_command_prints_the_new_reasons(backend: Backend, tmp_path: Path) -> None:
    backend.set(body=JSON_BODY)
    path = tmp_path / "dynserver.toml"
    path.write_text(f"""\
[monitors.json]
type = "http"
port = {backend.port}
expected_json = '$.queue < 100'

[monitors.upside]
type = "http"
port = {backend.port}
invert = true

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.queue]
type = "A"
monitor = "json"
targets = [{{ name = "a", value = "{backend.host}" }}]

[zones."dyn.example.test".records.gone]
type = "A"
monitor = "upside"
targets = [{{ name = "a", value = "{backend.host}" }}]
""")
    outputs = []
    for record in ("queue", "gone"):
        done = subprocess.run(
            [sys.executable, "-m", "dynserver", "probe", "--config", str(path), record],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        outputs.append(done.stdout)
    assert "DOWN json $.queue is 150, expected < 100" in outputs[0]
    assert "DOWN inverted: status 200" in outputs[1]
