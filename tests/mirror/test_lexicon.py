"""The lexicon mirror: dns-lexicon's real hetzner and digitalocean providers, driven by the
mirror worker, against local fakes of the two APIs (tests/mirror/fake_providers.py) on
127.0.0.x. A failover changes the record there (the new value is added before the old
one is deleted), a hand edit is restored by the reconcile as drift, a revoked token is
one permanent event, and the library makes no network call of its own (no Public
Suffix List download, no lookup of any name but the fake's address)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dynserver.mirror.base import Desired, MirrorError
from dynserver.mirror.lexicon import Lexicon
from dynserver.mirror.worker import MirrorState, MirrorWorker
from dynserver.model import DynamicRecord, MirrorConfig, MirrorRecord, Secret, Target
from dynserver.store.db import EventRow
from tests.mirror.fake_cloudflare import BASE, serve
from tests.mirror.fake_providers import FakeDigitalOcean, FakeHetzner
from tests.support import free_port, loopback, until

HETZNER_TOKEN = "hcloud-Token-" + "A1b2C3d4" * 6  # not 32 characters: Hetzner's Cloud API
DIGITALOCEAN_TOKEN = "dop_v1_" + "0123456789abcdef" * 4
APP = (b"app", b"dyn", b"example", b"test")
WWW = "www.example.com"
HAND = "203.0.113.7"  # the record made by hand before dynserver starts


@dataclass
class Provider:
    """One provider under test: its fake, and how to read and edit the record there."""

    name: str
    fake: FakeHetzner | FakeDigitalOcean
    token: str
    values: Callable[[], list[str]]
    edit: Callable[[str], None]  # an edit "by hand": the record now holds this value
    options: tuple[tuple[str, str], ...] = ()


def hetzner() -> Provider:
    fake = FakeHetzner(HETZNER_TOKEN)
    zone = fake.add_zone("example.com")
    fake.set_records(zone, "www", "A", [HAND], ttl=300)
    return Provider(
        "hetzner",
        fake,
        HETZNER_TOKEN,
        lambda: fake.values(zone, "www", "A"),
        lambda value: fake.set_records(zone, "www", "A", [value]),
        (("retry_wait_time", "20"),),  # ms between polls of a running action (500 by default)
    )


def digitalocean() -> Provider:
    fake = FakeDigitalOcean(DIGITALOCEAN_TOKEN)
    fake.add_domain("example.com")
    for n in range(25):  # more than a page (20): the library follows links.pages.next
        fake.add_record("example.com", "TXT", f"t{n}", f"text {n}")
    fake.add_record("example.com", "A", "www", HAND, ttl=300)

    def edit(value: str) -> None:
        [record] = fake.find("example.com", "www", "A")
        fake.set_data(record["id"], value)

    return Provider(
        "digitalocean", fake, DIGITALOCEAN_TOKEN, lambda: fake.values("example.com", "www", "A"), edit
    )


PROVIDERS = {"hetzner": hetzner, "digitalocean": digitalocean}


def mirror_config(provider: Provider, base: str, **options: Any) -> MirrorConfig:
    return MirrorConfig(
        name="dns",
        type="lexicon",
        zone="example.com",
        provider=provider.name,
        credentials=(("auth_token", Secret(provider.token)),),
        options=provider.options,
        api_base=base.removesuffix(BASE) + provider.fake.base,
        **{"timeout": 5.0, **options},
    )


def record() -> DynamicRecord:
    return DynamicRecord(
        zone=APP[1:],
        name=APP,
        type="A",
        ttl=30,
        targets=(Target("a", "192.0.2.1"), Target("b", "192.0.2.2", priority=2)),
        mirror=(MirrorRecord("dns", WWW, 60),),
    )


def mirror_worker(provider: Provider, base: str, events: list[EventRow], reconcile: float) -> MirrorWorker:
    """A worker for record() with the provider as mirror "dns", reconciling every ``reconcile`` s."""
    return MirrorWorker(
        [record()],
        {"dns": Lexicon(mirror_config(provider, base))},
        {"dns": reconcile},
        event=events.append,
        settle=0.02,
        first_backoff=0.01,
    )


@contextmanager
def provider_served(kind: str) -> Iterator[tuple[Provider, str]]:
    provider = PROVIDERS[kind]()
    with serve(provider.fake) as base:  # type: ignore[arg-type]
        yield provider, base


def no_secret(provider: Provider, events: list[EventRow]) -> None:
    for event in events:
        assert provider.token not in repr(event), "a credential must never reach an event"


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_a_failover_changes_the_record_and_drift_is_repaired(kind: str) -> None:
    async def main(provider: Provider, base: str) -> None:
        events: list[EventRow] = []
        rec = record()
        worker = mirror_worker(provider, base, events, 0.3)
        await worker.start([(rec, ["192.0.2.1"])])
        try:
            await until(lambda: provider.values() == ["192.0.2.1"], "the hand-made record replaced")
            await until(lambda: len(events) >= 1)
            provider.fake.clear_calls()

            worker.submit(rec, ["192.0.2.2"])  # the failover
            await until(lambda: provider.values() == ["192.0.2.2"], "the failover at the provider")
            await until(lambda: len(events) >= 2)
            writes = [c for c in provider.fake.api_calls() if c.method != "GET"]
            # The new value is there before the old one goes: never a moment with no record.
            assert [c.method for c in writes] == ["POST", "POST"] if kind == "hetzner" else ["POST", "DELETE"]
            if kind == "hetzner":
                assert [c.path.rsplit("/", 1)[1] for c in writes] == ["add_records", "remove_records"]
                assert writes[0].body == {"ttl": 60, "records": [{"value": "192.0.2.2"}]}
            else:
                assert writes[0].body == {"type": "A", "name": "www", "data": "192.0.2.2", "ttl": 60}

            provider.edit("198.51.100.99")  # by hand, at the provider
            await until(lambda: any(e.result == "drift" for e in events), "the drift repaired")
            assert provider.values() == ["192.0.2.2"]
            [status] = worker.status()
            assert (status.state, status.provider, status.drift_restored) == (
                MirrorState.OK,
                ("192.0.2.2",),
                1,
            )
        finally:
            await worker.stop()
        results = [(e.result, e.previous, e.current) for e in events]
        assert results[:3] == [
            ("ok", HAND, "192.0.2.1"),
            ("ok", "192.0.2.1", "192.0.2.2"),
            ("drift", "198.51.100.99", "192.0.2.2"),
        ]
        assert events[1].reason == f"{WWW} A at dns: create 192.0.2.2; delete 192.0.2.1"
        assert events[1].detail["provider"] == "lexicon"
        no_secret(provider, events)

    with provider_served(kind) as (provider, base):
        asyncio.run(main(provider, base))


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_a_revoked_token_is_one_permanent_event(kind: str) -> None:
    async def main(provider: Provider, base: str) -> None:
        events: list[EventRow] = []
        rec = record()
        worker = mirror_worker(provider, base, events, 3600.0)
        provider.fake.revoke()
        await worker.start([(rec, ["192.0.2.1"])])
        try:
            await until(lambda: len(events) >= 1, "the failure recorded")
            await asyncio.sleep(0.3)  # no retry may follow (waits for calls that must not happen)
            [status] = worker.status()
            assert status.state is MirrorState.FAILED
        finally:
            await worker.stop()
        [event] = events
        assert event.result == "permanent"
        assert "authentication failed" in event.reason
        assert len(provider.fake.api_calls()) == 1, "a permanent error is not retried"
        assert provider.values() == [HAND]
        no_secret(provider, events)

    with provider_served(kind) as (provider, base):
        asyncio.run(main(provider, base))


def test_the_library_makes_no_network_call_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the provider's API (here the fake on 127.0.0.x) is looked up and reached: the
    provider is built without lexicon's Client, whose tldextract would fetch the Public
    Suffix List."""
    import tldextract

    looked_up: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(str(host))
        return real(host, *args, **kwargs)

    def no_psl(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tldextract was used")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(tldextract.TLDExtract, "__call__", no_psl)
    monkeypatch.setattr(tldextract.TLDExtract, "__init__", no_psl)

    async def main(provider: Provider, base: str) -> None:
        mirror = Lexicon(mirror_config(provider, base))
        await mirror.start()
        outcome = await mirror.sync(Desired(WWW, "A", ("192.0.2.1",), 60))
        await mirror.close()
        assert outcome.after == ("192.0.2.1",)

    with provider_served("digitalocean") as (provider, base):
        asyncio.run(main(provider, base))
    assert looked_up, "the fake was reached"
    assert all(ipaddress.ip_address(host).is_loopback for host in looked_up), looked_up


NO_NETWORK_AT_START = """
import asyncio, socket, sys

reached = []
real_lookup, real_connect = socket.getaddrinfo, socket.socket.connect
socket.getaddrinfo = lambda host, *a, **k: reached.append(host) or real_lookup(host, *a, **k)
socket.socket.connect = lambda self, address: reached.append(address) or real_connect(self, address)

from dynserver import config
from dynserver.mirror.worker import MirrorWorker

worker = MirrorWorker.from_config(config.load(sys.argv[1]))
asyncio.run(worker._providers["hz"].start())
print(reached)
"""


def test_nothing_is_looked_up_or_reached_at_import_config_and_start(tmp_path: Path) -> None:
    """A fresh process imports dns-lexicon, reads a config with a lexicon mirror and
    starts the mirror (the provider's module is loaded): not one lookup or connection."""
    (tmp_path / "hz-token").write_text(HETZNER_TOKEN)
    path = tmp_path / "dynserver.toml"
    path.write_text(
        '[server]\ndns = ["127.0.0.1:0"]\n\n[mirrors.hz]\ntype = "lexicon"\nprovider = "hetzner"\n'
        'zone = "example.com"\ncredentials_file = { auth_token = "hz-token" }\n\n'
        '[zones."dyn.example.test"]\nnameservers = ["ns1.example.net"]\n\n'
        '[zones."dyn.example.test".records.app]\ntype = "A"\n'
        'targets = [{ name = "a", value = "192.0.2.1" }]\n'
        'mirror = [{ to = "hz", name = "www.example.com" }]\n'
    )
    home = tmp_path / "home"  # tldextract would keep a downloaded list under ~
    home.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK_AT_START, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert list(home.iterdir()) == [], "nothing cached (no Public Suffix List)"


def test_a_provider_that_never_answers_times_out() -> None:
    """Lexicon's providers send requests without a timeout: the mirror's applies."""
    host = loopback()
    port = free_port(host)
    listener = socket.create_server((host, port))  # accepts (by the kernel), never answers
    provider = digitalocean()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()

    async def main() -> None:
        mirror = Lexicon(mirror_config(provider, f"http://{host}:{port}{BASE}", timeout=0.5))
        await mirror.start()
        with pytest.raises(MirrorError) as caught:
            await asyncio.wait_for(mirror.sync(Desired(WWW, "A", ("192.0.2.1",), 60)), 10)
        assert not caught.value.permanent
        assert "timeout after 0.5 s" in caught.value.message

    try:
        asyncio.run(main())
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


# (status, headers) of the provider's reply -> (permanent, retry_after) of the MirrorError
FAILURES: list[tuple[int, dict[str, str], bool, float | None]] = [
    (429, {"Retry-After": "7"}, False, 7.0),
    (503, {}, False, None),
    (500, {}, False, None),
    (401, {}, True, None),
    (403, {}, True, None),
    (422, {}, True, None),
]


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
@pytest.mark.parametrize("when", ["authenticate", "list"])
@pytest.mark.parametrize(("status", "headers", "permanent", "retry_after"), FAILURES)
def test_failures_are_classified(
    kind: str, when: str, status: int, headers: dict[str, str], permanent: bool, retry_after: float | None
) -> None:
    """The same classes whether the provider module let requests' HTTPError through or
    wrapped it in a LexiconError (hetzner does, when it looks the zone up)."""

    async def main(provider: Provider, base: str) -> MirrorError:
        mirror = Lexicon(mirror_config(provider, base))
        await mirror.start()
        desired = Desired(WWW, "A", (HAND,), 300)
        if when == "list":
            await mirror.sync(desired)  # authenticated: the next request is the list
        provider.fake.fail_next(status, {"error": {"code": "x", "message": "injected"}}, headers)
        try:
            with pytest.raises(MirrorError) as caught:
                await mirror.sync(desired)
        finally:
            await mirror.close()
        return caught.value

    with provider_served(kind) as (provider, base):
        error = asyncio.run(main(provider, base))
    assert (error.permanent, error.retry_after) == (permanent, retry_after), error.message
    assert f"HTTP {status}" in error.reply
    assert provider.token not in error.message + error.reply


def test_a_429_is_waited_out_then_the_push_goes_through() -> None:
    async def main(provider: Provider, base: str) -> list[EventRow]:
        events: list[EventRow] = []
        rec = record()
        worker = mirror_worker(provider, base, events, 3600.0)
        provider.fake.fail_next(
            429, {"id": "too_many_requests", "message": "slow down"}, {"Retry-After": "1"}
        )
        started = time.monotonic()
        await worker.start([(rec, ["192.0.2.1"])])
        try:
            await until(lambda: provider.values() == ["192.0.2.1"], "the push after the 429")
            assert time.monotonic() - started >= 0.9, "Retry-After is waited out"
            await until(lambda: len(events) >= 2)
        finally:
            await worker.stop()
        return events

    with provider_served("digitalocean") as (provider, base):
        events = asyncio.run(main(provider, base))
    assert [e.result for e in events] == ["error", "ok"]
    assert "rate limited by digitalocean (HTTP 429); Retry-After 1 s" in events[0].reason
    assert events[1].reason.endswith("(after 2 attempts)")


def test_the_library_logs_no_debug_lines_even_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    """Some providers log request bodies with credentials at debug level, and urllib3
    logs URLs: dynserver at debug level still gets only their warnings."""
    caplog.set_level(logging.DEBUG)

    async def main(provider: Provider, base: str) -> None:
        mirror = Lexicon(mirror_config(provider, base))
        await mirror.start()
        await mirror.sync(Desired(WWW, "A", ("192.0.2.1",), 60))
        await mirror.close()

    with provider_served("digitalocean") as (provider, base):
        asyncio.run(main(provider, base))
    chatter = [
        r for r in caplog.records if r.name.startswith(("lexicon", "urllib3")) and r.levelno < logging.WARNING
    ]
    assert chatter == []
    assert provider.token not in caplog.text
