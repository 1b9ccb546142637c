"""Helpers for tests that start real servers on 127.0.0.x and talk to them.

Every process a test starts is stopped by PID when the test ends. Tests that need a
Debian package skip with the reason when it is missing, except under CI=true, where a
missing package is a failure (CI must install it: see Makefile, TEST_DEBS).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import dns.message
import dns.query
import dns.rdatatype
import pytest

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "zones"
IN_CI = os.environ.get("CI", "").lower() == "true"
DEADLINE = 15.0  # seconds: a generous bound for anything to happen on a busy 2-core machine

T = TypeVar("T")

# Each test process walks its own slice of 127.0.0.0/8 so parallel runs do not collide.
_addresses = itertools.count(random.randrange(1, 200) * 256 + 10)


def master_file(origin: str, records: str = "", *, nameserver: str = "ns1", serial: int = 1) -> str:
    """A test zone's master file: the SOA every test zone uses, one NS, then ``records``
    (lines relative to ``origin``)."""
    return (
        f"$ORIGIN {origin.rstrip('.')}.\n$TTL 300\n"
        f"@    IN SOA ns1 hostmaster {serial} 3600 600 86400 60\n"
        f"     IN NS  {nameserver}\n{records}"
    )


def loopback() -> str:
    """A fresh 127.x.y.z address (Linux routes all of 127/8 to lo)."""
    n = next(_addresses)
    return f"127.{(n >> 16) & 0xFF or 1}.{(n >> 8) & 0xFF}.{n & 0xFF or 1}"


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on ``host`` (never 53)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free port on {host}")


def require_program(name: str, package: str) -> str:
    """Path of a program from a Debian package; skip (or fail under CI) if missing."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    message = f"{name} not found: install the Debian package {package}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def poll(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    what: str,
    timeout: float = DEADLINE,
    *,
    every: float = 0.05,
) -> T:
    """Fetch every ``every`` seconds until ``done``; fail with the last value after ``timeout``.

    For conditions only visible from outside (a log line, another process's answer):
    where the code under test has an event or a flush, await that instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {value!r}")
        time.sleep(every)


async def until(
    check: Callable[[], bool], what: str = "the condition", timeout: float = 10.0, *, every: float = 0.01
) -> None:
    """The event loop's ``poll``: check every ``every`` seconds, letting other tasks run."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


def wait_for_dns(
    host: str, port: int, qname: str, *, timeout: float = 15.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until a server at host:port answers an SOA query for ``qname`` over UDP."""
    deadline = time.monotonic() + timeout
    query = dns.message.make_query(qname, dns.rdatatype.SOA)
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering")
        try:
            dns.query.udp(query, host, port=port, timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.05)
        except dns.query.UnexpectedSource:
            # The client's own socket got the server's port as its ephemeral port before
            # the server bound it, and received its own query (seen once in CI): retry.
            time.sleep(0.05)
    raise TimeoutError(f"no DNS answer from {host}:{port} within {timeout}s")


def wait_for_http(url: str, timeout: float = 15.0) -> None:
    """Until the web listener answers (it starts after DNS, so DNS answering is not enough)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                response.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a process we started, by PID: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Server:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def dynserver(
    config: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    http: str | None = None,
    zone: str = "dyn.example.test",
    extra: list[str] | None = None,
) -> Iterator[Server]:
    """Run `python -m dynserver serve` on a fresh loopback address until the block ends."""
    host = host or loopback()
    port = port or free_port(host)
    log = config.parent / f"dynserver-{host}-{port}.log"
    command = [
        sys.executable,
        "-m",
        "dynserver",
        "serve",
        "--config",
        str(config),
        "--dns",
        f"{host}:{port}",
        *(["--http", http] if http else []),
        *(extra or []),
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        try:
            wait_for_dns(host, port, zone, process=process)
        except Exception as error:
            raise RuntimeError(f"{error}; log:\n{log.read_text(errors='replace')}") from None
        yield Server(host, port, process, log)
    finally:
        stop(process)


def write_config(folder: Path, zone_files: dict[str, str], extra: str = "") -> Path:
    """Write master files and a config serving them; return the config path."""
    lines = ["[server]", 'dns = ["127.0.0.1:0"]', ""]
    for zone, text in zone_files.items():
        (folder / f"{zone}.zone").write_text(text)
        lines += [f'[zones."{zone}"]', f'file = "{zone}.zone"', ""]
    config = folder / "dynserver.toml"
    config.write_text("\n".join(lines) + "\n" + extra)
    return config


@contextmanager
def server_process(command: list[str], host: str, port: int, zone: str, log: Path) -> Iterator[Server]:
    """Run any DNS server (a peer such as NSD) in the foreground until the block ends.

    Waits until it answers an SOA query for ``zone`` at host:port; its output goes to
    ``log``, which is shown if it fails to start. Stopped by PID.
    """
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_dns(host, port, zone, process=process)
        except Exception as error:
            raise RuntimeError(f"{command[0]}: {error}; log:\n{log.read_text(errors='replace')}") from None
        yield Server(host, port, process, log)
    finally:
        stop(process)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a stream socket; EOFError if the peer closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def tcp_send(sock: socket.socket, wire: bytes) -> None:
    """Send one DNS message over TCP, with its two-byte length (RFC 1035 4.2.2)."""
    sock.sendall(len(wire).to_bytes(2, "big") + wire)


def tcp_read(sock: socket.socket) -> bytes:
    """Read one length-prefixed DNS message from a TCP connection."""
    return recv_exactly(sock, int.from_bytes(recv_exactly(sock, 2), "big"))
