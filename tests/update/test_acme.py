"""ACME DNS-01 by RFC 2136 (issue 18): a key scoped ``acme`` adds and deletes TXT records
at _acme-challenge names, exactly as certbot's dns-rfc2136 plugin (add; delete by value,
class NONE) and lego's rfc2136 provider (delete the RRset, class ANY, then add) send
them; answered at once, stored before the reply, kept across a restart, removed after
the key's maximum age; and the key can touch nothing else. An App in the test's event
loop, its DNS core asked directly (tests/e2e/test_acme.py runs real certbot)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from dynserver import config
from dynserver.app import App, with_listeners
from dynserver.errors import ConfigError
from dynserver.model import Listener
from dynserver.update import acme
from tests.support import loopback

ZONE = "dyn.example.test"
CHALLENGE = f"_acme-challenge.{ZONE}."
TOKEN_1 = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"  # 43 base64url characters, as certbot's
TOKEN_2 = "Y9Qhv0Bs5q6n7sd0Qf8lYc2Jb1o4H2m5T5yqv1cV7aE"
ACME_SECRET = base64.b64encode(b"acme-test-secret-0123456789abcde").decode()
TARGET_SECRET = base64.b64encode(b"target-test-secret-0123456789abc").decode()
MASTER = f"""\
$ORIGIN {ZONE}.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1
ns1 IN A 192.0.2.53
txt IN TXT "static"
_acme-challenge.static IN TXT "kept"
sub IN NS ns.elsewhere.example.
"""
OTHER_MASTER = MASTER.replace(ZONE, "other.example.test")
CONFIG = f"""\
[server]
dns = ["127.0.0.1:0"]

[zones."{ZONE}"]
file = "zone"

[zones."other.example.test"]
file = "other"

[zones."{ZONE}".records.app]
type = "A"
ttl = 30
targets = [{{ name = "bravo", value = "192.0.2.23" }}]

[keys.acme-key]
secret = "{ACME_SECRET}"
acme = ["{ZONE}"]

