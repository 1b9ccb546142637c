"""Issue 17's options against the real backends its test list names, on 127.0.0.x: a TCP
service (invert, max_response_time with send/expect, check_address) and an HTTPS server
whose certificate the test makes to expire in 3 days (certificate_expiry_days, and
check_address with the site's name kept in SNI and Host). The HTTP cases are in
test_conditions.py, test_check_address.py and test_certificate_expiry.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from dynserver.health.engine import build_check
from dynserver.health.probes import Check, run_check
from dynserver.health.state import Result
from dynserver.model import Monitor, MonitorType, Target
from tests.backends import Backend, Backends, backends, self_signed
from tests.support import free_port, loopback, require_program

TCP = Monitor(name="svc", type=MonitorType.TCP, timeout=1.0, send="PING\\r\\n", expect="PONG")
HTTPS = Monitor(name="tls", type=MonitorType.HTTPS, timeout=2.0, allow_insecure=True)
SITE = "secure.example.test"
NOTHING = "192.0.2.250"  # the value DNS answers: never connected to


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    with backends(tmp_path_factory.mktemp("backends")) as started:
        yield started


@pytest.fixture(scope="module")
def tcp(pool: Backends) -> Backend:
    host = loopback()
    return pool.add("tcp", "svc", host, free_port(host))


@pytest.fixture(scope="module")
def https(pool: Backends) -> Backend:
    require_program("openssl", "openssl")
    cert = self_signed(pool.folder, SITE, days=3)
    host = loopback()
    return pool.add("https", "tls", host, free_port(host), tls=cert)


@pytest.fixture(autouse=True)
def fresh(request: pytest.FixtureRequest) -> None:
    for name in ("tcp", "https"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def run(monitor: Monitor, backend: Backend, **options: object) -> Result:
    monitor = replace(monitor, **options)
    return asyncio.run(run_check(Check(monitor, backend.host, backend.port, monitor.path, ())))


# -- TCP ------------------------------------------------------------------------------


def test_tcp_invert_fails_while_the_service_answers(tcp: Backend) -> None:
    plain = run(TCP, tcp)
    assert (plain.ok, plain.reason) == (True, "reply matched")
    inverted = run(TCP, tcp, invert=True)
    assert (inverted.ok, inverted.reason) == (False, "inverted: reply matched")
    tcp.set(reply="-ERR")
    wrong = run(TCP, tcp, invert=True)
    assert (wrong.ok, wrong.reason) == (True, "inverted: reply lacks 'PONG'")


def test_tcp_invert_passes_when_nothing_listens() -> None:
    host = loopback()
    monitor = replace(TCP, invert=True)
    result = asyncio.run(run_check(Check(monitor, host, free_port(host), "/", ())))
    assert (result.ok, result.reason) == (True, "inverted: connection refused")


def test_tcp_max_response_time(tcp: Backend) -> None:
    tcp.set(delay=0.3)
    slow = run(TCP, tcp, max_response_time=0.1)
    assert not slow.ok and slow.reason.startswith("slow: 0.") and slow.reason.endswith(" s > 0.100 s")
    assert slow.latency is not None and slow.latency >= 0.3
    tcp.set(delay=0.0)
    assert run(TCP, tcp, max_response_time=0.5).ok


def test_tcp_check_address(tcp: Backend) -> None:
    """The check connects to the check address and port; the value is never tried."""
    target = Target(name="nat", value=NOTHING, check_address=tcp.host, port=tcp.port)
    check = build_check(TCP, target, tcp.host)
    before = len(tcp.requests())
    result = asyncio.run(run_check(check))
    assert (result.ok, result.reason) == (True, "reply matched")
    assert len(tcp.requests()) == before + 1 and tcp.requests()[-1]["received"] == "PING\r\n"


# -- HTTPS with a certificate expiring in 3 days ----------------------------------------


def test_https_certificate_expiring_in_three_days(https: Backend) -> None:
    noticed = run(HTTPS, https, certificate_expiry_days=14)
    assert noticed.ok and noticed.certificate_expires is not None, "noticed, not failed"
    failing = run(HTTPS, https, certificate_expiry_days=14, certificate_expiry_fails=True)
    assert not failing.ok
    assert failing.reason in {
        "certificate expires in 2.9 days (under 14)",
        "certificate expires in 3.0 days (under 14)",
    }, failing.reason
    assert run(HTTPS, https, certificate_expiry_days=2, certificate_expiry_fails=True).ok, "3 days left"


def test_https_check_address_keeps_the_site_name(https: Backend) -> None:
    target = Target(name="nat", value=NOTHING, check_address=https.host, port=https.port, host=SITE)
    result = asyncio.run(run_check(build_check(HTTPS, target, https.host)))
    assert (result.ok, result.reason) == (True, "status 200")
    last = https.requests()[-1]
    assert (last["host"], last["sni"]) == (SITE, SITE)


def test_https_slow_and_inverted(https: Backend) -> None:
    https.set(delay=0.3)
    slow = run(HTTPS, https, max_response_time=0.1)
    assert not slow.ok and slow.reason.startswith("slow: ")
    inverted = run(HTTPS, https, max_response_time=0.1, invert=True)
    assert inverted.ok and inverted.reason.startswith("inverted: slow: ")
