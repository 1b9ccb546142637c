"""A webhook receiver in the test's process, on its own loopback address: it records
every POST (path, JSON body, when) and can refuse the first ones, as a flaky receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.backends import LocalHTTPServer
from tests.support import loopback


@dataclass(frozen=True)
class Post:
    path: str
    body: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    status: int  # what the receiver answered


class Receiver(LocalHTTPServer):
    daemon_threads = True
    received: list[Post]
    failures: int  # how many of the first POSTs get a 503

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def posts(self) -> list[tuple[str, dict[str, Any]]]:
        """The (path, body) of every POST that was accepted."""
        return [(p.path, p.body) for p in self.received if p.status == 200]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = 503 if len(self.server.received) < self.server.failures else 200
        self.server.received.append(Post(self.path, json.loads(body), time.monotonic(), status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiver(failures: int = 0) -> Iterator[Receiver]:
    """Receive webhooks until the block ends; the first ``failures`` POSTs get a 503."""
    server = Receiver((loopback(), 0), _Handler)
    server.received = []
    server.failures = failures
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
