"""NSD, Knot and BIND as secondaries of a dynserver, for the e2e tests and the
propagation bench: their configs, and each one run in the foreground on 127.0.0.x.

Each secondary listens on its own loopback address and also uses it as the source of
its transfers (NSD ``outgoing-interface``, Knot ``via``, BIND ``transfer-source``), so
dynserver's address rules see who is asking; the NOTIFY rule names the primary's
address (and key). Only the standard library and dnspython: the bench imports this
without pytest. Every process is stopped by PID.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

KINDS = ("nsd", "knot", "bind")
# kind -> (program, Debian package)
PROGRAMS = {"nsd": ("nsd", "nsd"), "knot": ("knotd", "knot"), "bind": ("named", "bind9")}


@dataclass(frozen=True)
class Primary:
    host: str
    port: int
    zone: str  # no final dot


@dataclass(frozen=True)
class Key:
    name: str
    secret: str  # base64
    algorithm: str = "hmac-sha256"


def listen_host(kind: str, fresh: str) -> str:
    """The address a secondary of this kind can listen on: ``fresh`` (a 127.x.y.z of the
    caller's) for NSD and Knot, 127.0.0.1 for BIND, which only listens on addresses that
    an interface has (lo has 127.0.0.1, and routes the rest of 127/8 without owning it)."""
    return "127.0.0.1" if kind == "bind" else fresh


def find_program(kind: str) -> str | None:
    name = PROGRAMS[kind][0]
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


def logged_transition(log: str, target: str, current: str) -> float | None:
    """The wall-clock time (dynserver's log stamp, UTC to the millisecond) of the first
    health transition of ``target`` to ``current`` in ``log``, or None."""
    found = re.search(
        rf"^time=(\S+) .*event=target_health record=\S+ target={re.escape(target)} "
        rf"previous=\w+ current={current}",
        log,
        re.M,
    )
    if found is None:
        return None
    return datetime.datetime.fromisoformat(found.group(1)).timestamp()


# -- configs ---------------------------------------------------------------------------


def nsd_config(run: Path, host: str, port: int, primary: Primary, key: Key | None) -> str:
    # xfrd-reload-timeout 0: NSD waits a second before serving a transfer by default.
    key_text = ""
    if key is not None:
        key_text = (
            f'key:\n    name: "{key.name}"\n    algorithm: {key.algorithm}\n    secret: "{key.secret}"\n'
        )
    key_name = key.name if key else "NOKEY"
    return f"""\
server:
    ip-address: {host}@{port}
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{run}"
    database: ""
    zonelistfile: "{run}/zone.list"
    xfrdfile: "{run}/xfrd.state"
    xfrdir: "{run}"
    pidfile: "{run}/nsd.pid"
    verbosity: 2
    xfrd-reload-timeout: 0
    rrl-ratelimit: 0
remote-control:
    control-enable: no
{key_text}
zone:
    name: "{primary.zone}"
    zonefile: "{primary.zone}.zone"
    request-xfr: {primary.host}@{primary.port} {key_name}
    allow-notify: {primary.host} {key_name}
    outgoing-interface: {host}
"""


def knot_config(run: Path, host: str, port: int, primary: Primary, key: Key | None) -> str:
    key_text = (
        f"key:\n  - id: {key.name}\n    algorithm: {key.algorithm}\n    secret: {key.secret}\n" if key else ""
    )
    key_line = f"    key: {key.name}\n" if key else ""
    return f"""\
server:
    rundir: "{run}"
    listen: {host}@{port}
    pidfile: "{run}/knot.pid"
log:
  - target: stderr
    any: info
database:
    storage: "{run}/db"
control:
    listen: "{run}/knot.sock"
{key_text}
remote:
  - id: primary
    address: {primary.host}@{primary.port}
    via: {host}
{key_line}
acl:
  - id: notify_from_primary
    address: {primary.host}
    action: notify
{key_line}
template:
  - id: default
    storage: "{run}/zones"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
zone:
  - domain: {primary.zone}
    master: primary
    acl: notify_from_primary
"""


def bind_config(run: Path, host: str, port: int, primary: Primary, key: Key | None) -> str:
    key_text = f'key "{key.name}" {{ algorithm {key.algorithm}; secret "{key.secret}"; }};\n' if key else ""
    key_clause = f" key {key.name}" if key else ""
    return f"""\
options {{
    directory "{run}";
    pid-file "{run}/named.pid";
    session-keyfile "{run}/session.key";
    managed-keys-directory "{run}";
    listen-on port {port} {{ {host}; }};
    listen-on-v6 {{ none; }};
    transfer-source {host};
    query-source address {host};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
{key_text}
zone "{primary.zone}" {{
    type secondary;
    file "{primary.zone}.db";
    primaries port {primary.port} {{ {primary.host}{key_clause}; }};
    allow-notify {{ {primary.host}; }};
}};
"""


CONFIGS = {"nsd": nsd_config, "knot": knot_config, "bind": bind_config}


def primary_config(
    zone: str,
    secondaries: dict[str, tuple[str, int]],
    keys: dict[str, str],
    tsig: bool,
    backends: tuple[tuple[str, int], tuple[str, int]],
    interval: float,
) -> str:
    """dynserver's config as the primary: ``keys`` (name -> secret, ``xfr`` among them),
    every secondary listed (with key ``xfr`` when ``tsig``), and record ``app`` failing
    over from alpha to beta (``backends``: their host and TCP port) on a tcp check."""
    key = ', key = "xfr"' if tsig else ""
    listed = ", ".join(f'{{ address = "{host}:{port}"{key} }}' for host, port in secondaries.values())
    tables = "".join(f'[keys.{name}]\nsecret = "{secret}"\n\n' for name, secret in keys.items())
    (alpha, port), (beta, _) = backends
    return f"""\
[server]
dns = ["127.0.0.1:0"]

{tables}[monitors.port]
type = "tcp"
port = {port}
interval = {interval}
timeout = {interval}

[zones."{zone}"]
file = "zone"

[zones."{zone}".transfer]
secondaries = [{listed}]

[zones."{zone}".records.app]
type = "A"
ttl = 30
monitor = "port"
targets = [
  {{ name = "alpha", value = "{alpha}", priority = 1 }},
  {{ name = "beta", value = "{beta}", priority = 2 }},
]
"""


def command(kind: str, program: str, conf: Path) -> list[str]:
    if kind == "nsd":
        return [program, "-d", "-c", str(conf)]
    if kind == "knot":
        return [program, "-c", str(conf)]
    return [program, "-g", "-c", str(conf)]


# -- a running secondary ---------------------------------------------------------------


@dataclass
class Secondary:
    kind: str
    host: str
    port: int
    zone: str
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.folder / "output.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def ask(self, name: str, rdtype: str, timeout: float = 0.5) -> dns.message.Message | None:
        try:
            return dns.query.udp(
                dns.message.make_query(name, rdtype), self.host, port=self.port, timeout=timeout
            )
        except (dns.exception.DNSException, OSError):
            return None

    def serial(self) -> int | None:
        reply = self.ask(self.zone + ".", "SOA")
        if reply is None or reply.rcode() != dns.rcode.NOERROR or not reply.answer:
            return None
        return int(reply.answer[0][0].serial)

    def addresses(self, name: str) -> frozenset[str] | None:
        """The A records it answers for ``name`` (None: no usable answer)."""
        reply = self.ask(name, "A")
        if reply is None or reply.rcode() != dns.rcode.NOERROR:
            return None
        return frozenset(
            r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset
        )

    def pause(self) -> None:
        """SIGSTOP: it keeps its state and its sockets, and handles nothing until resumed."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def secondary(
    kind: str, program: str, folder: Path, host: str, port: int, primary: Primary, key: Key | None
) -> Iterator[Secondary]:
    """Run one secondary in the foreground until the block ends (then stop it by PID)."""
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("db", "zones"):
        (folder / sub).mkdir(exist_ok=True)
    conf = folder / f"{kind}.conf"
    conf.write_text(CONFIGS[kind](folder, host, port, primary, key))
    with open(folder / "output.log", "wb") as out:
        process = subprocess.Popen(command(kind, program, conf), stdout=out, stderr=subprocess.STDOUT)
    running = Secondary(kind, host, port, primary.zone, folder, process)
    try:
        deadline = time.monotonic() + 20
        while running.ask(primary.zone + ".", "SOA", timeout=0.2) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start; its output:\n{running.log_text()}")
            time.sleep(0.05)
        yield running
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