[keys.upd]
secret = "{TARGET_SECRET}"
update = ["*"]
"""
ACME_RING = dns.tsigkeyring.from_text({"acme-key": ACME_SECRET})
TARGET_RING = dns.tsigkeyring.from_text({"upd": TARGET_SECRET})


def write(folder: Path, text: str = CONFIG) -> Path:
    (folder / "zone").write_text(MASTER)
    (folder / "other").write_text(OTHER_MASTER)
    (folder / "dynserver.toml").write_text(text)
    return folder / "dynserver.toml"


def load(folder: Path) -> config.Config:
    return with_listeners(config.load(folder / "dynserver.toml"), [Listener(loopback(), 0)], None)


T = TypeVar("T")


class Live(App):
    """An App run in an event loop of its own (a thread), driven from a synchronous test."""

    loop: asyncio.AbstractEventLoop

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)


@contextmanager
def live(folder: Path) -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dynserver", daemon=True)
    thread.start()

    async def start() -> Live:
        running = Live(load(folder))
        running.loop = loop
        await running.start()
        return running

    running = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield running
    finally:
        running.run(running.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Live]:
    write(tmp_path)
    with live(tmp_path) as running:
        yield running


def send(app: Live, update: dns.update.UpdateMessage) -> int:
    """The rcode of the signed reply (its signature verified against the request's)."""
    reply = app.runtime.answer(update.to_wire(), True)
    assert not isinstance(reply, bytes | None)

    async def wait() -> bytes | None:
        return await reply  # type: ignore[misc]

    answered = app.run(wait())
    assert isinstance(answered, bytes)
    message = dns.message.from_wire(answered, keyring=update.keyring, request_mac=update.mac)
    return int(message.rcode())


def certbot_add(name: str = CHALLENGE, value: str = TOKEN_1, zone: str = ZONE) -> dns.update.UpdateMessage:
    """What certbot's _RFC2136Client.add_txt_record sends (a relative name, its TTL)."""
    update = dns.update.Update(zone, keyring=ACME_RING, keyalgorithm=dns.tsig.HMAC_SHA256)
    update.add(dns.name.from_text(name).relativize(dns.name.from_text(zone)), 10, dns.rdatatype.TXT, value)
    return update


def certbot_delete(name: str = CHALLENGE, value: str = TOKEN_1) -> dns.update.UpdateMessage:
    """What del_txt_record sends: that one value deleted (class NONE)."""
    update = dns.update.Update(ZONE, keyring=ACME_RING, keyalgorithm=dns.tsig.HMAC_SHA256)
    update.delete(dns.name.from_text(name).relativize(dns.name.from_text(ZONE)), dns.rdatatype.TXT, value)
    return update


def lego_insert(value: str) -> dns.update.UpdateMessage:
    """lego's rfc2136 INSERT: RemoveRRset (class ANY) of the name's TXT, then Insert."""
    update = dns.update.Update(ZONE, keyring=ACME_RING, keyalgorithm=dns.tsig.HMAC_SHA256)
    update.delete(CHALLENGE, dns.rdatatype.TXT)
    update.add(CHALLENGE, 120, dns.rdatatype.TXT, value)
    return update


def txt(app: Live, name: str = CHALLENGE) -> list[str]:
    reply = app.runtime.answer(dns.message.make_query(name, dns.rdatatype.TXT).to_wire(), False)
    assert isinstance(reply, bytes)
    return sorted(r.to_text() for rrset in dns.message.from_wire(reply).answer for r in rrset)


def rcode(app: Live, name: str = CHALLENGE) -> int:
    reply = app.runtime.answer(dns.message.make_query(name, dns.rdatatype.TXT).to_wire(), False)
    assert isinstance(reply, bytes)
    return dns.message.from_wire(reply).rcode()


def serial(app: Live) -> int:
    return app.runtime.zone(dns_name(ZONE)).serial


def dns_name(text: str) -> tuple[bytes, ...]:
    return config.parse_name(text)


# -- the pure rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("_acme-challenge.dyn.example.test", True),
        ("_acme-challenge.www.dyn.example.test", True),  # a name under the scope
        ("_acme-challenge.a.b.dyn.example.test", True),
        ("dyn.example.test", False),  # not a challenge name
        ("txt.dyn.example.test", False),
        ("_acme-challenge.example.test", False),  # above the scope
        ("_acme-challenge.xdyn.example.test", False),  # a suffix, not a parent
        ("_acme-challenge.other.example.test", False),
        ("x._acme-challenge.dyn.example.test", False),
    ],
)
def test_scope_covers_challenges_of_the_name_and_below(name: str, allowed: bool) -> None:
    assert acme.in_scope(["dyn.example.test"], dns_name(name)) is allowed


@pytest.mark.parametrize("value", ["", "a b", '"quoted"', "x" * 256, "ünïcode", "a;b"])
def test_values_other_than_base64url_are_refused(value: str) -> None:
    with pytest.raises(acme.InvalidChallenge, match="base64url"):
        acme.check_value(value)


def test_changes_apply_in_order_and_expire_by_age() -> None:
    name = dns_name(CHALLENGE)
    zone = dns_name(ZONE)
    first = acme.apply(
        {},
        zone,
        [acme.Change("add", name, "a"), acme.Change("add", name, "b")],
        now=100,
        max_age=60,
        actor="k",
    )
    assert sorted(v for _, v in first) == ["a", "b"]
    assert first[(name, "a")].expires == 160
    cleared = acme.apply(
        first,
        zone,
        [acme.Change("clear", name), acme.Change("add", name, "c")],
        now=110,
        max_age=60,
        actor="k",
    )
    assert list(cleared) == [(name, "c")]
    assert acme.apply(cleared, zone, [acme.Change("delete", name, "c")], now=120, max_age=60, actor="k") == {}
    assert acme.expired(first, 159.9) == []
    assert len(acme.expired(first, 160)) == 2


# -- the [keys.NAME] acme scope ---------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('acme = ["example.org"]', "not a name in a zone served here"),
        ('acme = ["*.dyn.example.test"]', "not a name in a zone served here"),
        ("acme = [1]", "not a name in a zone served here"),
        ("acme_max_age = 5", "expected a number from 60"),
    ],
)
def test_bad_acme_scopes_are_config_errors(tmp_path: Path, line: str, message: str) -> None:
    write(
        tmp_path,
        CONFIG.replace(f'acme = ["{ZONE}"]', line if "acme =" in line else f'acme = ["{ZONE}"]\n{line}'),
    )
    with pytest.raises(ConfigError, match=message):
        config.load(tmp_path / "dynserver.toml")


