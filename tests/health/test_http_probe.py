"""The HTTP probe against a scripted server: every way a response can end, be too large,
be broken or never come, and the reason the check gives for each.

The server is a real TCP listener on 127.0.0.x. For each connection it reads the request
head, keeps it (so a test can assert what the probe sent), then plays the script of the
test: raw bytes, pauses, a close, or nothing at all. The end-to-end tests
(tests/e2e/test_failover.py) cover TLS, SNI and real server processes; these cover the
HTTP/1.1 framing a real server may use.

Every case runs twice: through ``run_check`` (the coroutine probe) and through the
scheduler, which runs plain HTTP checks as an ``http.Exchange`` on a raw socket (and
hands retries and redirects to ``run_check``): both must give the same result.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import pytest
import uvloop

from dynserver.health.probes import Check, fast_http, run_check
from dynserver.health.scheduler import Scheduler
from dynserver.health.state import Result
from dynserver.model import Monitor, MonitorType
from tests.support import loopback

Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]
MONITOR = Monitor(name="web", type="http", path="/health", timeout=1.0)


RUNNERS: dict[str, Callable[[Awaitable[object]], object]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}
_run = asyncio.run


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case on both event loops: dynserver runs on uvloop, whose transports are not
    asyncio's classes and whose callbacks come in their own order."""
    monkeypatch.setattr(sys.modules[__name__], "_run", RUNNERS[request.param])


async def _probe(check: Check) -> Result:
    return await run_check(check)


async def _scheduled(check: Check) -> Result:
    """The check's first result from a scheduler, as dynserver runs it."""
    got: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
    scheduler: Scheduler[int] = Scheduler(lambda _key, result: got.done() or got.set_result(result))
    scheduler.set_checks({0: (check, 3600.0)})
    scheduler.check_now()
    try:
        return await got
    finally:
        await scheduler.stop()


_runner: Callable[[Check], Awaitable[Result]] = _probe


@pytest.fixture(autouse=True, params=["run_check", "scheduler"])
def check_runner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sys.modules[__name__], "_runner", _probe if request.param == "run_check" else _scheduled
    )


