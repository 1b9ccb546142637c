"""The RFC 2136 mirror against a real Knot DNS (Debian package knot), started by the test
with its own config: zone example.com, a TSIG key, an update ACL for that key. Knot runs
on 127.0.0.x at a random free port (never 53) and is stopped by PID.

End to end, Knot's answer follows a failover of a real dynserver; against the provider
directly, an unchanged answer sends no UPDATE, a hand edit is found and undone, and a
wrong key or a name outside the zone is a permanent error.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

from dynserver.mirror.base import Desired, MirrorError
from dynserver.mirror.rfc2136 import Rfc2136
from dynserver.model import Listener, MirrorConfig, TsigKey
from tests.backends import backends
from tests.e2e.test_failover import make_config, monitor, record, running, target, wait_answer, wait_up
from tests.support import free_port, loopback, master_file, poll, require_program, server_process

KEY = "mirror-key"
SECRET = base64.b64encode(b"knot-and-dynserver-share-this-32").decode()
ZONE_FILE = master_file("example.com", "ns1 IN A 192.0.2.53\nwww IN A 203.0.113.7\n")
KNOT_CONF = """\
server:
    rundir: "{folder}/run"
    listen: {host}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: stdout
    any: info

database:
    storage: "{folder}/db"

key:
  - id: {key}
    algorithm: hmac-sha256
    secret: {secret}

acl:
  - id: mirror-update
    key: {key}
    action: update

template:
  - id: default
    storage: "{folder}"
    zonefile-sync: -1
    journal-content: changes

zone:
  - domain: example.com
    file: "example.com.zone"
    acl: mirror-update
"""


@dataclass
class Knot:
    host: str
    port: int

    def ask(self, name: str = "www.example.com") -> tuple[tuple[str, ...], int | None]:
        response = dns.query.udp(dns.message.make_query(name, "A"), self.host, port=self.port, timeout=2)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.A:
                return tuple(sorted(r.to_text() for r in rrset)), rrset.ttl
        return (), None


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    knotd = require_program("knotd", "knot")
    folder = tmp_path_factory.mktemp("knot")
    (folder / "run").mkdir()
    (folder / "db").mkdir()
    (folder / "example.com.zone").write_text(ZONE_FILE)
    host = loopback()
    port = free_port(host)
    conf = folder / "knot.conf"
    conf.write_text(KNOT_CONF.format(folder=folder, host=host, port=port, key=KEY, secret=SECRET))
    with server_process([knotd, "-c", str(conf)], host, port, "example.com", folder / "knot.log"):
        yield Knot(host, port)


def provider(knot: Knot, secret: str = SECRET) -> Rfc2136:
    mirror = MirrorConfig(
        "knot", "rfc2136", "example.com", primary=Listener(knot.host, knot.port), key=KEY, timeout=3
    )
    return Rfc2136(mirror, TsigKey(KEY, "hmac-sha256", base64.b64decode(secret)))


def sync(knot: Knot, desired: Desired, secret: str = SECRET) -> object:
    async def main() -> object:
        try:
            return await provider(knot, secret).sync(desired)
        except MirrorError as error:
            return error

    return asyncio.run(main())


@pytest.mark.slow
def test_knots_answer_follows_a_failover(knot: Knot, tmp_path: Path) -> None:
    with backends(tmp_path) as pool:
        a, b = (pool.add("http", n, h, free_port(h)) for n, h in (("a", loopback()), ("b", loopback())))
        config = make_config(
            tmp_path,
            monitor("web", "http"),
            record(
                "app", "web", [target(a, 1), target(b, 2)], mirror=[{"to": "knot", "name": "app.example.com"}]
            ),
            f'[keys.{KEY}]\nsecret = "{SECRET}"\n\n'
            f'[mirrors.knot]\ntype = "rfc2136"\nzone = "example.com"\n'
            f'primary = "{knot.host}:{knot.port}"\nkey = "{KEY}"\n',
        )
        with running(config) as server:
            wait_up(server, "app", a, b)
            poll(lambda: knot.ask("app.example.com"), lambda x: x == ((a.host,), 30), "Knot answers a")
            a.kill()
            wait_answer(server, "app", b)
            poll(lambda: knot.ask("app.example.com"), lambda x: x == ((b.host,), 30), "Knot answers b")
            a.start()
            poll(lambda: knot.ask("app.example.com"), lambda x: x == ((a.host,), 30), "Knot answers a again")
            log = server.log_text()
            assert "event=mirror_push mirror=knot" in log
            assert SECRET not in log


def test_an_unchanged_answer_sends_no_update_and_a_hand_edit_is_undone(knot: Knot) -> None:
    desired = Desired("www.example.com", "A", ("192.0.2.10", "192.0.2.11"), 120)
    first = sync(knot, desired)
    assert getattr(first, "actions", None) == ("replace A 192.0.2.10,192.0.2.11 ttl 120 (was 203.0.113.7)",)
    assert knot.ask() == (("192.0.2.10", "192.0.2.11"), 120)
    assert getattr(sync(knot, desired), "actions", None) == ()  # in place: only a query
    # someone runs nsupdate by hand
    update = dns.update.UpdateMessage("example.com", keyring=dns.tsig.Key(KEY, SECRET, "hmac-sha256"))
    update.replace("www", 120, "A", "198.51.100.66")
    assert dns.query.tcp(update, knot.host, port=knot.port, timeout=3).rcode() == 0
    restored = sync(knot, desired)
    assert getattr(restored, "before", None) == ("198.51.100.66",)
    assert knot.ask() == (("192.0.2.10", "192.0.2.11"), 120)
    gone = sync(knot, Desired("www.example.com", "A", (), 120))  # fallback none: no records
    assert getattr(gone, "after", None) == ()
    assert knot.ask() == ((), None)


def test_a_wrong_key_and_a_name_outside_the_zone_are_permanent(knot: Knot) -> None:
    wrong = base64.b64encode(b"not-the-secret-that-knot-knows!!").decode()
    error = sync(knot, Desired("www.example.com", "A", ("192.0.2.99",), 60), secret=wrong)
    assert isinstance(error, MirrorError) and error.permanent, error
    assert wrong not in str(error)
    outside = sync(knot, Desired("www.example.org", "A", ("192.0.2.99",), 60))
    assert isinstance(outside, MirrorError) and outside.permanent
