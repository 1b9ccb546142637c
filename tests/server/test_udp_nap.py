"""The receive thread's nap (dynserver/server/udp.py, _Receiver, NAP_ENV) on real
sockets: queries that come densely in small batches make it nap before the next
recvmmsg, and every one is answered, with its own ID; a lone query after a quiet moment,
or a full batch, makes it answer without one; the nap can be turned off; the thread
lowers its timer slack so that a nap stays as short as asked."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import dns.message
import pytest

from dynserver.dns.snapshot import Snapshot
from dynserver.model import Listener
from dynserver.server import udp
from dynserver.server.udp import UdpServer
from tests.dns.zones import DYN
from tests.server.test_udp import THREADS, use_reader
from tests.snapshots import load_snapshot
from tests.support import loopback

QUERY = dns.message.make_query("www.dyn.example.test", "A").to_wire()


@pytest.fixture(autouse=True, params=THREADS)
def threaded(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both loops, napping as the Python loop does by default (the C loop's default is
    no nap: test_the_c_loop_naps_only_when_asked)."""
    monkeypatch.setenv(udp.NAP_ENV, str(udp.NAP_US))
    return use_reader(str(request.param), monkeypatch)


def _query(ident: int) -> bytes:
    return ident.to_bytes(2, "big") + QUERY[2:]


def _drain(sock: socket.socket, got: set[int]) -> None:
    while True:
        try:
            reply = sock.recv(4096)
        except BlockingIOError:
            return
        assert dns.message.from_wire(reply).answer, "a real answer"
        got.add(int.from_bytes(reply[:2], "big"))


def _paced(address: tuple[str, int], count: int, gap_s: float) -> set[int]:
    """Send ``count`` queries (IDs 1..count) ``gap_s`` apart; the IDs answered."""
    got: set[int] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(address)
        for ident in range(1, count + 1):
            sock.send(_query(ident))
            until = time.perf_counter() + gap_s
            while time.perf_counter() < until:
                _drain(sock, got)
        deadline = time.monotonic() + 5
        while len(got) < count and time.monotonic() < deadline:
            time.sleep(0.001)
            _drain(sock, got)
    return got


async def _warm(server: UdpServer) -> None:
    """One query, answered: from then on the name is a packet-cache hit."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(server.address)
        sock.send(_query(0))
        await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)


def _serve(snapshot: Snapshot) -> UdpServer:
    server = UdpServer(Listener(loopback(), 0), snapshot.answer, packets=snapshot.packet_cache)  # type: ignore[arg-type]
    server.start()
    assert server._receiver is not None
    return server


def _dense(snapshot: Snapshot, count: int) -> tuple[set[int], float, int]:
    """``count`` queries 20 us apart to a new server: the IDs answered, its receive
    thread's nap and the naps it took."""

    async def main() -> tuple[set[int], float, int]:
        server = _serve(snapshot)
        receiver = server._receiver
        assert receiver is not None
        try:
            await _warm(server)
            got = await asyncio.to_thread(_paced, server.address, count, 20e-6)
        finally:
            server.close()
        return got, receiver.nap, receiver.naps

    return asyncio.run(main())


def test_dense_small_batches_make_the_thread_nap_and_every_query_is_answered(tmp_path: Path) -> None:
    got, nap, naps = _dense(load_snapshot(tmp_path, {"dyn.example.test": DYN}), 500)
    assert nap == udp.NAP_US / 1e6
    assert got == set(range(1, 501))
    assert naps > 0, "queries 20 us apart are dense"


def test_the_c_loop_naps_only_when_asked(
    threaded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the Python loop naps and the C loop does not: its wake-up is cheap, and
    a nap costs latency."""
    monkeypatch.delenv(udp.NAP_ENV)
    got, nap, naps = _dense(load_snapshot(tmp_path, {"dyn.example.test": DYN}), 300)
    assert got == set(range(1, 301))
    if threaded == "native":
        assert (nap, naps) == (0, 0)
    else:
        assert nap == udp.NAP_US / 1e6
        assert naps > 0


def test_a_lone_query_after_a_quiet_moment_is_answered_without_a_nap(tmp_path: Path) -> None:
    snapshot = load_snapshot(tmp_path, {"dyn.example.test": DYN})

    async def main() -> None:
        server = _serve(snapshot)
        receiver = server._receiver
        assert receiver is not None
        try:
            for _ in range(5):
                await asyncio.sleep(0.02)
                await _warm(server)
        finally:
            server.close()
        assert receiver.naps == 0

    asyncio.run(main())


def test_a_full_batch_is_answered_without_a_nap(tmp_path: Path) -> None:
    """A batch of BATCH queries (there when the thread starts) is no small batch."""
    snapshot = load_snapshot(tmp_path, {"dyn.example.test": DYN})
    host = loopback()
    bound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bound.bind((host, 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.connect(bound.getsockname())
        # Warm the cache first, through the core (a miss), on the same socket later.
        assert isinstance(snapshot.answer(QUERY, False, None), bytes)
        for ident in range(1, udp.BATCH + 1):
            client.send(_query(ident))
        time.sleep(0.05)

        async def main() -> int:
            server = UdpServer(Listener(host, 0), snapshot.answer, packets=snapshot.packet_cache)  # type: ignore[arg-type]
            server.start(bound)
            receiver = server._receiver
            assert receiver is not None
            got: set[int] = set()
            client.setblocking(False)
            try:
                deadline = time.monotonic() + 5
                while len(got) < udp.BATCH and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                    _drain(client, got)
            finally:
                server.close()
            assert got == set(range(1, udp.BATCH + 1))
            return receiver.naps

        assert asyncio.run(main()) == 0


def test_the_nap_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(udp.NAP_ENV, "0")
    got, nap, naps = _dense(load_snapshot(tmp_path, {"dyn.example.test": DYN}), 300)
    assert nap == 0
    assert got == set(range(1, 301))
    assert naps == 0


@pytest.mark.parametrize(("setting", "seconds"), [("100", 100e-6), ("-5", 0.0), ("soon", udp.NAP_US / 1e6)])
def test_the_nap_setting(setting: str, seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(udp.NAP_ENV, setting)
    assert udp._nap_seconds() == seconds


def _timer_slack(native_id: int) -> int:
    # /proc/<tid> (not /proc/self/task/<tid>, which has no such file) is the thread's own.
    return int(Path(f"/proc/{native_id}/timerslack_ns").read_text())


@pytest.mark.parametrize("nap", ["50", "0"])
def test_the_thread_lowers_its_timer_slack_when_it_naps(
    nap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/proc/self/timerslack_ns").exists():
        pytest.skip("no /proc/<pid>/timerslack_ns (Linux 4.6+)")
    monkeypatch.setenv(udp.NAP_ENV, nap)
    snapshot = load_snapshot(tmp_path, {"dyn.example.test": DYN})

    async def main() -> tuple[int, int]:
        server = _serve(snapshot)
        receiver = server._receiver
        assert receiver is not None
        try:
            await _warm(server)  # the thread is running
            native_id = receiver._thread.native_id
            assert native_id is not None
            return _timer_slack(native_id), _timer_slack(threading.get_native_id())
        finally:
            server.close()

    thread_slack, own_slack = asyncio.run(main())
    assert thread_slack == (udp.NAP_SLACK_NS if nap != "0" else own_slack)
    assert own_slack != udp.NAP_SLACK_NS, "only the receive thread's slack changes"
