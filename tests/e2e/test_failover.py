"""Failover end to end: real backends on 127.0.0.x, a real dynserver, real DNS queries.

Every backend is a process of its own (tests/backends.py), so a test can crash it
(SIGKILL), hang it (SIGSTOP: the kernel still accepts connections, nothing answers),
resume it and restart it at the same address. dynserver runs as `python -m dynserver
serve` with a config the test writes: checks every 0.3 s with a 0.3 s timeout, so every
failover here happens within about a second.

Tests wait for events (an answer, a log line, a request at a backend) by polling every
50 ms up to a deadline, never with fixed sleeps; the few fixed waits assert that
something does *not* happen, or need wall-clock time to pass, and say so.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.backends import Backend, Backends, backends, self_signed
from tests.notify.receiver import receiver
from tests.support import (
    ROOT,
    Server,
    dynserver,
    free_port,
    loopback,
    master_file,
    poll,
    require_program,
    write_config,
)

ZONE = "fo.example.test"
ZONE_FILE = master_file(ZONE, "ns1 IN A 127.0.0.1\n")
INTERVAL = 0.3  # seconds between checks of one target
TIMEOUT = 0.3  # a hung backend fails after this long
FAILBACK = 1.0  # a recovered target stays pending this long
TTL = 30
PENDING_TTL = 1  # the TTL answered while a target is pending: failback is visible in DNS
DEADLINE = 10.0  # generous: a 2-core CI machine running other tests is slow


# What a check reports about a backend killed with SIGKILL: refused when the kill lands
# between checks, the server hanging up when it lands during one.
KILL_REASONS = {"connection refused", "connection closed by the server"}


# -- config ---------------------------------------------------------------------------


def _toml(value: Any) -> str:
    """Just enough TOML for these configs: strings, numbers, bools, lists, inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def monitor(name: str, kind: str, **options: Any) -> str:
    fields = {"type": kind, "interval": INTERVAL, "timeout": TIMEOUT, **options}
    return f"[monitors.{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in fields.items()) + "\n"


def record(name: str, monitor_name: str, targets: list[dict[str, Any]], **options: Any) -> str:
    fields = {"type": "A", "monitor": monitor_name, "ttl": TTL, **options}
    lines = [f'[zones."{ZONE}".records.{name}]'] + [f"{k} = {_toml(v)}" for k, v in fields.items()]
    lines += ["targets = ["] + [f"  {_toml(t)}," for t in targets] + ["]"]
    return "\n".join(lines) + "\n\n"


def target(backend: Backend, priority: int = 1, **options: Any) -> dict[str, Any]:
    return {
        "name": backend.name,
        "value": backend.host,
        "priority": priority,
        "port": backend.port,
        **options,
    }


def make_config(folder: Path, *parts: str) -> Path:
    return write_config(folder, {ZONE: ZONE_FILE}, "".join(parts))


# -- DNS and waiting --------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    values: tuple[str, ...]  # sorted; () is NODATA
    ttl: int | None


def fqdn(label: str) -> str:
    return f"{label}.{ZONE}."


