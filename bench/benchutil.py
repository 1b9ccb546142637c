"""Helpers shared by ``failover_compare.py`` and ``check_capacity.py``.

Processes (start in their own session, stop by PID: SIGTERM, then SIGKILL, then any
leftover descendant, never a PID that was reused), CPU accounting from /proc (how much
CPU *other* processes used while a bench ran: the machine is shared), free ports on
127.0.0.0/8, template rendering, and DNS queries with dnspython. Standard library and
dnspython only.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import dns.exception
import dns.message
import dns.query
import dns.rcode

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
HTTP_OK_SERVER = BENCH_DIR / "http_ok_server.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S = 5.0
NOISY_SHARE = 0.10  # other processes using more than 10 % of a core: "not quiet"


class BenchError(Exception):
    """A process did not start, did not answer, or died: the bench cannot go on."""


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int  # utime + stime + cutime + cstime
    starttime: int  # tells a process from a later one that reuses its PID


def read_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ProcStat(pid, int(fields[1]), utime + stime + cutime + cstime, int(fields[19]))


def process_tree(root: int) -> list[ProcStat]:
    """The root process and all its live descendants."""
    stats = [s for s in (read_stat(int(p)) for p in os.listdir("/proc") if p.isdigit()) if s]
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    tree = [s for s in stats if s.pid == root]
    todo = list(tree)
    while todo:
        kids = children.get(todo.pop().pid, [])
        tree += kids
        todo += kids
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of a process tree, reaped children included (cutime/cstime)."""
    return sum(s.ticks for s in process_tree(root)) / CLK_TCK


def busy_cpu_seconds(cpus: Sequence[int] | None = None) -> float:
    """Non-idle time of the given CPUs (default: all) since boot, from /proc/stat."""
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, values[:8])
        total += user + nice + system + irq + softirq + steal
    return total / CLK_TCK


def own_cpu_seconds() -> float:
    """CPU of this harness and everything it started (live or reaped)."""
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    live = sum(s.ticks for s in process_tree(os.getpid()) if s.pid != os.getpid()) / CLK_TCK
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_usage.ru_utime + self_usage.ru_stime + live + reaped.ru_utime + reaped.ru_stime


class NoiseMeter:
    """How much CPU other processes (not this harness and its children) used meanwhile."""

    def __init__(self, cpus: Sequence[int] | None = None) -> None:
        self.cpus = cpus
        self.start_wall = time.monotonic()
        self.start_busy = busy_cpu_seconds(cpus)
        self.start_own = own_cpu_seconds()

    def other_cpu_seconds(self) -> float:
        busy = busy_cpu_seconds(self.cpus) - self.start_busy
        return max(0.0, busy - (own_cpu_seconds() - self.start_own))

    def other_share(self) -> float:
        """Other processes' CPU as a share of one core, averaged since the start."""
        return self.other_cpu_seconds() / max(time.monotonic() - self.start_wall, 1e-6)


def noise_note(share: float, what: str) -> str | None:
    if share <= NOISY_SHARE:
        return None
    return (
        f"other processes used {100 * share:.0f}% of a core during {what}: "
        "the machine was not quiet, numbers are unreliable"
    )


# --------------------------------------------------------------------------- processes


def start(
    argv: Sequence[str], log: IO[bytes], cpu: int | None = None, cwd: Path | None = None, pipe: bool = False
) -> subprocess.Popen[bytes]:
    """Start a process in its own session (a Ctrl-C reaches only the harness), output to
    log; with pipe, stdout is a pipe (for wait_line) and only stderr goes to log."""
    full = ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)
    return subprocess.Popen(
        full,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipe else log,
        stderr=log if pipe else subprocess.STDOUT,
        start_new_session=True,
    )


