"""A private network namespace for tests that need fixed ports, such as 53.

Some set-ups cannot be tested on a free high port: a delegation's glue is an address without
a port, so a resolver following a delegation always asks port 53. Such tests run inside a
network namespace of their own, where only ``lo`` exists and 127.0.0.0/8 belongs to the
test alone: port 53 there touches nothing of the host, and no traffic can leave.

How: a ``sleep`` started with ``unshare --net`` holds the namespace open (for a non-root
user where the kernel allows it: ``unshare --user --map-root-user --net``, a namespace in
which the user is root). Every program that must live in it, and every query a test
sends, is started through ``nsenter`` into that holder's namespace. Everything is started
under ``setpriv --pdeathsig KILL``, so it dies with the test process even if that crashes;
on a normal end, ``close`` stops each process by PID, then any straggler still in the
namespace, then the holder, and the kernel frees the namespace with its last process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import dns.flags
import dns.message
import dns.rdatatype
import pytest

from tests.support import IN_CI, require_program, stop

# Runs inside the namespace: sends one DNS message (hex on argv) over UDP or TCP and prints
# the reply in hex; with a wait > 0, retries until something answers. Only the standard
# library, so it starts fast.
_ASK = r"""
import socket, struct, sys, time
host, port, wire, proto, timeout, wait = sys.argv[1:7]
port, wire, timeout = int(port), bytes.fromhex(wire), float(timeout)
deadline = time.monotonic() + float(wait)
family = socket.AF_INET6 if ":" in host else socket.AF_INET

def exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data

def ask():
    if proto == "tcp":
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            return exactly(sock, struct.unpack("!H", exactly(sock, 2))[0])
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.send(wire)
        return sock.recv(65535)

while True:
    try:
        print(ask().hex())
        break
    except (OSError, EOFError) as error:
        if time.monotonic() >= deadline:
            sys.exit(f"no answer from {host} port {port}: {error}")
        time.sleep(0.05)
"""


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class NetNamespace:
    """A network namespace held open by ``holder``; see the module docstring."""

    def __init__(self, holder: subprocess.Popen[bytes], user_namespace: bool) -> None:
        self.holder = holder
        self.user_namespace = user_namespace
        self.processes: list[subprocess.Popen[bytes]] = []
        self._setpriv = require_program("setpriv", "util-linux")
        self._nsenter = require_program("nsenter", "util-linux")
        self._inode = os.stat(f"/proc/{holder.pid}/ns/net").st_ino

    def command(self, argv: Sequence[str | Path]) -> list[str]:
        """``argv`` as a command line that runs inside the namespace."""
        enter = [self._nsenter, f"--net=/proc/{self.holder.pid}/ns/net"]
        if self.user_namespace:
            enter[1:1] = ["--preserve-credentials", f"--user=/proc/{self.holder.pid}/ns/user"]
        return [self._setpriv, "--pdeathsig", "KILL", *enter, "--", *map(str, argv)]

    def popen(
        self,
        argv: Sequence[str | Path],
        log: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running program in the namespace (output to ``log``); stopped by close()."""
        with open(log, "ab") as out:
            process = subprocess.Popen(
                self.command(argv), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env
            )
        self.processes.append(process)
        return process

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        timeout: float = 30.0,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command in the namespace and return its output."""
        done = subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout, env=env)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def ask(
        self,
        host: str,
        port: int,
        query: dns.message.Message,
        *,
        tcp: bool = False,
        timeout: float = 3.0,
        wait: float = 0.0,
    ) -> subprocess.Popen[bytes]:
        """Start sending ``query`` from inside the namespace; the reply is printed in hex."""
        argv = [sys.executable, "-S", "-c", _ASK, host, port, query.to_wire().hex()]
        argv += ["tcp" if tcp else "udp", timeout, wait]
        return subprocess.Popen(self.command(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def query(
        self,
        host: str,
        port: int,
        qname: str,
        rdtype: str = "A",
        *,
        recursion: bool = False,
        tcp: bool = False,
        timeout: float = 5.0,
    ) -> dns.message.Message:
        """Ask host:port (inside the namespace) one question and return the parsed reply."""
        query = dns.message.make_query(qname, dns.rdatatype.from_text(rdtype))
        if not recursion:
            query.flags &= ~dns.flags.RD
        asking = self.ask(host, port, query, tcp=tcp, timeout=timeout)
        out, err = asking.communicate(timeout=timeout + 10)
        if asking.returncode != 0:
            raise AssertionError(f"{qname} {rdtype} @{host}#{port}: {err.decode(errors='replace').strip()}")
        reply = dns.message.from_wire(bytes.fromhex(out.decode().strip()))
        assert reply.id == query.id
        return reply

    def wait_for_dns(
        self,
        host: str,
        port: int,
        qname: str,
        *,
        timeout: float = 15.0,
        process: subprocess.Popen[bytes] | None = None,
        log: Path | None = None,
    ) -> None:
        """Wait until host:port (inside the namespace) answers an SOA query for ``qname``."""
        query = dns.message.make_query(qname, dns.rdatatype.SOA)
        asking = self.ask(host, port, query, timeout=0.5, wait=timeout)
        try:
            while asking.poll() is None:
                if process is not None and process.poll() is not None:
                    shown = log.read_text(errors="replace") if log else ""
                    raise AssertionError(f"{process.args} exited with {process.returncode}:\n{shown}")
                time.sleep(0.05)
        finally:
            stop(asking)
        if asking.returncode != 0:
            error = asking.stderr.read().decode(errors="replace") if asking.stderr else ""
            shown = log.read_text(errors="replace") if log else ""
            raise AssertionError(f"{host}#{port} did not answer: {error}\n{shown}")

    def pids(self) -> list[int]:
        """PIDs of every process now in the namespace, the holder included."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.stat(entry / "ns" / "net").st_ino == self._inode:
                    found.append(int(entry.name))
            except OSError:
                continue  # gone, or not ours to look at
        return found

    def close(self) -> None:
        """Stop, by PID, what was started in the namespace, then any straggler, then the holder."""
        for process in reversed(self.processes):
            stop(process)
        for pid in self.pids():
            if pid != self.holder.pid:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        stop(self.holder)


@contextmanager
def net_namespace() -> Iterator[NetNamespace]:
    """A fresh network namespace with ``lo`` up; skips (fails under CI) if none can be made."""
    unshare = require_program("unshare", "util-linux")
    setpriv = require_program("setpriv", "util-linux")
    ip = require_program("ip", "iproute2")
    user_namespace = os.geteuid() != 0
    flags = ["--user", "--map-root-user", "--net"] if user_namespace else ["--net"]
    holder = subprocess.Popen(
        [setpriv, "--pdeathsig", "KILL", unshare, *flags, "sleep", "infinity"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ours = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 10
    while True:
        if holder.poll() is not None:
            reason = holder.stderr.read().decode(errors="replace").strip() if holder.stderr else ""
            _unavailable(
                f"cannot create a network namespace ({reason or 'unshare failed'}): "
                "run as root, or allow unprivileged user namespaces"
            )
        try:
            if os.readlink(f"/proc/{holder.pid}/ns/net") != ours:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(holder)
            raise TimeoutError("unshare did not create a network namespace within 10 s")
        time.sleep(0.01)
    namespace = NetNamespace(holder, user_namespace)
    try:
        namespace.run([ip, "link", "set", "lo", "up"])
        yield namespace
    finally:
        namespace.close()
