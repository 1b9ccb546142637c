"""An update answered ``good`` survives the server being killed.

A storm of 1,000 updates from 20 concurrent clients (half dyndns2, half the REST API,
each from its own 127.0.0.x address and for its own target, one update at a time), and
dynserver killed with SIGKILL in the middle of it. After a restart, every target has
the last value that was acknowledged for it, or the one sent after it that the kill
left unanswered (it may or may not have been committed), never an older one.

Run twice: unmonitored targets, and monitored ones, whose check results (each new
address is checked at once) are saved by the background writer while updates commit.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.support import dynserver, free_port, loopback, wait_for_http
from tests.update.common import add, write_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CLIENTS = 20
UPDATES_PER_CLIENT = 50  # 1,000 in all
KILL_AFTER = 500  # acknowledged updates

STORM = "\n".join(
    [
        '[zones."dyn.example.test".records.storm]',
        'type = "A"',
        "{monitor}",
        "ttl = 30",
        "targets = [",
        *(f'  {{ name = "t{n:02}", priority = {n + 1} }},' for n in range(CLIENTS)),
        "]",
        "",
    ]
)


@dataclass
class Client:
    """One backup server on a dynamic line: it updates its own target, one at a time."""

    number: int
    address: str  # the source address it connects from
    api: bool  # REST API (else dyndns2)
    network: int  # first octet of its values: 127 for monitored targets (checks are refused at once)
    acknowledged: list[str] = field(default_factory=list)
    unanswered: str | None = None  # sent, and the server died before answering
    error: str | None = None

    @property
    def target(self) -> str:
        return f"t{self.number:02}"

    def value(self, n: int) -> str:
        return f"{self.network}.{self.number + 1}.{n // 256}.{n % 256}"

    def run(
        self, host: str, port: int, secret: str, acked: threading.Semaphore, stop: threading.Event
    ) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=30, source_address=(self.address, 0))
        basic = base64.b64encode(f"storm:{secret}".encode()).decode()
        try:
            for n in range(1, UPDATES_PER_CLIENT + 1):
                if stop.is_set():
                    return
                value = self.value(n)
                self.unanswered = value
                if self.api:
                    connection.request(
                        "PUT",
                        f"/api/v1/records/storm.dyn.example.test/targets/{self.target}",
                        body=json.dumps({"value": value}),
                        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
                    )
                else:
                    connection.request(
                        "GET",
                        f"/nic/update?hostname={self.target}.storm.dyn.example.test&myip={value}",
                        headers={"Authorization": f"Basic {basic}"},
                    )
                response = connection.getresponse()
                body = response.read().decode()
                ok = response.status == 200 and (
                    json.loads(body)["changed"] if self.api else body == f"good {value}\n"
                )
                if not ok:
                    self.error = f"{value}: {response.status} {body!r}"
                    return
                self.acknowledged.append(value)
                self.unanswered = None
                acked.release()
        except (OSError, http.client.HTTPException):
            return  # the server was killed: what is unanswered stays so
        finally:
            connection.close()


def answers(host: str, port: int, name: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, dns.rdatatype.A), host, port=port, timeout=5)
    return [r.to_text() for rrset in reply.answer for r in rrset]


@pytest.mark.parametrize(
    "monitored",
    [False, True],
    ids=["unmonitored", "monitored"],
)
def test_every_acknowledged_update_survives_sigkill(tmp_path: Path, monitored: bool) -> None:
    config = write_config(tmp_path, STORM.replace("{monitor}", 'monitor = "tcp"' if monitored else ""))
    secret = add(config, "storm", "--target", "storm.dyn.example.test/*")
    host = loopback()
    http_port = free_port(host)
    clients = [
        Client(n, loopback(), api=n % 2 == 1, network=127 if monitored else 10) for n in range(CLIENTS)
    ]
    acked = threading.Semaphore(0)
    stop = threading.Event()

    with dynserver(config, host=host, http=f"{host}:{http_port}") as server:
        wait_for_http(f"http://{host}:{http_port}/healthz")
        threads = [
            threading.Thread(target=c.run, args=(host, http_port, secret, acked, stop), daemon=True)
            for c in clients
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for _ in range(KILL_AFTER):
            assert acked.acquire(timeout=60), [c.error for c in clients if c.error]
        elapsed = time.monotonic() - started
        server.process.kill()  # SIGKILL: no shutdown, no flush, nothing
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join(30)

    errors = [c.error for c in clients if c.error]
    assert not errors, errors
    total = sum(len(c.acknowledged) for c in clients)
    assert KILL_AFTER <= total < CLIENTS * UPDATES_PER_CLIENT  # killed in the middle
    print(f"\n{total} updates acknowledged in {elapsed:.2f} s ({total / elapsed:.0f}/s) before SIGKILL")

    with dynserver(config, host=host) as server:
        for client in clients:
            found = answers(host, server.port, f"{client.target}.storm.dyn.example.test")
            allowed = [client.acknowledged[-1]] if client.acknowledged else [None]
            if client.unanswered is not None:
                allowed.append(client.unanswered)
            assert (found[0] if found else None) in allowed, (client.target, found, allowed)
