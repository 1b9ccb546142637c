"""The C receive loop (dynserver/server/_hitloop.c) on its own: what the Python loop
does not have (its credit table). Everything both loops do is tested on both, in
test_udp.py, test_udp_thread.py, test_udp_nap.py and test_guard.py."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import dns.message
import pytest

from dynserver.dns.rrl import RateLimiter
from dynserver.model import Listener
from dynserver.server.guard import Guard
from dynserver.server.udp import UdpServer
from tests.dns.zones import DYN
from tests.server.test_udp import use_reader
from tests.server.test_udp_thread import NAME, OLD, Holder, _addresses
from tests.snapshots import load_snapshot
from tests.support import loopback


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch) -> None:
    use_reader("native", monkeypatch)


def test_the_credit_table_starts_over_when_full(native: None, tmp_path: Path) -> None:
    """More (network, reply) keys than the C loop keeps credit for (1,024: 0x20 case
    variants of one name, each its own cache entry): the table is emptied and refilled,
    every query still gets its own answer, and the limiter is charged for all of them."""
    holder = Holder(load_snapshot(tmp_path, {"dyn.example.test": DYN}))
    limiter = RateLimiter(rate=1_000_000, slip=0, window=1.0)
    guard = Guard(limiter, None)
    names = ["".join(c.upper() if (n >> k) & 1 else c for k, c in enumerate(NAME)) for n in range(1100)]
    queries = [dns.message.make_query(name, "A").to_wire() for name in names]

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        server = UdpServer(Listener(loopback(), 0), holder.answer, packets=holder.packets, guard=guard)
        server.start()
        assert server._receiver is not None
        native = server._receiver.native
        most = 0
        answered = 0
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(server.address)
                for _ in range(2):  # a miss each, then a hit each
                    for first in range(0, len(queries), 50):
                        for query in queries[first : first + 50]:
                            sock.send(query)
                        for _ in queries[first : first + 50]:
                            reply = dns.message.from_wire(
                                await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
                            )
                            answered += _addresses(reply.to_wire()) == {OLD}
                        most = max(most, native.credits)
        finally:
            server.close()
        return most, answered

    most, answered = asyncio.run(main())
    assert answered == 2 * len(queries)
    assert 0 < most <= 1024
