"""Real locations for tests of issue 13: a dynserver with its web listener, `dynserver
agent run` processes each under a uid of its own, and partitions between one location and
one backend.

A partition is a rule in an nftables table of the test's own (a unique name, deleted when
the test ends, even when it fails): ``meta skuid UID ip daddr BACKEND tcp dport PORT drop``
in an output hook chain. Agents run under uids no other process uses (setpriv), so a rule
on an agent's uid cuts only that agent from that backend; the server's own location is
the test's uid (root), and a rule on uid 0 with that backend's address and port cuts only
the server's checks of it (the backends, also root, only answer: their packets go to other
ports). Dropped packets make a check time out, as a broken path does.

Needs root (nftables, setuid) and the ``nft`` program: skipped with the reason otherwise,
a failure under CI=true. Every process is stopped by PID when the test ends.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import Backend
from tests.support import (
    IN_CI,
    ROOT,
    Server,
    dynserver,
    free_port,
    loopback,
    poll,
    require_program,
    stop,
    wait_for_http,
)

# Agents' uids: a block no account uses, a different slice per test process so two runs
# on one machine never share a uid (and so never share a partition).
_FIRST_UID = 41000 + (os.getpid() % 500) * 16


def unavailable(message: str) -> None:
    """Skip with ``message``; under CI=true, where everything must run, fail instead."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_agents() -> None:
    """Agents run under uids of their own: root and setpriv are needed."""
    if os.geteuid() != 0:
        unavailable("agents under uids of their own (and partitions by uid) need root")
    require_program("setpriv", "util-linux")


def require_partitions() -> str:
    """The ``nft`` program, once it is clear this process may add rules and switch uids."""
    require_agents()
    nft = require_program("nft", "nftables")
    listed = subprocess.run([nft, "list", "tables"], capture_output=True, text=True, timeout=10)
    if listed.returncode != 0:
        unavailable(f"nft cannot list tables (no CAP_NET_ADMIN here?): {listed.stderr.strip()}")
    return nft


# -- partitions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """One rule: ``uid`` cannot reach ``host``:``port`` over TCP."""

    uid: int
    host: str
    port: int
    handle: int


class Firewall:
    """An nftables table of this test's own; ``close`` deletes it with every rule in it."""

    def __init__(self, nft: str) -> None:
        self.nft = nft
        self.table = f"dynserver_test_{os.getpid()}_{secrets.token_hex(4)}"
        self._run("add", "table", "inet", self.table)
        self._run(
            "add",
            "chain",
            "inet",
            self.table,
            "output",
            "{ type filter hook output priority 0 ; policy accept ; }",
        )

    def _run(self, *argv: str) -> str:
        done = subprocess.run([self.nft, *argv], capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise AssertionError(f"nft {' '.join(argv)}: {done.stderr.strip()}")
        return done.stdout

    def cut(self, uid: int, host: str, port: int) -> Partition:
        """Drop ``uid``'s TCP packets to host:port from now on; connections already open
        are cut too (their next packet is dropped), and checks use fresh ones anyway."""
        rule = ["meta", "skuid", str(uid), "ip", "daddr", host, "tcp", "dport", str(port), "drop"]
        echoed = self._run("--echo", "--handle", "add", "rule", "inet", self.table, "output", *rule)
        found = re.search(r"# handle (\d+)", echoed)
        assert found is not None, f"nft printed no handle: {echoed!r}"
        return Partition(uid, host, port, int(found.group(1)))

    def heal(self, partition: Partition) -> None:
        self._run("delete", "rule", "inet", self.table, "output", "handle", str(partition.handle))

    def close(self) -> None:
        subprocess.run([self.nft, "delete", "table", "inet", self.table], capture_output=True, timeout=10)


@contextmanager
def firewall() -> Iterator[Firewall]:
    wall = Firewall(require_partitions())
    try:
        yield wall
    finally:
        wall.close()


# -- agents -------------------------------------------------------------------------------


def agent_cli(*args: str) -> str:
    """`dynserver agent ARGS` (add, list, remove: on the server's database); its output,
    once it has exited 0."""
    command = [sys.executable, "-m", "dynserver", "agent", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}"
    return done.stdout


def add_agent(config: Path, name: str, *extra: str) -> str:
    """Register an agent; its token (the last line `dynserver agent add` prints)."""
    return agent_cli("add", "--config", str(config), "--name", name, *extra).splitlines()[-1].strip()


def remove_agent(config: Path, name: str) -> None:
    agent_cli("remove", "--config", str(config), "--name", name)


@functools.cache
def _unreadable_for(uid: int) -> str | None:
    """Why a process under ``uid`` cannot run dynserver from this checkout (None: it can).
    The venv, the checkout or the interpreter may sit in a folder only root may enter."""
    done = subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            sys.executable,
            "-c",
            "import dynserver.cli",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        env={"PATH": os.environ.get("PATH", "")},
    )
    return None if done.returncode == 0 else done.stderr.strip()[-500:]


