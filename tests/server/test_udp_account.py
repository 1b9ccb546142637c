"""The batched reader's accounting of packet-cache hits (dynserver/server/udp.py,
_MmsgBatch._account): a batch of a few queries takes a plain loop of its own
(_account_few), which must count the same hits and charge the rate limiter the same
tally per (client network, reply) as the general path, for IPv4 and IPv6 clients."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dns.message
import pytest

from dynserver.dns.rrl import RateLimiter
from dynserver.server import udp
from dynserver.server.guard import Guard
from tests.dns.zones import DYN
from tests.snapshots import load_snapshot
from tests.support import loopback

NAMES = ["www.dyn.example.test", "mail.dyn.example.test", "ns1.dyn.example.test"]


def _batch(tmp_path: Path, family: socket.AddressFamily, count: int) -> tuple[udp._MmsgBatch, list[int]]:
    """A reader whose buffers hold ``count`` cache hits (names in turn, from two
    clients), served; the snapshot's hit counters."""
    if not udp._mmsg_available():
        pytest.skip("recvmmsg/sendmmsg are Linux-only")
    host = loopback() if family == socket.AF_INET else "::1"
    snapshot = load_snapshot(tmp_path, {"dyn.example.test": DYN})
    queries = [dns.message.make_query(name, "A").to_wire() for name in NAMES]
    for query in queries:  # through the core once: cached from then on
        snapshot.answer(query, False)
    try:
        server = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as error:  # pragma: no cover - a kernel without IPv6
        pytest.skip(f"no IPv6: {error}")
    server.bind((host, 0))
    server.setblocking(False)
    guard = Guard(RateLimiter(rate=10**6, slip=2, window=15.0), None)
    batch = udp._MmsgBatch(server, snapshot.answer, lambda *args: None, snapshot.packet_cache, guard)
    clients = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for i in range(count):
            clients[i % 2].sendto(queries[i % len(queries)], server.getsockname())
        time.sleep(0.05)
        assert batch._receive(batch._recvmmsg, udp._MSG_DONTWAIT) == count
    finally:
        for client in clients:
            client.close()
        server.close()
    cache, hits = snapshot.packet_cache()
    assert batch._serve_hits(count, cache) is None, "every query is a hit"
    return batch, hits


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
@pytest.mark.parametrize("count", [1, 2, udp._FEW])
def test_a_few_hits_are_counted_and_tallied_as_the_general_path_does(
    tmp_path: Path, family: socket.AddressFamily, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch, hits = _batch(tmp_path, family, count)
    before = hits[:]
    few = batch._account(count, hits)
    counted_few = [b - a for a, b in zip(before, hits, strict=True)]
    monkeypatch.setattr(udp, "_FEW", 0)  # the general path
    general = batch._account(count, hits)
    counted = [b - a - c for a, b, c in zip(before, hits, counted_few, strict=True)]
    assert few == general
    assert few is not None and sum(few.values()) == count
    assert counted_few == counted and sum(counted) == count
