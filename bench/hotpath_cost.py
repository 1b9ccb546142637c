"""What one UDP query costs inside dynserver, without the kernel, for both UDP readers:

* plain: ``UdpServer._on_readable`` (recvfrom/sendto) driven by a fake socket that
  returns the same query 64 times (one batch), then says it would block;
* batched (Linux, the reader dynserver uses there): one batch of ``_MmsgBatch`` on a
  real socket whose buffers one real recvmmsg filled with 64 copies of the query; then
  recvmmsg is replaced by restoring that state (replies overwrite their queries; the
  restore's own cost is measured and subtracted) and sendmmsg by a no-op, so only the
  Python work of a batch is timed (packet-cache hits served in the loop, counters).

    .venv/bin/python bench/hotpath_cost.py [--repeat 5] [--number 2000] [--rrl] [--size 11]

Prints microseconds per query (the minimum of ``--repeat`` timeit runs, each of
``--number`` batches) for a few fixed queries: a fast-path hit with and without EDNS,
one of a record with four values (which rotate since issue 17), NXDOMAIN, REFUSED;
``--rrl`` puts rate limiting (a rate nothing reaches) and cookies on both readers,
``--size`` sets the queries a batch. Used to keep the query counters of /metrics off
the hot path: run it before and after a change to dynserver/dns/snapshot.py or
dynserver/server/udp.py.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import socket
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message

from dynserver import config
from dynserver.app import App
from dynserver.dns.cookies import Cookies
from dynserver.dns.rrl import RateLimiter
from dynserver.server import udp
from dynserver.server.guard import Guard
from dynserver.server.udp import BATCH, UdpServer

ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1
ns1 IN A 192.0.2.53
www IN A 192.0.2.80
"""
CONFIG = """\
[server]
dns = ["127.0.0.1:0"]
database = ""

[zones."dyn.example.test"]
file = "dyn.example.test.zone"

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [{ name = "charlie", value = "192.0.2.21" }]

[zones."dyn.example.test".records.rr]
type = "A"
ttl = 30
targets = [
  { name = "a", value = "192.0.2.31" },
  { name = "b", value = "192.0.2.32" },
  { name = "c", value = "192.0.2.33" },
  { name = "d", value = "192.0.2.34" },
]
"""
ADDRESS = ("127.0.0.1", 40000)


class FakeSocket:
    """recvfrom hands out ``data`` BATCH times per batch; sendto throws the reply away."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.left = BATCH

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if self.left == 0:
            raise BlockingIOError
        self.left -= 1
        return self.data, ADDRESS

    def sendto(self, data: bytes, address: Any) -> int:
        return len(data)


def queries() -> dict[str, bytes]:
    def wire(name: str, rdtype: str, edns: bool) -> bytes:
        return dns.message.make_query(name, rdtype, use_edns=0 if edns else False).to_wire()

    return {
        "A hit, no EDNS": wire("app.dyn.example.test.", "A", False),
        "A hit, EDNS": wire("app.dyn.example.test.", "A", True),
        "A hit, 4 values (rotating)": wire("rr.dyn.example.test.", "A", False),
        "NXDOMAIN": wire("nope.dyn.example.test.", "A", False),
        "REFUSED": wire("example.com.", "A", False),
    }


def batched_reader(
    app: App, data: bytes, guard: Guard | None = None, size: int = BATCH
) -> tuple[Callable[[], int], Callable[[], None]] | None:
    """The batched reader's one-batch step over 64 copies of ``data``, system calls
    stubbed, and the stub's own cost (it restores the 64 queries, which the replies
    overwrite in place) to subtract."""
    if not udp._mmsg_available():
        return None
    # 512-byte slots (every reply here fits) keep the restore a 32 KiB copy that leaves
    # the CPU caches as a real batch finds them; 4 KiB slots would make it 256 KiB.
    udp.RECV_SIZE = 512
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    batch = udp._MmsgBatch(
        server, app.runtime.answer, lambda *args: None, lambda: app.runtime.snapshot.packet_cache(), guard
    )
    for _ in range(BATCH):
        client.sendto(data, server.getsockname())
    time.sleep(0.05)
    ctypes.memmove(batch._msgs_at, batch._fresh_msgs, len(batch._fresh_msgs))
    got = batch._recvmmsg(batch._fd, batch._recv_at, BATCH, 0x40, None)  # MSG_DONTWAIT
    server.close()
    client.close()
    if got != BATCH:
        raise RuntimeError(f"recvmmsg took {got} of {BATCH} queries")
    headers, queries = bytes(batch._msgs), bytes(batch._buffers)
    headers_at, queries_at = batch._msgs_at, ctypes.addressof(batch._buffers)

    def restore() -> None:
        ctypes.memmove(headers_at, headers, len(headers))
        ctypes.memmove(queries_at, queries, len(queries))

    def recvmmsg(fd: int, at: object, count: int, flags: int, timeout: object) -> int:
        restore()
        return size

    batch._recvmmsg = recvmmsg
    batch._sendmmsg = lambda fd, at, count, flags: count
    batch._one_batch()  # a miss is rendered and memoised, then cached
    batch._one_batch()
    return batch._one_batch, restore


def guard_for(rrl: bool) -> Guard | None:
    """With --rrl: cookies and a limiter whose rate nothing here reaches (every reply
    still pays it), as dnsperf_compare.py configures dynserver."""
    if not rrl:
        return None
    return Guard(RateLimiter(rate=10**9, slip=2, window=15.0), Cookies(bytes(16)))


async def measure(
    repeat: int, number: int, rrl: bool = False, size: int = BATCH
) -> dict[str, tuple[float, float | None]]:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "dyn.example.test.zone").write_text(ZONE)
        (Path(folder) / "dynserver.toml").write_text(CONFIG)
        app = App(config.load(Path(folder) / "dynserver.toml"))
    results = {}
    for label, data in queries().items():
        server = UdpServer(app.config.server.dns[0], app.runtime.answer, guard=guard_for(rrl))
        sock = FakeSocket(data)
        server._sock = sock  # type: ignore[assignment]
        on_readable = server._on_readable
        on_readable()  # the first answer of a miss is rendered and memoised

        def batch(sock: FakeSocket = sock, on_readable: Any = on_readable) -> None:
            sock.left = size
            on_readable()

        runs = timeit.repeat(batch, repeat=repeat, number=number)
        plain = min(runs) / number / size * 1e6
        batched = batched_reader(app, data, guard_for(rrl), size)
        micros = None
        if batched is not None:
            step, restore = batched
            total = min(timeit.repeat(step, repeat=repeat, number=number))
            stub = min(timeit.repeat(restore, repeat=repeat, number=number))
            micros = (total - stub) / number / size * 1e6
        results[label] = (plain, micros)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--rrl", action="store_true", help="with rate limiting and cookies on")
    parser.add_argument(
        "--size", type=int, default=BATCH, help=f"queries a batch (default {BATCH}; ~11 at 100k QPS)"
    )
    args = parser.parse_args()
    print(f"{'query':16} {'plain':>8} {'batched':>8}  (us/query)")
    for label, (plain, batched) in asyncio.run(
        measure(args.repeat, args.number, args.rrl, args.size)
    ).items():
        shown = f"{batched:8.3f}" if batched is not None else "     n/a"
        print(f"{label:16} {plain:8.3f} {shown}")


if __name__ == "__main__":
    main()