def signal_if_same(stat: ProcStat, sig: signal.Signals) -> None:
    """Signal a process we started, unless its PID now belongs to another process."""
    now = read_stat(stat.pid)
    if now is not None and now.starttime == stat.starttime:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stat.pid, sig)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (after SIGCONT, in case it is stopped), SIGKILL after a grace period,
    then any descendant still alive."""
    descendants = [s for s in process_tree(proc.pid) if s.pid != proc.pid]
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
    for stat in descendants:
        signal_if_same(stat, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(read_stat(s.pid) for s in descendants) and time.monotonic() < deadline:
        time.sleep(0.05)
    for stat in descendants:
        signal_if_same(stat, signal.SIGKILL)
    if proc.stdout is not None:
        proc.stdout.close()


def command_of(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    parts = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
    return shlex.join(os.fsdecode(a) if isinstance(a, bytes | os.PathLike) else str(a) for a in parts)


def wait_line(proc: subprocess.Popen[bytes], expected: bytes, timeout: float) -> None:
    """Wait until the process prints a line starting with ``expected`` on its stdout pipe."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    buffer = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            raise BenchError(f"{command_of(proc)} exited (code {proc.wait()})")
        buffer += chunk
        if any(line.startswith(expected) for line in buffer.split(b"\n")):
            return
    raise BenchError(f"no '{expected.decode()}' from {command_of(proc)} in {timeout} s")


def ok_server_argv(addresses: Sequence[str], port: int, extra: Sequence[str] = ()) -> list[str]:
    argv = [sys.executable, str(HTTP_OK_SERVER), "--port", str(port)]
    for address in addresses:
        argv += ["--address", address]
    return argv + list(extra)


def dynserver_binary() -> str:
    """The dynserver entry point next to the running interpreter (.venv/bin), else PATH."""
    beside = Path(sys.executable).parent / "dynserver"
    if beside.exists():
        return str(beside)
    return shutil.which("dynserver") or str(REPO_DIR / ".venv" / "bin" / "dynserver")


# --------------------------------------------------------------------------- ports, files


def free_port(addr: str) -> int:
    """A port free for both UDP and TCP on addr (never 53)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((addr, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((addr, port))
                except OSError:
                    continue
        if port != 53:
            return port
    raise BenchError(f"no free port on {addr}")


def common_tcp_port(addrs: Sequence[str]) -> int:
    """A TCP port free on every address (bound and released at once: a small race)."""
    for _ in range(50):
        port = free_port(addrs[0])
        sockets: list[socket.socket] = []
        try:
            for addr in addrs:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((addr, port))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise BenchError("no common free TCP port")


def render(template: Path, dest: Path, values: Mapping[str, str]) -> Path:
    """Copy a template with every @PLACEHOLDER@ replaced; fail on a leftover one."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    leftover = re.findall(r"@[A-Z0-9]+@", text)
    if leftover:
        raise BenchError(f"{template}: unknown placeholders {sorted(set(leftover))}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest


def display_path(path: Path) -> str:
    """path relative to the current directory when below it, for copy-pasteable commands."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def invocation() -> str:
    return shlex.join([display_path(Path(sys.executable).absolute()), *sys.argv])


def dynserver_version() -> str:
    """The commit the bench ran, and whether dynserver/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "dynserver"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return head + (" + uncommitted changes in dynserver/" if dirty else "")


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- DNS


def ask(addr: str, port: int, name: str, rdtype: str, timeout: float = 0.3) -> dns.message.Message | None:
    query = dns.message.make_query(name, rdtype)
    try:
        return dns.query.udp(query, addr, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return None


def addresses(reply: dns.message.Message | None) -> frozenset[str]:
    if reply is None:
        return frozenset()
    return frozenset(rd.to_text() for rrset in reply.answer for rd in rrset)


def wait_soa(proc: subprocess.Popen[bytes], addr: str, port: int, zone: str, timeout: float) -> None:
    """Wait until the server answers the zone's SOA."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with code {proc.returncode} before answering")
        reply = ask(addr, port, zone, "SOA")
        if reply is not None and reply.rcode() == dns.rcode.NOERROR and reply.answer:
            return
        time.sleep(0.1)
    raise BenchError(f"no SOA answer on {addr}:{port} within {timeout:.0f} s")


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (share in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)
