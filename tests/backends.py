"""Real backends for failover tests: one small server per process, so a test can kill
(SIGKILL), hang (SIGSTOP), resume (SIGCONT) and restart each one like a real server.

Run as ``python -m tests.backends KIND --host H --port P --state DIR`` (KIND: http,
https, tcp or dns). Each backend reads ``DIR/control.json`` on every request, so a test
changes what it answers (status, body, reply, rcode) without restarting it, and appends
one JSON line per request to ``DIR/requests.jsonl`` (Host header, TLS SNI, path...), so a
test can assert what the health checker really sent.

The server half uses only the standard library (plus dnslib for ``dns``) and imports
nothing from the test suite: a backend starts in well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseRequestHandler, TCPServer, ThreadingTCPServer
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONTROL = "control.json"
REQUESTS = "requests.jsonl"
# What a backend answers until told otherwise: healthy for every monitor type.
DEFAULTS: dict[str, Any] = {
    "status": 200,  # http/https status
    "body": "status=OK",  # http/https body
    "reply": "+PONG",  # tcp: the line sent back after a line is received
    "rcode": "NOERROR",  # dns rcode
    "data": "192.0.2.53",  # dns: the A record answered
    "delay": 0.0,  # http/https/tcp: seconds to wait before answering (a slow server)
}


# -- the server side (runs in the backend process) -----------------------------------


class _State:
    """The control file and the request log of one backend process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def control(self) -> dict[str, Any]:
        try:
            loaded = json.loads((self.folder / CONTROL).read_text())
        except (OSError, ValueError):
            loaded = {}
        return {**DEFAULTS, **loaded}

    def record(self, **entry: Any) -> None:
        line = json.dumps({"at": time.time(), **entry}) + "\n"
        with self._lock, open(self.folder / REQUESTS, "a") as log:
            log.write(line)


class LocalHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that does not ask DNS for its own name. http.server's
    server_bind calls socket.getfqdn(host): a PTR query to the system's resolver, that is
    traffic outside 127.0.0.0/8 (and a stall wherever that resolver is slow)."""

    def server_bind(self) -> None:
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _HttpServer(LocalHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    state: _State
    tls: ssl.SSLContext | None = None
    sni = threading.local()  # the handshake runs in the handler's thread: SNI per thread

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshakes happen here, in the request's own thread, so one client that
        # never finishes its handshake cannot block accept() for everyone else.
        if self.tls is not None:
            self.sni.name = None
            request = self.tls.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes and clients that hang up are the point of these tests


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        control = self.server.state.control()
        self.server.state.record(
            kind="http",
            method=self.command,
            path=self.path,
            host=self.headers.get("Host"),
            sni=getattr(self.server.sni, "name", None) if self.server.tls else None,
            user_agent=self.headers.get("User-Agent"),
        )
        time.sleep(float(control["delay"]))
        body = str(control["body"]).encode()
        self.send_response(int(control["status"]))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        if 300 <= int(control["status"]) < 400:
            self.send_header("Location", "/elsewhere")
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_http(host: str, port: int, state: _State, cert: str | None, key: str | None) -> None:
    server = _HttpServer((host, port), _HttpHandler)
    server.state = state
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        def remember_sni(_sock: Any, name: str | None, _context: Any) -> None:
            _HttpServer.sni.name = name

        context.sni_callback = remember_sni
        server.tls = context
    _ready()
    server.serve_forever()


class _LineHandler(BaseRequestHandler):
    """TCP: answer each received line with the configured reply (a PING/PONG service)."""

    server: _TcpServer

    def handle(self) -> None:
        self.request.settimeout(5)
        try:
            data = self.request.recv(4096)
        except OSError:
            return
        self.server.state.record(kind="tcp", received=data.decode("latin-1"))
        if data:
            control = self.server.state.control()
            time.sleep(float(control["delay"]))
            self.request.sendall((str(control["reply"]) + "\r\n").encode())


class _TcpServer(ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    state: _State


def _serve_tcp(host: str, port: int, state: _State) -> None:
    server = _TcpServer((host, port), _LineHandler)
    server.state = state
    _ready()
    server.serve_forever()


def _serve_dns(host: str, port: int, state: _State) -> None:
    """UDP DNS: every question gets the configured rcode, and for A an A record."""
    from dnslib import QTYPE, RCODE, RR, A, DNSRecord

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    _ready()
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            request = DNSRecord.parse(data)
        except Exception:
            continue
        control = state.control()
        qname = str(request.q.qname)
        state.record(kind="dns", qname=qname, qtype=QTYPE[request.q.qtype])
        reply = request.reply()
        reply.header.rcode = getattr(RCODE, str(control["rcode"]))
        if reply.header.rcode == RCODE.NOERROR and request.q.qtype == QTYPE.A:
            reply.add_answer(RR(qname, QTYPE.A, rdata=A(str(control["data"])), ttl=5))
        sock.sendto(reply.pack(), peer)


def _ready() -> None:
    print("ready", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["http", "https", "tcp", "dns"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args(argv)
    state = _State(args.state)
    if args.kind in ("http", "https"):
        _serve_http(args.host, args.port, state, args.cert, args.key)
    elif args.kind == "tcp":
        _serve_tcp(args.host, args.port, state)
    else:
        _serve_dns(args.host, args.port, state)


# -- the test side ---------------------------------------------------------------------


@dataclass
class Backend:
    """One backend process at a fixed address: kill it, hang it, bring it back."""

    kind: str
    name: str
    host: str
    port: int
    folder: Path
    tls: tuple[Path, Path] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart, at the same address) and return once it is listening."""
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [
            sys.executable,
            "-m",
            "tests.backends",
            self.kind,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--state",
            str(self.folder),
        ]
        if self.tls is not None:
            command += ["--cert", str(self.tls[0]), "--key", str(self.tls[1])]
        with open(self.folder / "stderr.log", "ab") as errors:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, cwd=ROOT)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.process.stdout.fileno(), False)
        seen = b""
        while b"ready" not in seen:
            if self.process.poll() is not None:
                raise RuntimeError(f"backend {self.name} exited: {(self.folder / 'stderr.log').read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"backend {self.name} not ready within {timeout}s")
            seen += self.process.stdout.read() or b""
            time.sleep(0.01)
        self.process.stdout.close()  # it prints nothing else

    def kill(self) -> None:
        """SIGKILL: the address refuses connections at once (a crashed server)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def hang(self) -> None:
        """SIGSTOP: the kernel still completes TCP handshakes, nothing ever answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def set(self, **control: Any) -> None:
        """Change what the backend answers from its next request on (atomically)."""
        current = json.loads((self.folder / CONTROL).read_text()) if (self.folder / CONTROL).exists() else {}
        temporary = self.folder / (CONTROL + ".tmp")
        temporary.write_text(json.dumps({**current, **control}))
        os.replace(temporary, self.folder / CONTROL)

    def reset(self) -> None:
        (self.folder / CONTROL).unlink(missing_ok=True)

    def requests(self) -> list[dict[str, Any]]:
        path = self.folder / REQUESTS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Backends:
    """Starts backends and stops every one of them (by PID) when the block ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.all: list[Backend] = []

    def add(
        self, kind: str, name: str, host: str, port: int, tls: tuple[Path, Path] | None = None
    ) -> Backend:
        folder = self.folder / f"backend-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        backend = Backend(kind, name, host, port, folder, tls)
        self.all.append(backend)
        backend.start()
        return backend

    def stop_all(self) -> None:
        for backend in self.all:
            backend.kill()  # SIGKILL also ends a SIGSTOPped process


@contextmanager
def backends(folder: Path) -> Iterator[Backends]:
    registry = Backends(folder)
    try:
        yield registry
    finally:
        registry.stop_all()


def self_signed(folder: Path, hostname: str, days: int = 2) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``hostname``, made with ``openssl req``,
    valid from now for ``days``."""
    cert, key = folder / f"{hostname}.crt", folder / f"{hostname}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            f"/CN={hostname}",
            "-addext",
            f"subjectAltName=DNS:{hostname}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


if __name__ == "__main__":
    main()
