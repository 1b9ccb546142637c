"""The lexicon and dyndns2 mirrors end to end: a real dynserver process whose config has a
hetzner mirror (dns-lexicon's real provider, pointed at the fake Hetzner API on
127.0.0.x) and a dyndns2 mirror to a second, real dynserver; real backends the test
kills. A failover reaches both; neither credential is ever logged."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dynserver.update import credentials
from tests.backends import Backend, Backends, backends
from tests.e2e.test_failover import make_config, monitor, record, running, target, wait_answer, wait_up
from tests.mirror.fake_cloudflare import BASE, serve
from tests.mirror.fake_providers import FakeHetzner
from tests.mirror.test_dyndns2 import answered
from tests.support import free_port, loopback, poll
from tests.update.common import BRAVO, live_server

TOKEN = "hcloud-E2e-Token-" + "Zz09" * 12
WWW = "www.example.com"


def _backend(pool: Backends, name: str) -> Backend:
    host = loopback()
    return pool.add("http", name, host, free_port(host))


@pytest.mark.slow
def test_a_failover_reaches_a_lexicon_provider_and_a_dyndns2_server(tmp_path: Path) -> None:
    fake = FakeHetzner(TOKEN)
    zone = fake.add_zone("example.com")
    fake.set_records(zone, "www", "A", ["203.0.113.7"], ttl=60)  # made by hand
    (tmp_path / "hz-token").write_text(TOKEN + "\n")
    second = tmp_path / "second"
    second.mkdir()
    with serve(fake) as base, backends(tmp_path) as pool, live_server(second) as live:
        stored, secret = credentials.create(
            "mirror", admin=False, targets=("app.dyn.example.test/bravo",), now=time.time()
        )
        live.add(stored)
        (tmp_path / "dd-password").write_text(secret + "\n")
        a, b = _backend(pool, "a"), _backend(pool, "b")
        config = make_config(
            tmp_path,
            monitor("web", "http", failback_delay=1.0),
            record(
                "app",
                "web",
                [target(a, 1), target(b, 2)],
                pending_ttl=1,
                mirror=[{"to": "hz", "name": WWW, "ttl": 60}, {"to": "dd", "name": BRAVO}],
            ),
            '[mirrors.hz]\ntype = "lexicon"\nprovider = "hetzner"\nzone = "example.com"\n'
            'credentials_file = { auth_token = "hz-token" }\noptions = { retry_wait_time = 20 }\n'
            f'api_base = "{base.removesuffix(BASE)}{fake.base}"\n\n'
            f'[mirrors.dd]\ntype = "dyndns2"\nurl = "{live.url}/nic/update"\nusername = "mirror"\n'
            'password_file = "dd-password"\n',
        )
        with running(config) as server:
            wait_up(server, "app", a, b)
            poll(
                lambda: fake.values(zone, "www", "A"),
                lambda v: v == [a.host],
                "the hand-made record replaced",
            )
            poll(lambda: answered(live), lambda v: v == [a.host], "the second dynserver follows")

            a.kill()
            wait_answer(server, "app", b)
            poll(lambda: fake.values(zone, "www", "A"), lambda v: v == [b.host], "the failover at Hetzner")
            poll(lambda: answered(live), lambda v: v == [b.host], "the failover at the second dynserver")
            log = server.log_text()
            assert TOKEN not in log and secret not in log, "a credential must never be logged"
            assert "event=mirror_push mirror=hz" in log and "event=mirror_push mirror=dd" in log