def test_the_acme_scope_and_max_age_are_read(tmp_path: Path) -> None:
    write(tmp_path, CONFIG.replace(f'acme = ["{ZONE}"]', f'acme = ["WWW.{ZONE}."]\nacme_max_age = 600'))
    key = next(k for k in config.load(tmp_path / "dynserver.toml").keys if k.name == "acme-key")
    assert key.acme == (f"www.{ZONE}",)
    assert key.acme_max_age == 600


# -- served, stored, kept, expired ------------------------------------------------------


def test_certbot_add_is_answered_at_once_and_stored_before_the_reply(app: Live, tmp_path: Path) -> None:
    before = serial(app)
    assert send(app, certbot_add()) == dns.rcode.NOERROR
    assert txt(app) == [f'"{TOKEN_1}"']
    assert serial(app) == before + 1
    with sqlite3.connect(tmp_path / "dynserver.db") as db:  # committed: another connection sees it
        rows = db.execute("SELECT name, value, zone, actor FROM acme_challenge").fetchall()
        event = db.execute("SELECT actor, reason FROM event WHERE kind = 'acme'").fetchone()
    assert rows == [(CHALLENGE.rstrip("."), TOKEN_1, ZONE, "tsig:acme-key")]
    assert event == ("tsig:acme-key", "rfc2136 from unknown")
    # A wildcard and its base name share the challenge name: both values are served.
    assert send(app, certbot_add(value=TOKEN_2)) == dns.rcode.NOERROR
    assert txt(app) == [f'"{TOKEN_1}"', f'"{TOKEN_2}"']
    assert send(app, certbot_delete(value=TOKEN_1)) == dns.rcode.NOERROR
    assert txt(app) == [f'"{TOKEN_2}"']
    assert send(app, certbot_delete(value=TOKEN_2)) == dns.rcode.NOERROR
    assert txt(app) == []
    assert rcode(app) == dns.rcode.NXDOMAIN  # the name is gone again, as before the first add
    with sqlite3.connect(tmp_path / "dynserver.db") as db:
        assert db.execute("SELECT count(*) FROM acme_challenge").fetchone() == (0,)


def test_a_renewed_value_changes_no_serial(app: Live) -> None:
    assert send(app, certbot_add()) == dns.rcode.NOERROR
    after_add = serial(app)
    assert send(app, certbot_add()) == dns.rcode.NOERROR
    assert serial(app) == after_add


def test_lego_replaces_the_rrset(app: Live) -> None:
    assert send(app, certbot_add(value=TOKEN_1)) == dns.rcode.NOERROR
    assert send(app, lego_insert(TOKEN_2)) == dns.rcode.NOERROR
    assert txt(app) == [f'"{TOKEN_2}"']


def test_challenges_under_the_scope_and_in_subnames(app: Live) -> None:
    name = f"_acme-challenge.www.{ZONE}."
    assert send(app, certbot_add(name=name)) == dns.rcode.NOERROR
    assert txt(app, name) == [f'"{TOKEN_1}"']


def test_the_challenges_survive_a_restart_and_expire(tmp_path: Path) -> None:
    write(tmp_path)
    with live(tmp_path) as first:
        assert send(first, certbot_add()) == dns.rcode.NOERROR
        kept = serial(first)
    with live(tmp_path) as again:
        assert txt(again) == [f'"{TOKEN_1}"']
        assert serial(again) == kept  # a clean stop: the same content keeps its serial
        runtime = again.runtime
        key = (dns_name(CHALLENGE), TOKEN_1)
        assert runtime.challenges[key].expires - runtime.challenges[key].added == acme.MAX_AGE
        runtime.challenges[key] = dataclasses.replace(runtime.challenges[key], expires=0.0)
        again.run(runtime._expire_challenges())  # what the sweep does every second
        assert txt(again) == []
        assert serial(again) == kept + 1
    with sqlite3.connect(tmp_path / "dynserver.db") as db:
        assert db.execute("SELECT count(*) FROM acme_challenge").fetchone() == (0,)
        assert db.execute(
            "SELECT actor, reason FROM event WHERE kind = 'acme' ORDER BY id DESC"
        ).fetchone() == (
            "system",
            "maximum age reached",
        )


# -- strict scopes ----------------------------------------------------------------------


