"""A signed zone in a running dynserver: keys made and kept, every change signed before it
is served, signatures renewed before expiry, transfers carrying the signed zone."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dynserver import config
from dynserver.app import App
from dynserver.config import parse_name
from dynserver.dns.zone import Zone, hashed_owner
from dynserver.dnssec import keystore
from dynserver.dnssec.keys import generate, parse_key_files, with_times
from dynserver.errors import ConfigError
from dynserver.xfr import journal
from tests.dnssec.support import covers, matches, validate_sections

ORIGIN = parse_name("dyn.example.test")
APP = parse_name("app.dyn.example.test")
ZONE = """\
$ORIGIN dyn.example.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
  IN NS ns1
ns1 IN A 192.0.2.53
www IN A 192.0.2.10
"""
CONFIG = """\
[server]
dns = ["127.0.0.1:0"]

[zones."dyn.example.test"]
file = "zone"

[zones."dyn.example.test".dnssec]
enabled = true
{extra}

[zones."dyn.example.test".transfer]
allow = ["127.0.0.0/8"]

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [
  {{ name = "charlie", value = "192.0.2.21", priority = 1 }},
  {{ name = "bravo", priority = 2 }},
]
"""


def write(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "zone").write_text(ZONE)
    path = tmp_path / "dynserver.toml"
    path.write_text(CONFIG.format(extra=extra))
    return path


def ask(app: App, name: str, qtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, qtype, want_dnssec=True)
    reply = app.runtime.answer(query.to_wire(), True)
    assert isinstance(reply, bytes)
    return dns.message.from_wire(reply)


def keys_of(app: App) -> dict[dns.name.Name, dns.rrset.RRset]:
    reply = ask(app, "dyn.example.test", "DNSKEY")
    origin = dns.name.from_text("dyn.example.test.")
    return {origin: reply.find_rrset(reply.answer, origin, 1, dns.rdatatype.DNSKEY)}


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


def test_key_made_kept_and_every_change_signed(tmp_path: Path) -> None:
    path = write(tmp_path)
    tags: list[int] = []

    async def first() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            keys = keys_of(app)
            tags.append(app.runtime.dnssec_keys(ORIGIN)[0].tag)
            reply = ask(app, "app.dyn.example.test")
            assert [r.to_text() for r in reply.answer[0]] == ["192.0.2.21"]
            validate_sections(reply, keys)
            serial = app.runtime.serials[ORIGIN]
            # A change of answer: signed in the same step that serves it.
            await app.runtime.update_target((APP, "A", "charlie"), "192.0.2.31", actor="t")
            reply = ask(app, "app.dyn.example.test")
            assert [r.to_text() for r in reply.answer[0]] == ["192.0.2.31"]
            validate_sections(reply, keys)
            assert app.runtime.serials[ORIGIN] == serial + 1
            soa = ask(app, "dyn.example.test", "SOA")
            assert soa.answer[0][0].serial == serial + 1
            validate_sections(soa, keys)  # the new SOA has its new signature
            # A name that appears (bravo's target name) is in the NSEC3 chain at once.
            await app.runtime.update_target((APP, "A", "bravo"), "192.0.2.23", actor="t")
            reply = ask(app, "bravo.app.dyn.example.test")
            assert reply.rcode() == dns.rcode.NOERROR
            validate_sections(reply, keys)
            # IXFR: the new name's NSEC3 and its neighbour's changed one travel with it.
            delta = app.runtime.transfers.journals[ORIGIN].entries()[-1][1]
            assert sum(" IN NSEC3 " in _record_text(r) for r in delta.added) >= 2
            assert sum(" IN NSEC3 " in _record_text(r) for r in delta.deleted) >= 1
            nodata = ask(app, "bravo.app.dyn.example.test", "MX")
            validate_sections(nodata, keys)
            assert matches(nodata, dns.name.from_text("bravo.app.dyn.example.test.")) is not None
            nx = ask(app, "nothing.dyn.example.test")
            assert nx.rcode() == dns.rcode.NXDOMAIN
            validate_sections(nx, keys)
            assert covers(nx, dns.name.from_text("nothing.dyn.example.test."))
            assert_chain_consistent(app.runtime.zones[ORIGIN])
        finally:
            await app.stop()

    async def second() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            assert [k.tag for k in app.runtime.dnssec_keys(ORIGIN)] == tags  # the key was kept
            validate_sections(ask(app, "www.dyn.example.test"), keys_of(app))
        finally:
            await app.stop()

    run(first())
    run(second())


def assert_chain_consistent(zone: Zone) -> None:
    """What an incremental update left equals what signing the whole zone gives."""
    signed = zone.signed
    assert signed is not None
    assert list(signed.chain) == sorted(signed.hashes.values())
    assert len(signed.nsec3) == len(signed.chain)
    for index, digest in enumerate(signed.chain):
        record, _ = signed.nsec3[hashed_owner(digest, zone.origin)]
        following = signed.chain[(index + 1) % len(signed.chain)]
        assert record.rdatas[0].data[6:26] == following


def test_key_directory_holds_bind_key_files(tmp_path: Path) -> None:
    path = write(tmp_path, 'key_directory = "keys"')

    async def main() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            (key,) = app.runtime.dnssec_keys(ORIGIN)
            base = tmp_path / "keys" / f"Kdyn.example.test.+013+{key.tag:05d}"
            private = Path(f"{base}.private")
            assert stat.S_IMODE(private.stat().st_mode) == 0o600
            assert "Private-key-format: v1.3" in private.read_text()
            assert "PrivateKey" not in repr(key)
            again = parse_key_files(Path(f"{base}.key").read_text(), private.read_text())
            assert again.rdata == key.rdata
            validate_sections(ask(app, "www.dyn.example.test"), keys_of(app))
            # Key files gone while serving: no new key (it would not match the parent's DS).
            private.unlink()
            await app.runtime.dnssec_tick()
            assert [k.tag for k in app.runtime.dnssec_keys(ORIGIN)] == [key.tag]
            assert not private.exists()
        finally:
            await app.stop()

    run(main())


def test_signatures_near_expiry_are_renewed_and_journaled(tmp_path: Path) -> None:
    path = write(tmp_path)

    async def main() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            runtime = app.runtime
            before = runtime.zones[ORIGIN]
            serial = runtime.serials[ORIGIN]
            # Eight days on: every signature (14 days, less up to 1.4) is within 7 days of expiry.
            later = time.time() + 8 * 86400
            await runtime.dnssec_tick(later)
            after = runtime.zones[ORIGIN]
            assert runtime.serials[ORIGIN] == serial + 1
            assert after.signed is not None and before.signed is not None
            renewed = [
                name
                for name, node in after.signed.sigs.items()
                if all(sig is not before.signed.sigs[name][t][1] for t, (_, sig) in node.items())
            ]
            assert len(renewed) == len(after.signed.sigs)
            assert runtime.signers[ORIGIN].due(after, later, 10) == []
            # The IXFR journal carries the new signatures.
            (_, delta), *_ = reversed(runtime.transfers.journals[ORIGIN].entries())
            assert delta.serial_to == serial + 1
            kinds = {int.from_bytes(r[r.index(b"\x00") + 1 :][:2], "big") for r in delta.added}
            assert 46 in kinds
        finally:
            await app.stop()

    run(main())


def test_ixfr_delta_of_a_failover_has_the_new_rrsigs(tmp_path: Path) -> None:
    path = write(tmp_path)

    async def main() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            runtime = app.runtime
            old = runtime.zones[ORIGIN]
            await runtime.update_target((APP, "A", "charlie"), "192.0.2.41", actor="t")
            delta = runtime.transfers.journals[ORIGIN].entries()[-1][1]
            texts = [_record_text(r) for r in delta.added]
            assert any(" RRSIG A " in t and t.startswith("app.") for t in texts)
            assert any(" A 192.0.2.41" in t for t in texts)
            deleted = [_record_text(r) for r in delta.deleted]
            assert any(" RRSIG A " in t and t.startswith("app.") for t in deleted)
            assert journal.diff(old, old, []).added == ()
        finally:
            await app.stop()

    run(main())


def _record_text(record: bytes) -> str:
    wire = b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00" + record
    message = dns.message.from_wire(wire)
    return message.answer[0].to_text()


@pytest.mark.parametrize("text", ["algorithm = 14", "refresh = 2000000", "bogus = 1"])
def test_config_errors_name_the_key(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        config.load(path)
    key = text.split(" ")[0]
    assert f'zones."dyn.example.test".dnssec.{key}' in str(error.value)
    assert "dynserver.toml:" in str(error.value)


def test_a_key_that_starts_signing_signs_every_rrset(tmp_path: Path) -> None:
    """A second key saved (a rollover's first step) and a reload: every RRset carries an
    RRSIG by each key that signs; when the first key stops signing, by the second alone."""
    path = write(tmp_path, 'key_directory = "keys"')

    async def main() -> None:
        app = App(config.load(path))
        await app.start()
        try:
            runtime = app.runtime
            (old,) = runtime.dnssec_keys(ORIGIN)
            zone_config = runtime.zone_configs[ORIGIN]
            new = generate(ORIGIN, 13, time.time(), avoid=[old.tag])
            await keystore.save_key(zone_config, None, new)
            outcome = await runtime.reload(actor="test", via="test")
            assert outcome.ok, outcome.errors
            for name, qtype in [("www.dyn.example.test", "A"), ("nothing.dyn.example.test", "A")]:
                reply = ask(app, name, qtype)
                tags = {
                    sig.key_tag
                    for rrset in reply.answer + reply.authority
                    if rrset.rdtype == 46
                    for sig in rrset
                }
                assert tags == {old.tag, new.tag}, (name, tags)
                validate_sections(reply, keys_of(app))
            await keystore.save_key(zone_config, None, with_times(old, inactive=time.time() - 1))
            await runtime.dnssec_tick()
            reply = ask(app, "www.dyn.example.test")
            tags = {sig.key_tag for rrset in reply.answer if rrset.rdtype == 46 for sig in rrset}
            assert tags == {new.tag}
            validate_sections(reply, keys_of(app))
        finally:
            await app.stop()

    run(main())