@dataclass
class Agent:
    """One `dynserver agent run` process under uid ``uid``, its token in a folder only that
    uid can read (the test's own tmp_path is root's alone)."""

    name: str
    uid: int
    server_url: str
    token: str
    log: Path
    home: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix=f"dynserver-agent-{self.name}-"))
        token_file = self.token_file
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        for path in (self.home, token_file):
            os.chown(path, self.uid, self.uid)

    @property
    def token_file(self) -> Path:
        return self.home / "token"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        why = _unreadable_for(self.uid)
        if why is not None:
            unavailable(f"uid {self.uid} cannot run dynserver from {ROOT} with {sys.executable}: {why}")
        command = [
            "setpriv",
            "--pdeathsig",
            "KILL",
            f"--reuid={self.uid}",
            f"--regid={self.uid}",
            "--clear-groups",
            sys.executable,
            "-m",
            "dynserver",
            "agent",
            "run",
            "--server",
            self.server_url,
            "--token-file",
            str(self.token_file),
            "--log-level",
            "debug",
        ]
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        with open(self.log, "ab") as out:
            out.write(b"--- start\n")
            out.flush()
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=self.home, env=environment
            )

    def kill(self) -> None:
        """SIGKILL: the agent vanishes mid-stream, as a crashed VPS does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


# -- the server, its API and the whole set-up ------------------------------------------------


def api_get(base: str, secret: str, path: str, timeout: float = 5.0) -> Any:
    """GET /api/v1/PATH with a bearer credential; the decoded JSON body."""
    request = urllib.request.Request(base + "/api/v1" + path, headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class Locations:
    """A dynserver with a [locations] table, its agents and a firewall of the test's own."""

    config: Path
    zone: str
    admin: str  # an admin API credential's secret
    dns_host: str
    dns_port: int
    http: str  # host:port of the web listener (and the agents' endpoints)
    local: str  # the server's own location name
    agents: dict[str, Agent]
    wall: Firewall | None
    stack: ExitStack
    server: Server | None = None
    _server_stack: ExitStack = field(default_factory=ExitStack)

    @property
    def base(self) -> str:
        return f"http://{self.http}"

    def start_server(self) -> Server:
        """Start the server (again, at the same addresses: agents find it where it was)."""
        assert self.server is None, "already running"
        self.server = self._server_stack.enter_context(
            dynserver(self.config, host=self.dns_host, port=self.dns_port, http=self.http, zone=self.zone)
        )
        wait_for_http(self.base + "/healthz")
        return self.server

    def stop_server(self) -> None:
        self._server_stack.close()
        self._server_stack = ExitStack()
        self.server = None

    def restart_server(self) -> Server:
        self.stop_server()
        return self.start_server()

    def api(self, path: str) -> Any:
        return api_get(self.base, self.admin, path)

    def statuses(self) -> dict[str, dict[str, Any]]:
        """GET /api/v1/locations, by location name."""
        return {status["name"]: status for status in self.api("/locations")["locations"]}

    def target(self, label: str, name: str) -> dict[str, Any]:
        """A target's API body: its ``locations`` (one view per location) and ``vote``."""
        body: dict[str, Any] = self.api(f"/records/{label}.{self.zone}/targets/{name}")
        return body

    def views(self, label: str, name: str) -> dict[str, dict[str, Any]]:
        """The target as each location sees it, by location name."""
        return {view["name"]: view for view in self.target(label, name)["locations"]}

    def events(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        events: list[dict[str, Any]] = self.api("/events" + (f"?{query}" if query else ""))["events"]
        return events

    def uid(self, location: str) -> int:
        """Whose packets a partition of ``location`` drops: root's for the server itself."""
        return 0 if location == self.local else self.agents[location].uid

    def cut(self, location: str, backend: Backend) -> Partition:
        """``location`` can no longer reach ``backend`` (every other location still can)."""
        assert self.wall is not None, "partitions need the firewall (partitions=True)"
        return self.wall.cut(self.uid(location), backend.host, backend.port)

    def heal(self, partition: Partition) -> None:
        assert self.wall is not None
        self.wall.heal(partition)

    def wait_connected(self, *names: str, since: float = 0.0, targets: int | None = None) -> None:
        """Until every named agent is connected (and, with ``since``, heard from after it:
        a Unix time) and, with ``targets``, every named location is fresh for that many."""

        def ready(statuses: dict[str, dict[str, Any]]) -> bool:
            for name in names:
                status = statuses.get(name)
                if status is None:
                    return False
                if name != self.local and not status["connected"]:
                    return False
                if since and (status["last_contact"] or 0) < since:
                    return False
                if targets is not None and status["fresh_targets"] != targets:
                    return False
            return True

        poll(self.statuses, ready, f"locations {names} connected and fresh", timeout=20.0, every=0.1)


@contextmanager
def locations(
    folder: Path,
    config: Path,
    zone: str,
    admin: str,
    agent_names: tuple[str, ...],
    *,
    local: str = "local",
    partitions: bool = True,
) -> Iterator[Locations]:
    """The server from ``config`` (its database in ``folder``) and one running agent per
    name, each registered with `dynserver agent add` and under a uid of its own; with
    ``partitions``, a firewall. Skipped (failed under CI=true) without what they need: call
    require_agents or require_partitions first to skip before starting anything else."""
    with ExitStack() as stack:
        wall = stack.enter_context(firewall()) if partitions else None
        if agent_names:
            require_agents()
        host, web = loopback(), loopback()
        setup = Locations(
            config=config,
            zone=zone,
            admin=admin,
            dns_host=host,
            dns_port=free_port(host),
            http=f"{web}:{free_port(web)}",
            local=local,
            agents={},
            wall=wall,
            stack=stack,
        )
        for index, name in enumerate(agent_names):
            token = add_agent(config, name)
            agent = Agent(name, _FIRST_UID + index, setup.base, token, folder / f"agent-{name}.log")
            stack.callback(agent.close)
            setup.agents[name] = agent
        stack.callback(setup.stop_server)
        setup.start_server()
        for agent in setup.agents.values():
            agent.start()
        yield setup


# -- a hand-made agent: the protocol from outside, for forged and replayed results ----------


class Stream:
    """``GET /api/v1/agent/stream`` read line by line in a thread of its own, as an agent
    would; ``ended`` is set (and ``ended_at``, monotonic) when the server ends it."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token
        self.lines: list[dict[str, Any]] = []
        self.status: int | None = None
        self.ended = threading.Event()
        self.ended_at: float | None = None
        self.error: str | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=30.0))
        self._thread = threading.Thread(target=self._read, name="agent-stream", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "User-Agent": "dynserver-agent/test"}
        try:
            with self._client.stream("GET", self.base + "/api/v1/agent/stream", headers=headers) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if line.strip():
                        self.lines.append(json.loads(line))
        except httpx.HTTPError as error:
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.ended_at = time.monotonic()
            self.ended.set()

    def hello(self, timeout: float = 10.0) -> dict[str, Any]:
        """The first line, once it is there."""
        poll(lambda: self.lines or self.ended.is_set(), bool, "the stream's hello", timeout)
        assert self.lines, f"the stream ended before its hello: {self.status} {self.error}"
        hello = self.lines[0]
        assert hello["type"] == "hello", hello
        return hello

    def post(self, body: bytes | dict[str, Any], token: str | None = None) -> httpx.Response:
        """POST /api/v1/agent/results (a dict is sent as JSON, bytes as they are)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"}
        return self._client.post(self.base + "/api/v1/agent/results", content=content, headers=headers)

    def close(self) -> None:
        self._client.close()
        self._thread.join(2)  # a stream the server never ended: the thread is a daemon


@contextmanager
def stream(base: str, token: str) -> Iterator[Stream]:
    opened = Stream(base, token)
    try:
        yield opened
    finally:
        opened.close()