def acme_update(zone: str = ZONE) -> dns.update.UpdateMessage:
    return dns.update.Update(zone, keyring=ACME_RING, keyalgorithm=dns.tsig.HMAC_SHA256)


def refused_updates() -> list[tuple[str, dns.update.UpdateMessage, int]]:
    cases: list[tuple[str, dns.update.UpdateMessage, int]] = []
    a_record = acme_update()
    a_record.add(CHALLENGE, 60, dns.rdatatype.A, "192.0.2.1")
    cases.append(("an A record at the challenge name", a_record, dns.rcode.REFUSED))
    target = acme_update()
    target.replace(f"bravo.app.{ZONE}.", 60, dns.rdatatype.A, "192.0.2.99")
    cases.append(("a target's address", target, dns.rcode.REFUSED))
    other_txt = acme_update()
    other_txt.add(f"txt.{ZONE}.", 60, dns.rdatatype.TXT, TOKEN_1)
    cases.append(("another TXT name", other_txt, dns.rcode.REFUSED))
    delete_static = acme_update()
    delete_static.delete(f"txt.{ZONE}.", dns.rdatatype.TXT)
    cases.append(("deleting another TXT", delete_static, dns.rcode.REFUSED))
    other_zone = acme_update("other.example.test")
    other_zone.add("_acme-challenge.other.example.test.", 60, dns.rdatatype.TXT, TOKEN_1)
    cases.append(("a challenge of another served zone", other_zone, dns.rcode.REFUSED))
    not_ours = acme_update("example.org")
    not_ours.add("_acme-challenge.example.org.", 60, dns.rdatatype.TXT, TOKEN_1)
    cases.append(("a zone not served here", not_ours, dns.rcode.NOTAUTH))
    outside = acme_update()
    outside.add("_acme-challenge.other.example.test.", 60, dns.rdatatype.TXT, TOKEN_1)
    cases.append(("a name outside the zone section's zone", outside, 10))  # NOTZONE
    static = acme_update()
    static.add(f"_acme-challenge.static.{ZONE}.", 60, dns.rdatatype.TXT, TOKEN_1)
    cases.append(("a name the master file holds", static, dns.rcode.REFUSED))
    delegated = acme_update()
    delegated.add(f"_acme-challenge.sub.{ZONE}.", 60, dns.rdatatype.TXT, TOKEN_1)
    cases.append(("a name below a delegation", delegated, dns.rcode.REFUSED))
    soa = acme_update()
    soa.delete(ZONE + ".", dns.rdatatype.NS)
    cases.append(("the apex NS", soa, dns.rcode.REFUSED))
    bad_value = acme_update()
    bad_value.add(CHALLENGE, 60, dns.rdatatype.TXT, '"a" "b"')
    cases.append(("a TXT of two strings", bad_value, dns.rcode.REFUSED))
    return cases


@pytest.mark.parametrize(
    ("what", "update", "rcode"), refused_updates(), ids=[c[0] for c in refused_updates()]
)
def test_the_acme_key_touches_nothing_else(
    app: Live, what: str, update: dns.update.UpdateMessage, rcode: int
) -> None:
    before = serial(app)
    assert send(app, update) == rcode, what
    assert serial(app) == before
    assert txt(app, f"txt.{ZONE}.") == ['"static"']
    assert txt(app, f"_acme-challenge.static.{ZONE}.") == ['"kept"']


def test_a_target_key_cannot_touch_challenges(app: Live) -> None:
    update = dns.update.Update(ZONE, keyring=TARGET_RING, keyalgorithm=dns.tsig.HMAC_SHA256)
    update.add(CHALLENGE, 60, dns.rdatatype.TXT, TOKEN_1)
    assert send(app, update) == dns.rcode.REFUSED
    assert txt(app) == []


def test_an_unsigned_challenge_is_refused(app: Live) -> None:
    update = dns.update.Update(ZONE)
    update.add(CHALLENGE, 60, dns.rdatatype.TXT, TOKEN_1)
    assert send(app, update) == dns.rcode.REFUSED
    assert txt(app) == []


def test_an_update_that_is_not_stored_is_servfail_and_not_served(app: Live) -> None:
    assert app.store is not None
    with mock.patch.object(app.store, "change_challenges", side_effect=OSError("disk full")):
        assert send(app, certbot_add()) == dns.rcode.SERVFAIL
    assert txt(app) == []
