"""How the scheduler runs plain-HTTP checks at scale (``http.Poller``, ``http.Exchange``):
one epoll for every check's socket, timeouts in a wheel swept by one loop timer, and
nothing per check left for the garbage collector. What a check reports is covered by
tests/health/test_http_probe.py (every case through the scheduler too); these cover the
mechanism: a hanging check still fails at its timeout (never sooner, at most about a
slot later), a removed check frees its socket at once, the loop sees one reader and a
few timers however many checks run, a connection that is not up at once is waited for.
Real listeners on 127.x addresses, on both event loops."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from dynserver.health import http
from dynserver.health.probes import Check
from dynserver.health.scheduler import Scheduler
from dynserver.health.state import Result
from dynserver.model import Monitor, MonitorType
from tests.support import loopback

RUNNERS: dict[str, Callable[[Awaitable[object]], object]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}
_run = asyncio.run
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "_run", RUNNERS[request.param])


def http_check(host: str, port: int, timeout: float, path: str = "/") -> Check:
    monitor = Monitor(name="web", type=MonitorType.HTTP, timeout=timeout)
    return Check(monitor=monitor, address=host, port=port, path=path, headers=())


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def test_a_check_that_hangs_fails_at_its_timeout_within_a_slot() -> None:
    """Two timeouts in one wheel: each check fails at its own, not sooner, and no later
    than one slot (plus the loop's wake-up) after it."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    async def main() -> dict[int, float]:
        host = loopback()
        server = await asyncio.start_server(hold, host, 0)
        port = server.sockets[0].getsockname()[1]
        took: dict[int, float] = {}
        started = time.monotonic()

        def done(key: int, result: Result) -> None:
            assert (result.ok, result.reason) == (False, "timeout")
            took[key] = time.monotonic() - started

        sched: Scheduler[int] = Scheduler(done)
        sched.set_checks({1: (http_check(host, port, 0.15), 60.0), 2: (http_check(host, port, 0.4), 60.0)})
        sched.check_now()
        started = time.monotonic()
        while len(took) < 2 and time.monotonic() - started < 3:
            await asyncio.sleep(0.01)
        await sched.stop()
        for writer in held:
            writer.close()
        server.close()
        return took

    took = _run(main())
    assert isinstance(took, dict)
    slack = http.TIMEOUT_TICK + 0.1  # one slot, and a busy test machine's loop wake-up
    assert 0.15 <= took[1] <= 0.15 + slack, took
    assert 0.4 <= took[2] <= 0.4 + slack, took


def test_a_removed_check_frees_its_socket_at_once_and_reports_nothing() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    async def main() -> tuple[int, int, list[Result], bool]:
        host = loopback()
        server = await asyncio.start_server(hold, host, 0)
        port = server.sockets[0].getsockname()[1]
        results: list[Result] = []
        sched: Scheduler[int] = Scheduler(lambda key, result: results.append(result))
        sched.set_checks({0: (http_check(host, port, 0.3), 60.0)})
        sched.check_now()
        while not accepted:
            await asyncio.sleep(0.01)
        exchange = sched._running[0]
        assert isinstance(exchange, http.Exchange)
        fd, poller = exchange.fd, sched._poller
        assert poller is not None and poller.watched == 1
        sched.set_checks({})  # removed while its request waits for an answer
        watched = poller.watched
        try:
            os.fstat(fd)
            closed = False
        except OSError:
            closed = True
        await asyncio.sleep(0.5)  # past its timeout: still no report
        await sched.stop()
        for writer in accepted:
            writer.close()
        server.close()
        return fd, watched, results, closed

    result = _run(main())
    assert isinstance(result, tuple)
    fd, watched, results, closed = result
    assert fd >= 0 and watched == 0 and closed
    assert results == []


def test_many_checks_need_one_reader_and_few_timers_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop watches the poller's epoll, not each socket, and times out checks with
    a timer per slot, not one per check: 300 checks, one add_reader, a handful of timers."""
    calls = {"add_reader": 0, "call_at": 0, "call_later": 0}

    async def main() -> list[Result]:
        loop = asyncio.get_running_loop()
        for name in calls:
            original = getattr(loop, name)

            def counting(
                *args: object, _original: Callable[..., object] = original, _name: str = name, **kw: object
            ) -> object:
                calls[_name] += 1
                return _original(*args, **kw)

            monkeypatch.setattr(loop, name, counting)
        host = loopback()
        server = await asyncio.start_server(answer_ok, host, 0, backlog=512)
        port = server.sockets[0].getsockname()[1]
        results: list[Result] = []
        sched: Scheduler[int] = Scheduler(lambda key, result: results.append(result), max_in_flight=300)
        sched.set_checks({n: (http_check(host, port, 2.0, f"/{n}"), 60.0) for n in range(300)})
        sched.check_now()
        for _ in range(300):
            if len(results) == 300:
                break
            await asyncio.sleep(0.01)
        await sched.stop()
        server.close()
        return results

    results = _run(main())
    assert isinstance(results, list)
    assert len(results) == 300 and all(r.ok for r in results)
    # The loop's own server took a reader; the scheduler's poller one more.
    assert calls["add_reader"] <= 2, calls
    # The scheduler's wake-ups and the wheel's slots (300 checks started within ~0.1 s,
    # timeouts 2 s: a few slots), far from one timer per check.
    assert calls["call_at"] + calls["call_later"] < 60, calls


def test_a_finished_check_leaves_nothing_for_the_garbage_collector() -> None:
    """The parser and the exchange refer to each other while it runs; once it ends the
    cycle is broken, so reference counting frees it (2,000 checks a second at 20,000
    targets were 2,000 cycles a second for the collector)."""

    async def main() -> list[object]:
        host = loopback()
        server = await asyncio.start_server(answer_ok, host, 0)
        port = server.sockets[0].getsockname()[1]
        results: list[Result] = []
        sched: Scheduler[int] = Scheduler(lambda key, result: results.append(result))
        sched.set_checks({n: (http_check(host, port, 2.0, f"/{n}"), 60.0) for n in range(20)})
        sched.check_now()
        while len(results) < 20:
            await asyncio.sleep(0.01)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            await asyncio.sleep(0)
            sched.check_now()  # again, now under watch
            while len(results) < 40:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            gc.collect()
            left = [
                o for o in gc.garbage if isinstance(o, http.Exchange) or type(o).__name__.endswith("Parser")
            ]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        await sched.stop()
        server.close()
        return left

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        left = _run(main())
    finally:
        if was_enabled:
            gc.enable()
    assert left == []


def test_a_connection_not_up_at_once_is_waited_for_then_the_request_goes() -> None:
    """The listener's queue is full, so the check's SYN is dropped and connect() stays in
    progress: the exchange waits for the socket to be writable (the kernel's SYN retry,
    about a second later), then sends its request and reads the answer."""

    async def main() -> tuple[Result, int]:
        host = loopback()
        listener = socket.socket()
        listener.bind((host, 0))
        listener.listen(0)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        filler = socket.create_connection((host, port))  # fills the accept queue
        results: list[Result] = []
        sched: Scheduler[int] = Scheduler(lambda key, result: results.append(result))
        sched.set_checks({0: (http_check(host, port, 4.0), 60.0)})
        sched.check_now()
        await asyncio.sleep(0.2)
        exchange = sched._running[0]
        assert isinstance(exchange, http.Exchange)
        pending = len(exchange.pending)
        loop = asyncio.get_running_loop()
        first, _ = await loop.sock_accept(listener)  # the filler: the queue has room again
        first.close()
        conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 4)
        conn.setblocking(False)
        head = b""
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(conn, 4096)
        await loop.sock_sendall(conn, OK)
        while not results:
            await asyncio.sleep(0.01)
        await sched.stop()
        conn.close()
        filler.close()
        listener.close()
        return results[0], pending

    outcome = _run(main())
    assert isinstance(outcome, tuple)
    result, pending = outcome
    assert pending > 0  # it was waiting to send
    assert (result.ok, result.reason) == (True, "status 200")