@dataclass
class Scripted:
    """Runs ``script`` for every connection; ``heads`` has each request head received."""

    script: Script
    heads: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            await self.script(head, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def reply(*parts: bytes | float, close: bool = True) -> Script:
    """Send each bytes part, sleep for each float; then close, or hold the connection."""

    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        for part in parts:
            if isinstance(part, bytes):
                writer.write(part)
                await writer.drain()
            else:
                await asyncio.sleep(part)
        if not close:
            await asyncio.sleep(30)

    return script


def check_against(
    script: Script, monitor: Monitor = MONITOR, **overrides: object
) -> tuple[Result, list[bytes]]:
    """Run one check (with its retries) against a fresh scripted server."""

    async def main() -> tuple[Result, list[bytes]]:
        host = loopback()
        server = Scripted(script)
        listener = await asyncio.start_server(server.handle, host, 0)
        port = listener.sockets[0].getsockname()[1]
        check = Check(monitor=monitor, address=host, port=port, path=monitor.path, headers=())
        check = replace(check, **overrides)  # type: ignore[arg-type]
        try:
            result = await _runner(check)
        finally:
            listener.close()
        return result, server.heads

    return _run(main())  # type: ignore[return-value]


OK_HEAD = b"HTTP/1.1 200 OK\r\n"


def test_content_length_body_is_read_and_matched() -> None:
    monitor = replace(MONITOR, expected_body="status=OK")
    result, heads = check_against(reply(OK_HEAD + b"Content-Length: 9\r\n\r\nstatus=OK"), monitor)
    assert (result.ok, result.reason) == (True, "status 200")
    assert result.latency is not None and 0 < result.latency < 1
    assert heads[0].startswith(b"GET /health HTTP/1.1\r\n")


def test_chunked_body_is_joined_across_chunks_and_packets() -> None:
    first, rest = b"Transfer-Encoding: chunked\r\n\r\n5\r\nstatu\r\n", b"4\r\ns=OK\r\n0\r\n\r\n"
    script = reply(OK_HEAD + first, 0.05, rest)
    result, _ = check_against(script, replace(MONITOR, expected_body="status=OK"))
    assert (result.ok, result.reason) == (True, "status 200")


def test_a_body_that_ends_when_the_server_closes_is_complete() -> None:
    script = reply(OK_HEAD + b"Connection: close\r\n\r\nall is well: status=OK", 0.05, b" (still)")
    result, _ = check_against(script, replace(MONITOR, expected_body="(still)"))
    assert (result.ok, result.reason) == (True, "status 200")


def test_a_response_dripped_byte_by_byte_is_parsed() -> None:
    raw = OK_HEAD + b"Content-Length: 9\r\nX-A: b\r\n\r\nstatus=OK"
    parts: list[bytes | float] = []
    for byte in raw:
        parts += [bytes([byte]), 0.001]
    result, _ = check_against(reply(*parts), replace(MONITOR, expected_body="status=OK"))
    assert (result.ok, result.reason) == (True, "status 200")


def test_body_mismatch_and_unexpected_body_are_reasons() -> None:
    script = reply(OK_HEAD + b"Content-Length: 10\r\n\r\nstatus=ERR")
    lacks, _ = check_against(script, replace(MONITOR, expected_body="status=OK"))
    assert (lacks.ok, lacks.reason) == (False, "body lacks 'status=OK'")
    contains, _ = check_against(script, replace(MONITOR, unexpected_body="ERR"))
    assert (contains.ok, contains.reason) == (False, "body contains 'ERR'")


def test_status_codes_outside_the_expected_ones_fail() -> None:
    unavailable, _ = check_against(reply(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
    assert (unavailable.ok, unavailable.reason) == (False, "status 503")
    moved = reply(b"HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")
    default, _ = check_against(moved)  # 2xx and 3xx by default, as Cloudflare's monitors
    assert (default.ok, default.reason) == (True, "status 301")
    strict, _ = check_against(moved, replace(MONITOR, expected_codes=((200, 200),)))
    assert (strict.ok, strict.reason) == (False, "status 301")


def test_a_body_over_the_limit_is_too_large() -> None:
    monitor = replace(MONITOR, max_response_bytes=64)
    sized, _ = check_against(reply(OK_HEAD + b"Content-Length: 1000\r\n\r\n" + b"x" * 1000), monitor)
    assert (sized.ok, sized.reason) == (False, "too large (over 64 bytes)")
    chunks = b"".join(b"20\r\n" + b"y" * 32 + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
    chunked, _ = check_against(reply(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks), monitor)
    assert (chunked.ok, chunked.reason) == (False, "too large (over 64 bytes)")
    # a server that streams forever is cut off at the limit, not at the timeout
    started = time.monotonic()
    endless, _ = check_against(reply(OK_HEAD + b"\r\n" + b"z" * 100, close=False), monitor)
    assert (endless.ok, endless.reason) == (False, "too large (over 64 bytes)")
    assert time.monotonic() - started < MONITOR.timeout


def test_an_endless_response_head_is_too_large() -> None:
    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(OK_HEAD + b"X-Endless: ")
        for _ in range(200):  # 800 KiB of one header value, then nothing
            writer.write(b"a" * 4096)
            await writer.drain()
        await asyncio.sleep(30)

    started = time.monotonic()
    result, _ = check_against(script)
    assert (result.ok, result.reason) == (False, "too large (response head over 65536 bytes)")
    assert time.monotonic() - started < MONITOR.timeout
    # a long head below the limit is fine, and a large body in the head's packet is no head
    fine = OK_HEAD + b"X-Long: " + b"b" * 60_000 + b"\r\nContent-Length: 200000\r\n\r\n" + b"c" * 200_000
    result, _ = check_against(reply(fine))
    assert (result.ok, result.reason) == (True, "status 200")


def test_a_body_cut_short_is_a_closed_connection() -> None:
    result, _ = check_against(reply(OK_HEAD + b"Content-Length: 100\r\n\r\nonly ten.."))
    assert (result.ok, result.reason) == (False, "connection closed by the server mid-body")
    chunked, _ = check_against(reply(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel"))
    assert (chunked.ok, chunked.reason) == (False, "connection closed by the server mid-body")


def test_a_close_before_any_response_is_a_closed_connection() -> None:
    result, _ = check_against(reply())
    assert (result.ok, result.reason) == (False, "connection closed by the server")


def test_a_half_sent_status_line_is_a_closed_connection() -> None:
    result, _ = check_against(reply(b"HTTP/1.1 20"))
    assert result.ok is False
    assert result.reason == "connection closed by the server"


def test_garbage_is_a_bad_http_response() -> None:
    result, _ = check_against(reply(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"))
    assert result.ok is False
    assert result.reason.startswith("bad HTTP response"), result.reason


def test_head_reads_no_body_even_with_a_content_length() -> None:
    # the server announces 1000 bytes it will (rightly) never send for HEAD, and keeps the
    # connection open: the check must end at the head, not wait for the timeout.
    monitor = replace(MONITOR, method="HEAD")
    result, heads = check_against(reply(OK_HEAD + b"Content-Length: 1000\r\n\r\n", close=False), monitor)
    assert (result.ok, result.reason) == (True, "status 200")
    assert result.latency is not None and result.latency < MONITOR.timeout / 2
    assert heads[0].startswith(b"HEAD /health HTTP/1.1\r\n")


def test_no_content_ends_at_the_head() -> None:
    result, _ = check_against(reply(b"HTTP/1.1 204 No Content\r\n\r\n", close=False))
    assert (result.ok, result.reason) == (True, "status 204")
    assert result.latency is not None and result.latency < MONITOR.timeout / 2


def test_an_informational_response_is_skipped() -> None:
    script = reply(b"HTTP/1.1 100 Continue\r\n\r\n", 0.02, OK_HEAD + b"Content-Length: 9\r\n\r\nstatus=OK")
    result, _ = check_against(script, replace(MONITOR, expected_body="status=OK"))
    assert (result.ok, result.reason) == (True, "status 200")


def test_the_request_names_the_site_agent_and_extra_headers() -> None:
    monitor = replace(MONITOR, method="GET", user_agent="okerr-compatible/1")
    headers = (("Host", "www.example.test"), ("X-Check", "yes"))
    result, heads = check_against(
        reply(OK_HEAD + b"Content-Length: 0\r\n\r\n"), monitor, headers=headers, path="/status?full=1"
    )
    assert result.ok
    lines = heads[0].decode("latin-1").split("\r\n")
    assert lines[0] == "GET /status?full=1 HTTP/1.1"
    fields = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in lines[1:] if line}
    assert fields["host"] == "www.example.test"
    assert fields["user-agent"] == "okerr-compatible/1"
    assert fields["x-check"] == "yes"
    assert fields["connection"] == "close"
    assert [line.lower().startswith("host:") for line in lines].count(True) == 1


def test_the_default_host_header_is_the_address_and_port() -> None:
    result, heads = check_against(reply(OK_HEAD + b"Content-Length: 0\r\n\r\n"))
    assert result.ok
    host_line = next(line for line in heads[0].decode().split("\r\n") if line.lower().startswith("host:"))
    assert host_line.split(":", 1)[1].strip().count(":") == 1  # "127.x.y.z:port"


def test_redirects_are_followed_on_the_same_address_when_asked() -> None:
    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        if head.startswith(b"GET /health "):
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n")
        else:
            writer.write(OK_HEAD + b"Content-Length: 9\r\n\r\nstatus=OK")
        await writer.drain()

    monitor = replace(MONITOR, follow_redirects=True, expected_body="status=OK")
    result, heads = check_against(script, monitor, headers=(("Host", "site.example.test"),))
    assert (result.ok, result.reason) == (True, "status 200")
    assert [head.split(b"\r\n")[0] for head in heads] == [b"GET /health HTTP/1.1", b"GET /final HTTP/1.1"]
    assert all(b"\r\nHost: site.example.test\r\n" in head for head in heads)


def test_a_redirect_loop_ends_with_a_reason() -> None:
    loop = reply(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
    result, heads = check_against(loop, replace(MONITOR, follow_redirects=True))
    assert (result.ok, result.reason) == (False, "more than 5 redirects")
    assert len(heads) == 6


def test_a_server_that_never_answers_times_out_within_the_timeout() -> None:
    monitor = replace(MONITOR, timeout=0.3)
    started = time.monotonic()
    silent, _ = check_against(reply(close=False), monitor)
    assert (silent.ok, silent.reason) == (False, "timeout")
    stalled, _ = check_against(reply(OK_HEAD + b"Content-Length: 100\r\n\r\nhalf", close=False), monitor)
    assert (stalled.ok, stalled.reason) == (False, "timeout")
    assert time.monotonic() - started < 2 * 0.3 + 0.5


def test_a_closed_port_is_refused() -> None:
    async def main() -> Result:
        host = loopback()
        listener = await asyncio.start_server(lambda r, w: None, host, 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()
        return await _runner(Check(monitor=MONITOR, address=host, port=port, path="/", headers=()))

    result = _run(main())
    assert (result.ok, result.reason) == (False, "connection refused")


@pytest.mark.parametrize("fails", [1, 2])
def test_retries_run_again_within_one_check(fails: int) -> None:
    count = 0

    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        status = b"500 Oops" if count <= fails else b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    result, heads = check_against(script, replace(MONITOR, retries=1))
    assert len(heads) == 2
    assert (result.ok, result.reason) == ((True, "status 200") if fails == 1 else (False, "status 500"))


def test_plain_http_runs_without_a_coroutine_and_the_rest_with_one() -> None:
    """What the scheduler runs as an Exchange: plain HTTP to an address, no retries or redirects."""
    check = Check(monitor=MONITOR, address="127.0.0.1", port=80, path="/health", headers=())
    assert fast_http(check) is not None
    assert fast_http(replace(check, monitor=replace(MONITOR, retries=1))) is None
    assert fast_http(replace(check, monitor=replace(MONITOR, follow_redirects=True))) is None
    assert fast_http(replace(check, monitor=replace(MONITOR, type=MonitorType.HTTPS))) is None
    assert fast_http(replace(check, address="backend.example.test")) is None