def ask(server: Server, qname: str, qtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(qname, qtype)
    for _ in range(3):  # a lost datagram on a busy machine is not what these tests are about
        try:
            return dns.query.udp(query, server.host, port=server.port, timeout=1.0)
        except dns.exception.Timeout:
            continue
    raise AssertionError(f"no answer from dynserver for {qname} {qtype}")


def answer(server: Server, label: str) -> Answer:
    response = ask(server, fqdn(label))
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.A:
            return Answer(tuple(sorted(r.to_text() for r in rrset)), rrset.ttl)
    return Answer((), None)


def serial(server: Server) -> int:
    response = ask(server, f"{ZONE}.", "SOA")
    return int(response.answer[0][0].serial)


def serial_gt(a: int, b: int) -> bool:
    """RFC 1982: is serial ``a`` after ``b``?"""
    return a != b and ((a > b and a - b < 2**31) or (a < b and b - a > 2**31))


def wait_answer(server: Server, label: str, *expected: Backend, timeout: float = DEADLINE) -> Answer:
    want = tuple(sorted(b.host for b in expected))
    return poll(lambda: answer(server, label), lambda a: a.values == want, f"{label} -> {want}", timeout)


def wait_log(server: Server, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
    found = poll(lambda: re.search(pattern, server.log_text()), bool, f"log line /{pattern}/", timeout)
    assert found is not None
    return found


def health_line(label: str, name: str, current: str, previous: str = r"\w+") -> str:
    """The log line of a target's health transition (the reason, a Python repr, is the
    first group: see ``reason``)."""
    return (
        rf"event=target_health record={re.escape(fqdn(label))} target={name} "
        rf"previous={previous} current={current} reason=('[^']*'|\"[^\"]*\")"
    )


def reason(text: str) -> str:
    """The reason as dynserver logged it (%r: quoted either way)."""
    value = ast.literal_eval(text)
    assert isinstance(value, str)
    return value


def wait_reason(server: Server, label: str, name: str, current: str, previous: str = r"\w+") -> str:
    return reason(wait_log(server, health_line(label, name, current, previous)).group(1))


def wait_up(server: Server, label: str, *members: Backend) -> None:
    """Wait until each target's latest health transition is to up (normally its first
    check passing; on a busy machine a first check may time out and pass the next time)."""

    def latest(name: str) -> str | None:
        pattern = (
            rf"event=target_health record={re.escape(fqdn(label))} target={name} previous=\w+ current=(\w+)"
        )
        found = re.findall(pattern, server.log_text())
        return found[-1] if found else None

    for backend in members:
        poll(lambda name=backend.name: latest(name), lambda h: h == "up", f"{backend.name} of {label} up")


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Measured times are informational: shown even under -q, never asserted."""
    with capsys.disabled():
        print(f"\n  {text}")


@contextmanager
def running(config: Path) -> Iterator[Server]:
    with dynserver(config, zone=ZONE) as server:
        yield server


# -- failover between priorities -------------------------------------------------------


@dataclass
class Failover:
    """Three backends in priority order and a dynserver answering for them."""

    server: Server
    preferred: Backend
    second: Backend
    third: Backend


@contextmanager
def priority_failover(tmp_path: Path) -> Iterator[Failover]:
    with backends(tmp_path) as pool:
        a, b, c = (_http(pool, name) for name in ("a", "b", "c"))
        config = make_config(
            tmp_path,
            monitor("web", "http", path="/health", failback_delay=FAILBACK),
            record("app", "web", [target(a, 1), target(b, 2), target(c, 3)], pending_ttl=PENDING_TTL),
        )
        with running(config) as server:
            wait_up(server, "app", a, b, c)
            assert answer(server, "app") == Answer((a.host,), TTL)
            yield Failover(server, a, b, c)


def _http(pool: Backends, name: str, kind: str = "http", **options: Any) -> Backend:
    host = loopback()
    return pool.add(kind, name, host, free_port(host), **options)


def _flip_and_back(
    capsys: pytest.CaptureFixture[str],
    setup: Failover,
    how: str,
    fail: Callable[[], None],
    heal: Callable[[], None],
) -> None:
    """Break the preferred backend: the answer moves to the next priority, with a new
    serial. Heal it: the answer stays put while it is pending (with the low pending TTL),
    then moves back after the failback delay, each change with a new serial."""
    server, a, b = setup.server, setup.preferred, setup.second
    before = serial(server)
    started = time.monotonic()
    fail()
    changed = poll(lambda: answer(server, "app"), lambda x: x.values != (a.host,), "a changed answer")
    report(capsys, f"{how} -> changed answer: {time.monotonic() - started:.3f} s")
    assert changed == Answer((b.host,), TTL), "failover must go to the next priority, not further"
    after_failure = serial(server)
    assert serial_gt(after_failure, before), "the SOA serial must increase when the answer changes"

    heal()
    pending = poll(lambda: answer(server, "app"), lambda x: x != changed, "the pending answer")
    pending_seen = time.monotonic()
    assert pending == Answer((b.host,), PENDING_TTL), "while pending, keep the answer with the low TTL"
    wait_log(server, health_line("app", a.name, "pending", "down"))
    after_pending = serial(server)
    assert serial_gt(after_pending, after_failure), "a TTL change is an answer change: new serial"

    back = poll(lambda: answer(server, "app"), lambda x: x != pending, "failback")
    waited = time.monotonic() - pending_seen
    assert back == Answer((a.host,), TTL)
    # The pending answer was first seen at most one poll after the wait began.
    assert waited >= FAILBACK - 0.2, f"failed back after {waited:.2f}s, before the failback delay"
    report(capsys, f"{how}: pending -> failback after {waited:.3f} s (delay {FAILBACK} s)")
    assert serial_gt(serial(server), after_pending)


@pytest.mark.slow
def test_kill_fails_over_to_next_priority_and_back_after_failback_delay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with priority_failover(tmp_path) as setup:
        a = setup.preferred
        _flip_and_back(capsys, setup, "kill", a.kill, a.start)
        assert wait_reason(setup.server, "app", "a", "down", "up") in KILL_REASONS


@pytest.mark.slow
def test_hang_fails_over_on_timeout_and_back_after_failback_delay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with priority_failover(tmp_path) as setup:
        a = setup.preferred
        _flip_and_back(capsys, setup, "hang (SIGSTOP)", a.hang, a.resume)
        assert wait_reason(setup.server, "app", "a", "down", "up") == "timeout"


@pytest.mark.slow
def test_failover_skips_every_failed_priority(tmp_path: Path) -> None:
    with priority_failover(tmp_path) as setup:
        server, a, b, c = setup.server, setup.preferred, setup.second, setup.third
        b.kill()
        wait_log(server, health_line("app", "b", "down"))
        assert answer(server, "app").values == (a.host,), "a lower priority failing changes nothing"
        a.kill()
        wait_answer(server, "app", c)
        c.kill()  # nothing up: the default fallback answers the preferred group, never nothing
        wait_answer(server, "app", a)


# -- round robin within one priority -----------------------------------------------------


@pytest.mark.slow
def test_round_robin_removes_failed_members_but_never_the_last(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        a, b, c = (_http(pool, name) for name in ("a", "b", "c"))
        config = make_config(
            tmp_path,
            monitor("web", "http"),
            record("pool", "web", [target(a), target(b), target(c)]),
        )
        with running(config) as server:
            wait_up(server, "pool", a, b, c)
            serials = [serial(server)]
            assert answer(server, "pool").values == tuple(sorted((a.host, b.host, c.host)))
            a.kill()
            wait_answer(server, "pool", b, c)
            serials.append(serial(server))
            b.kill()
            wait_answer(server, "pool", c)
            serials.append(serial(server))
            c.kill()
            # The last member failing does not empty the answer: the fallback serves the group.
            wait_log(server, health_line("pool", "c", "down"))
            wait_answer(server, "pool", a, b, c)
            serials.append(serial(server))
            b.start()
            wait_answer(server, "pool", b)
            serials.append(serial(server))
            assert all(serial_gt(n, p) for p, n in itertools.pairwise(serials)), serials


# -- https --------------------------------------------------------------------------------


@pytest.mark.slow
def test_https_self_signed_certificate_host_header_and_sni(tmp_path: Path) -> None:
    """allow_insecure = false: a self-signed certificate is a TLS error; true: it passes.
    Either way the check connects to the target's address and sends the configured Host
    header and SNI (a target's host overrides the monitor's)."""
    require_program("openssl", "openssl")
    cert = self_signed(tmp_path, "secure.example.test")
    with backends(tmp_path) as pool:
        tls = _http(pool, "tls", "https", tls=cert)
        host = {"Host": ["secure.example.test"]}
        config = make_config(
            tmp_path,
            monitor("strict", "https", path="/strict", header=host),
            monitor("lax", "https", path="/lax", header=host, allow_insecure=True),
            # fallback none: a failing target is visible as NODATA
            record("strict", "strict", [target(tls)], fallback="none"),
            record("lax", "lax", [target(tls)], fallback="none"),
            record("other", "lax", [target(tls, host="other.example.test", path="/other")], fallback="none"),
        )
        with running(config) as server:
            wait_answer(server, "lax", tls)
            wait_answer(server, "other", tls)
            why = wait_reason(server, "strict", "tls", "down", "unknown")
            assert why.startswith("TLS error"), why
            assert "certificate" in why, why
            assert answer(server, "strict") == Answer((), None)

            seen = {(r["path"], r["host"], r["sni"]) for r in tls.requests()}
            assert ("/lax", "secure.example.test", "secure.example.test") in seen
            assert ("/other", "other.example.test", "other.example.test") in seen
            assert not any(path == "/strict" for path, _, _ in seen), "no request after a failed handshake"

            tls.kill()
            wait_answer(server, "lax")  # NODATA: a dead https backend fails too
            tls.start()
            wait_answer(server, "lax", tls)

        probe = _probe(config, "strict")
        assert "DOWN TLS error" in probe.stdout, probe.stdout
        assert ": UP status 200" in _probe(config, "lax").stdout


# -- tcp and dns monitors ----------------------------------------------------------------


@pytest.mark.slow
def test_tcp_connect_and_send_expect(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        t1, t2 = (_http(pool, name, "tcp") for name in ("t1", "t2"))
        port = {"port": t1.port}
        config = make_config(
            tmp_path,
            monitor("connect", "tcp", **port),
            monitor("ping", "tcp", send="PING\\r\\n", expect="PONG", **port),
            record("connect", "connect", [target(t1, 1), target(t2, 2)]),
            record("ping", "ping", [target(t1, 1), target(t2, 2)]),
        )
        with running(config) as server:
            wait_up(server, "connect", t1, t2)
            wait_up(server, "ping", t1, t2)
            assert any(r["received"] == "PING\r\n" for r in t1.requests())

            t1.set(reply="-ERR")
            wait_answer(server, "ping", t2)
            assert wait_reason(server, "ping", "t1", "down", "up") == "reply lacks 'PONG'"
            assert answer(server, "connect").values == (t1.host,), "connecting still works"
            t1.reset()
            wait_answer(server, "ping", t1)

            # A hung process: the kernel still accepts the connection, so only a check
            # that expects a reply notices (connect-only checks cannot).
            t1.hang()
            wait_answer(server, "ping", t2)
            assert answer(server, "connect").values == (t1.host,)
            t1.kill()
            wait_answer(server, "connect", t2)
            t1.start()
            wait_answer(server, "connect", t1)
            wait_answer(server, "ping", t1)


@pytest.mark.slow
def test_dns_monitor(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        d1, d2 = (_http(pool, name, "dns") for name in ("d1", "d2"))
        config = make_config(
            tmp_path,
            monitor("dns", "dns", query_name="probe.test", expected_data="192.0.2.53"),
            record("ns", "dns", [target(d1, 1), target(d2, 2)]),
        )
        with running(config) as server:
            wait_up(server, "ns", d1, d2)
            assert answer(server, "ns").values == (d1.host,)
            assert {r["qname"] for r in d1.requests()} == {"probe.test."}

            d1.set(rcode="SERVFAIL")
            wait_answer(server, "ns", d2)
            assert wait_reason(server, "ns", "d1", "down") == "rcode SERVFAIL"
            d1.reset()
            wait_answer(server, "ns", d1)

            d1.set(data="192.0.2.99")
            wait_answer(server, "ns", d2)
            d1.reset()
            wait_answer(server, "ns", d1)

            d1.kill()
            wait_answer(server, "ns", d2)
            d1.start()
            wait_answer(server, "ns", d1)


# -- http response checks -------------------------------------------------------------------


@pytest.mark.slow
def test_expected_body_unexpected_body_and_expected_codes(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        a, b = (_http(pool, name) for name in ("a", "b"))
        config = make_config(
            tmp_path,
            monitor(
                "strict",
                "http",
                path="/strict",
                expected_body="status=OK",
                unexpected_body="degraded",
                expected_codes="200",
            ),
            monitor("plain", "http", path="/plain"),  # default codes: 2xx and 3xx
            record("app", "strict", [target(a, 1), target(b, 2)]),
            record("plain", "plain", [target(a, 1), target(b, 2)]),
        )
        cases = [
            ({"body": "status=ERR"}, "body lacks 'status=OK'", True),
            ({"body": "status=OK, degraded"}, "body contains 'degraded'", True),
            ({"status": 302}, "status 302", True),  # 3xx passes by default, not with "200"
            ({"status": 503}, "status 503", False),
        ]
        with running(config) as server:
            wait_up(server, "app", a, b)
            wait_up(server, "plain", a, b)
            for index, (control, why, plain_passes) in enumerate(cases):
                a.set(**control)
                changed_at = time.time()
                wait_answer(server, "app", b)
                failures = re.findall(health_line("app", "a", "down", "up"), server.log_text())
                assert len(failures) == index + 1 and reason(failures[-1]) == why, failures
                # The plain monitor saw the same response (a request after the change).
                poll(
                    a.requests,
                    lambda rs, t=changed_at: any(r["path"] == "/plain" and r["at"] > t for r in rs),
                    "a /plain check",
                )
                if plain_passes:
                    assert answer(server, "plain").values == (a.host,)
                else:
                    wait_answer(server, "plain", b)
                a.reset()
                wait_answer(server, "app", a)
                wait_answer(server, "plain", a)


# -- maintenance ------------------------------------------------------------------------------


@pytest.mark.slow
def test_maintenance_in_config_drains_a_target(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        a, b = (_http(pool, name) for name in ("a", "b"))

        def config(maintenance: bool) -> Path:
            return make_config(
                tmp_path,
                monitor("web", "http"),
                record("app", "web", [target(a, 1, maintenance=maintenance), target(b, 2)]),
            )

        with running(config(True)) as server:
            # Drained from the first answer on, before any check.
            assert answer(server, "app").values == (b.host,)
            wait_up(server, "app", b)
            poll(lambda: len(a.requests()), lambda n: n >= 3, "checks of the drained target")
            assert answer(server, "app").values == (b.host,), "a healthy drained target is not answered"

            b.kill()  # nothing else up: the fallback still never answers a drained target
            wait_log(server, health_line("app", "b", "down", "up"))
            assert answer(server, "app").values == (b.host,)
            assert "target=a" not in server.log_text(), "drained targets change silently"

        # The operator takes it out of maintenance in the config: it is answered again.
        with running(config(False)) as server:
            wait_answer(server, "app", a)


# -- restart ------------------------------------------------------------------------------------


def _samples_since(database: Path, target_name: str, since: float) -> int:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT count(*) FROM sample WHERE target = ? AND at > ?", (target_name, since)
        ).fetchone()
    return int(row[0])


@pytest.mark.slow
def test_restart_restores_states_before_the_first_check(tmp_path: Path) -> None:
    """A restart resumes from the database: the first answer is already the failover
    answer, the serial does not go backwards, and nothing flaps while the first fresh
    checks run, even after a stop longer than the staleness limit (3 intervals).

    Slower checks here (interval 1 s; the backup answers in 0.7 s) make the first
    results arrive after the first staleness sweep, as they would in production."""
    interval, slow = 1.0, 0.7
    with backends(tmp_path) as pool:
        a, b = (_http(pool, name) for name in ("a", "b"))
        config = make_config(
            tmp_path,
            monitor("web", "http", interval=interval, timeout=interval),
            record("app", "web", [target(a, 1), target(b, 2)]),
        )
        database = tmp_path / "dynserver.db"
        b.set(delay=slow)
        with running(config) as server:
            wait_up(server, "app", a, b)
            a.kill()
            wait_answer(server, "app", b)
            before = serial(server)
        # Down for longer than the staleness limit (3 intervals + timeout).
        time.sleep(3 * interval + 1.2)
        restarted = time.time()
        with running(config) as server:
            seen = [answer(server, "app")]
            assert seen[0].values == (b.host,), "the first answer after a restart must be the restored one"
            assert not serial_gt(before, serial(server)), "the serial went backwards"

            # Until both targets have been checked afresh (and a bit beyond), nothing flips.
            def checked() -> bool:
                seen.append(answer(server, "app"))
                return (
                    _samples_since(database, "a", restarted) > 0
                    and _samples_since(database, "b", restarted) > 1
                )

            poll(checked, bool, "fresh checks of both targets")
            assert {x.values for x in seen} == {(b.host,)}, f"the answer flapped after restart: {seen}"
            assert "event=answer_changed" not in server.log_text()


@pytest.mark.slow
def test_restart_does_not_end_a_failback_wait(tmp_path: Path) -> None:
    """A target that was pending when dynserver stopped has not been seen up while it was
    stopped: the wait goes on after the restart, and a target that died in the meantime
    is never answered."""
    delay = 1.5
    with backends(tmp_path) as pool:
        a, b = (_http(pool, name) for name in ("a", "b"))
        config = make_config(
            tmp_path,
            monitor("web", "http", failback_delay=delay),
            record("app", "web", [target(a, 1), target(b, 2)]),
        )
        with running(config) as server:
            wait_up(server, "app", a, b)
            a.kill()
            wait_answer(server, "app", b)
            a.start()
            wait_log(server, health_line("app", "a", "pending", "down"))
            pending_at = time.monotonic()
        a.kill()  # dies while nobody watches
        time.sleep(max(0.0, pending_at + delay + 0.3 - time.monotonic()))  # the wait would be over
        with running(config) as server:
            seen = [answer(server, "app")]
            wait_log(server, health_line("app", "a", "down", "pending"))
            seen.append(answer(server, "app"))
            assert {x.values for x in seen} == {(b.host,)}, seen
            assert "event=answer_changed" not in server.log_text(), "the dead target was answered"


# -- notifications ------------------------------------------------------------------------------


@pytest.mark.slow
def test_notifications_reach_webhooks_and_apprise(tmp_path: Path) -> None:
    with backends(tmp_path) as pool, receiver() as hooks:
        a, b = (_http(pool, name) for name in ("a", "b"))
        host, port = hooks.server_address[:2]
        base = f"http://{host}:{port}"
        config = make_config(
            tmp_path,
            "[notifications]\n"
            f'on_failure = ["{base}/failure"]\n'
            f'on_recovery = ["{base}/recovery"]\n'
            f'apprise = ["json://{host}:{port}/apprise"]\n\n',
            monitor("web", "http", failback_delay=0.5),
            record("app", "web", [target(a, 1), target(b, 2)]),
        )

        def posted(path: str) -> list[dict[str, Any]]:
            return [body for p, body in hooks.posts if p == path]

        with running(config) as server:
            wait_up(server, "app", a, b)
            assert hooks.posts == [], "a start-up is neither a failure nor a recovery"
            a.kill()
            (failure,) = poll(lambda: posted("/failure"), bool, "the on_failure webhook")
            assert failure["event"] == "failure"
            assert failure["record"] == fqdn("app")
            assert failure["target"] == "a"
            assert (failure["previous"], failure["current"]) == ("up", "down")
            # A kill lands between checks (refused) or during one (the server hangs up).
            assert failure["reason"] in KILL_REASONS, failure["reason"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", failure["time"]), failure["time"]
            assert failure["value"] == a.host and failure["type"] == "A"

            a.start()
            (recovery,) = poll(lambda: posted("/recovery"), bool, "the on_recovery webhook")
            assert (recovery["target"], recovery["previous"], recovery["current"]) == ("a", "pending", "up")
            assert recovery["reason"] == "failback delay over"
            assert posted("/failure") == [failure], "one failure, one alert"

            # apprise (json://) got every change: down, pending, up.
            messages = poll(lambda: posted("/apprise"), lambda m: len(m) >= 3, "three apprise posts")
            titles = [m["title"] for m in messages]
            assert titles == [
                f"[dynserver] a of {fqdn('app')} is DOWN",
                f"[dynserver] a of {fqdn('app')} is recovering",
                f"[dynserver] a of {fqdn('app')} is UP",
            ], titles
            assert failure["reason"] in messages[0]["message"]


# -- dynserver probe ----------------------------------------------------------------------------


def _probe(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynserver", "probe", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )


@pytest.mark.slow
def test_probe_prints_each_result_and_reason(tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        up, dead, sick, hung = (_http(pool, name) for name in ("up", "dead", "sick", "hung"))
        config = make_config(
            tmp_path,
            monitor("web", "http", expected_body="status=OK"),
            record("app", "web", [target(up, 1), target(dead, 2), target(sick, 3), target(hung, 4)]),
        )
        dead.kill()
        sick.set(body="status=ERR")
        hung.hang()
        result = _probe(config, "app")
        assert result.returncode == 2, result  # 2: some target is down
        lines = {line.split()[2]: line for line in result.stdout.splitlines()}
        assert re.search(rf"up \({up.host}\): UP status 200 \[http, [\d.]+ ms\]", lines["up"]), lines
        assert "DOWN connection refused" in lines["dead"]
        assert "DOWN body lacks 'status=OK'" in lines["sick"]
        assert "DOWN timeout" in lines["hung"]

        only = _probe(config, f"app.{ZONE}", "up")
        assert only.returncode == 0, only
        assert only.stdout.count("\n") == 1 and ": UP status 200" in only.stdout
