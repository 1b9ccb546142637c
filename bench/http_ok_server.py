"""A small, fast HTTP server that answers 200 to every request: the backends of the benches.

One process, one asyncio event loop, any number of listening sockets on 127.0.0.0/8:

    python bench/http_ok_server.py --address 127.0.0.151 --port 18080          # one backend
    python bench/http_ok_server.py --count 5000 --port 18080 --log arrivals.txt  # 5,000 targets

With ``--count N`` it answers on N addresses ``127.77.x.y`` (see ``target_address``), the
same port on each, as N separate targets would: one listening socket on the wildcard
address tied to the loopback device (SO_BINDTODEVICE "lo": nothing from outside the
machine reaches it), each connection's local address naming its target. 20,000 targets
then need one descriptor, not 20,000 (the open-files hard limit here is 20,000). Where
binding to the device is not allowed (it needs CAP_NET_RAW), one socket per address, as
before. ``--port 0`` picks a free port. It prints ``ready <port>`` on stdout once
listening, and stops on SIGTERM or SIGINT. It runs on uvloop when installed (a cheaper
accept per connection: the backends must not take the CPU the bench measures).

``--log PATH`` appends one line per accepted connection, ``<target index> <time>``, where
time is ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process on the
machine), so a harness can see when each target was checked. ``--stats PATH`` writes, at
exit, how many requests were served and how late the server's own event loop ran (a tick
every 50 ms): arrival times are only as exact as that lag.

Every request gets ``200 OK`` with a 3-byte body (none for HEAD) and the connection is
closed, as health checkers expect. Standard library (and uvloop, if installed) only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO, cast

TARGETS_PER_NET = 250  # 127.77.<k // 250>.<k % 250 + 1>
MAX_REQUEST_BYTES = 65536
TICK_S = 0.05
FLUSH_S = 1.0
BODY = b"ok\n"


def target_address(index: int) -> str:
    """The address of capacity target ``index`` (0-based): 127.77.0.1, 127.77.0.2, ..."""
    return f"127.77.{index // TARGETS_PER_NET}.{index % TARGETS_PER_NET + 1}"


def target_index(address: str) -> int:
    """The inverse of ``target_address``; -1 for any other address."""
    parts = address.split(".")
    if len(parts) != 4 or parts[:2] != ["127", "77"]:
        return -1
    return int(parts[2]) * TARGETS_PER_NET + int(parts[3]) - 1


def loopback_listener(port: int) -> socket.socket | None:
    """One socket on 0.0.0.0:port that only the loopback device reaches, or None where
    SO_BINDTODEVICE is not allowed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
    except (OSError, AttributeError):
        sock.close()
        return None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def response(head_only: bool) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + BODY


GET_RESPONSE = response(head_only=False)
HEAD_RESPONSE = response(head_only=True)


class Recorder:
    """Where arrivals go: a buffered text file, flushed every second and at exit."""

    def __init__(self, log: IO[str] | None) -> None:
        self.log = log
        self.requests = 0

    def arrived(self, index: int) -> None:
        self.requests += 1
        if self.log is not None:
            self.log.write(f"{index} {time.monotonic():.6f}\n")

    def flush(self) -> None:
        if self.log is not None:
            self.log.flush()


class OkProtocol(asyncio.Protocol):
    """Read one request head, answer 200, close."""

    def __init__(self, index: int | None, recorder: Recorder) -> None:
        self.index = index  # None: the target is the connection's local address
        self.recorder = recorder
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        index = self.index
        if index is None:
            index = target_index(transport.get_extra_info("sockname")[0])
        self.recorder.arrived(index)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer and len(self.buffer) < MAX_REQUEST_BYTES:
            return
        self.transport.write(HEAD_RESPONSE if self.buffer.startswith(b"HEAD ") else GET_RESPONSE)
        self.transport.close()
        self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def watch_lag(lags: list[float], stop: asyncio.Event) -> None:
    """Measure how late the event loop runs a timer: the error bar of every arrival time."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
        lags.append(max(0.0, loop.time() - due))


async def flush_often(recorder: Recorder, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(FLUSH_S)
        recorder.flush()


async def serve(addresses: list[str], count: int, port: int, recorder: Recorder, stats: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    wildcard = loopback_listener(port) if count else None
    if wildcard is not None:
        port = wildcard.getsockname()[1]
        servers.append(
            await loop.create_server(lambda: OkProtocol(None, recorder), sock=wildcard, backlog=4096)
        )
    elif count:
        addresses = addresses + [target_address(k) for k in range(count)]
    for index, address in enumerate(addresses):
        server = await loop.create_server(
            lambda i=index: OkProtocol(None if count else i, recorder),  # type: ignore[misc]
            address,
            port,
            reuse_address=True,
            backlog=128,
        )
        port = port or server.sockets[0].getsockname()[1]
        servers.append(server)
    print(f"ready {port}", flush=True)
    lags: list[float] = []
    helpers = [asyncio.create_task(watch_lag(lags, stop)), asyncio.create_task(flush_often(recorder, stop))]
    await stop.wait()
    for server in servers:
        server.close()
    for task in helpers:
        task.cancel()
    await asyncio.gather(*helpers, return_exceptions=True)
    recorder.flush()
    if stats is not None:
        summary = {
            "requests": recorder.requests,
            "loop_lag_p50_s": percentile(lags, 0.50),
            "loop_lag_p99_s": percentile(lags, 0.99),
            "loop_lag_max_s": max(lags, default=0.0),
        }
        stats.write_text(json.dumps(summary) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--address", action="append", default=[], help="listen on this address (repeatable)")
    parser.add_argument("--count", type=int, default=0, help="also answer on N target addresses 127.77.x.y")
    parser.add_argument("--port", type=int, required=True, help="0: a free port (printed after ready)")
    parser.add_argument("--log", type=Path, help="append '<target index> <monotonic time>' per connection")
    parser.add_argument("--stats", type=Path, help="write a JSON summary here at exit")
    args = parser.parse_args(argv)
    if not args.address and not args.count:
        parser.error("give --address or --count")
    if args.address and args.count:
        parser.error("give --address or --count, not both (--count logs target indexes)")
    if any(not a.startswith("127.") for a in args.address):
        parser.error("only 127.0.0.0/8 addresses")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(args.log.open("a", buffering=1 << 16)) if args.log else None
        run = asyncio.run
        with contextlib.suppress(ImportError):
            import uvloop

            run = uvloop.run
        run(serve(args.address, args.count, args.port, Recorder(log), args.stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
