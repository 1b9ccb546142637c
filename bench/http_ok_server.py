"""A small, fast HTTP server that answers 200 to every request: the backends of the benches.

One process, one asyncio event loop, any number of listening sockets on 127.0.0.0/8:

    python bench/http_ok_server.py --address 127.0.0.151 --port 18080          # one backend
    python bench/http_ok_server.py --count 5000 --port 18080 --log arrivals.txt  # 5,000 targets

With ``--count N`` it listens on N addresses ``127.77.x.y`` (see ``target_address``), the
same port on each, as N separate targets would. It prints ``ready`` on stdout once every
socket listens, and stops on SIGTERM or SIGINT.

``--log PATH`` appends one line per accepted connection, ``<target index> <time>``, where
time is ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process on the
machine), so a harness can see when each target was checked. ``--stats PATH`` writes, at
exit, how many requests were served and how late the server's own event loop ran (a tick
every 50 ms): arrival times are only as exact as that lag.

Every request gets ``200 OK`` with a 3-byte body (none for HEAD) and the connection is
closed, as health checkers expect. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import IO

TARGETS_PER_NET = 250  # 127.77.<k // 250>.<k % 250 + 1>
MAX_REQUEST_BYTES = 65536
TICK_S = 0.05
FLUSH_S = 1.0
BODY = b"ok\n"


def target_address(index: int) -> str:
    """The address of capacity target ``index`` (0-based): 127.77.0.1, 127.77.0.2, ..."""
    return f"127.77.{index // TARGETS_PER_NET}.{index % TARGETS_PER_NET + 1}"


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

    def __init__(self, index: int, recorder: Recorder) -> None:
        self.index = index
        self.recorder = recorder
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.recorder.arrived(self.index)

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


async def serve(addresses: list[str], port: int, recorder: Recorder, stats: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    for index, address in enumerate(addresses):
        servers.append(
            await loop.create_server(
                lambda i=index: OkProtocol(i, recorder),  # type: ignore[misc]
                address,
                port,
                reuse_address=True,
                backlog=128,
            )
        )
    print("ready", flush=True)
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
    parser.add_argument("--count", type=int, default=0, help="also listen on N target addresses 127.77.x.y")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, help="append '<target index> <monotonic time>' per connection")
    parser.add_argument("--stats", type=Path, help="write a JSON summary here at exit")
    args = parser.parse_args(argv)
    addresses = args.address + [target_address(k) for k in range(args.count)]
    if not addresses:
        parser.error("give --address or --count")
    if any(not a.startswith("127.") for a in addresses):
        parser.error("only 127.0.0.0/8 addresses")
    args.addresses = addresses
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(args.log.open("a", buffering=1 << 16)) if args.log else None
        asyncio.run(serve(args.addresses, args.port, Recorder(log), args.stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
