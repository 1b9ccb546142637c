"""AXFR and IXFR in-process: queries go straight into ``Runtime.answer`` (no sockets), and
dnspython's own transfer client (``dns.xfr.Inbound``) applies the replies to a zone, so
what a secondary ends up with is judged by an independent implementation."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from dynserver.types import Stream
from tests.xfr.common import (
    ORIGIN,
    OTHER,
    SECONDARY,
    SECRET,
    STRANGER,
    ask_raw,
    contents,
    make_app,
    served,
    set_alpha,
    transfer,
)

# -- AXFR ------------------------------------------------------------------------------


def test_axfr_is_the_zone_as_served_now(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    secondary = dns.zone.Zone(ORIGIN)
    replies = transfer(app, secondary, serial=None)
    text = contents(secondary)
    assert "app 30 IN A 192.0.2.1" in text  # the dynamic record's answer
    assert "alpha.app 30 IN A 192.0.2.1" in text
    assert 'txt 300 IN TXT "hello" "world"' in text
    assert secondary.get_soa().serial == app.runtime.zones[(b"dyn", b"example", b"test")].serial
    first = replies[0]
    assert first.flags & dns.flags.AA and first.rcode() == dns.rcode.NOERROR
    assert first.answer[0].rdtype == dns.rdatatype.SOA


def test_a_big_zone_comes_in_several_messages_each_signed(tmp_path: Path) -> None:
    many = "".join(f"host{i} IN A 198.51.{i // 250}.{i % 250}\n" for i in range(3000))
    app = make_app(
        tmp_path, extra_zone=many, transfer='secondaries = [{ address = "127.0.0.51", key = "xfr" }]'
    )
    ring = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", SECRET)})
    secondary = dns.zone.Zone(ORIGIN)
    replies = transfer(app, secondary, serial=None, keyring=ring, keyname="xfr.", peer=STRANGER)
    assert len(replies) > 3
    assert all(reply.had_tsig for reply in replies)  # each verified by dnspython, chained
    assert all(len(reply.to_wire()) <= 16_384 + 200 for reply in replies)
    assert len(secondary.nodes) > 3000
    assert replies[0].question and not replies[1].question  # RFC 5936 2.2.1


def test_axfr_over_udp_is_formerr(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    query = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    reply = dns.message.from_wire(ask_raw(app, query, tcp=False))
    assert reply.rcode() == dns.rcode.FORMERR


def test_a_zone_we_do_not_serve_is_notauth(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    query = dns.message.make_query("other.example.", dns.rdatatype.AXFR)
    assert dns.message.from_wire(ask_raw(app, query)).rcode() == dns.rcode.NOTAUTH


# -- IXFR ------------------------------------------------------------------------------


def test_ixfr_sends_only_the_changes(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    secondary = dns.zone.Zone(ORIGIN)
    transfer(app, secondary, serial=None)
    start = secondary.get_soa().serial
    set_alpha(app, "192.0.2.101")
    set_alpha(app, "192.0.2.102")
    replies = transfer(app, secondary)
    records = [rrset for reply in replies for rrset in reply.answer]
    # SOA, (old SOA, deleted, new SOA, added) twice, SOA: two changes of two names each.
    assert sum(len(r) for r in records) == 1 + 2 * (1 + 2 + 1 + 2) + 1
    assert secondary.get_soa().serial == start + 2
    assert contents(secondary) == served(app)
    assert app.transfers.served["IXFR"] == 1


def test_ixfr_when_up_to_date_is_one_soa(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    secondary = dns.zone.Zone(ORIGIN)
    transfer(app, secondary, serial=None)
    replies = transfer(app, secondary)
    assert [r.rdtype for reply in replies for r in reply.answer] == [dns.rdatatype.SOA]
    assert app.transfers.served["IXFR-SOA"] == 1


def test_ixfr_beyond_the_journal_is_a_full_transfer(tmp_path: Path) -> None:
    app = make_app(tmp_path, journal=2)
    secondary = dns.zone.Zone(ORIGIN)
    transfer(app, secondary, serial=None)
    for i in range(3):
        set_alpha(app, f"192.0.2.{110 + i}")
    transfer(app, secondary)
    assert app.transfers.served["IXFR-AXFR"] == 1
    assert contents(secondary) == served(app)


def test_ixfr_that_would_outgrow_the_zone_is_a_full_transfer(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    secondary = dns.zone.Zone(ORIGIN)
    transfer(app, secondary, serial=None)
    for i in range(10):  # 10 changes of 6 records each: more than the 33 records of the zone
        set_alpha(app, f"192.0.2.{120 + i}")
    transfer(app, secondary)
    assert app.transfers.served["IXFR-AXFR"] == 1
    assert contents(secondary) == served(app)


def test_ixfr_over_udp_fits_or_is_just_the_soa(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    secondary = dns.zone.Zone(ORIGIN)
    transfer(app, secondary, serial=None)
    set_alpha(app, "192.0.2.130")
    transfer(app, secondary, tcp=False)
    assert contents(secondary) == served(app)
    assert app.transfers.served["IXFR"] == 1
    # Many changes no longer fit in 1232 octets: the SOA alone says "come back over TCP".
    for i in range(5):
        set_alpha(app, f"192.0.2.{140 + i}")
    query, _ = dns.xfr.make_query(secondary, use_edns=0)
    reply = dns.message.from_wire(ask_raw(app, query, tcp=False))
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.SOA]
    assert reply.answer[0][0].serial == app.runtime.zones[(b"dyn", b"example", b"test")].serial
    transfer(app, secondary)
    assert contents(secondary) == served(app)


def test_an_ixfr_query_without_its_soa_is_formerr(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    query = dns.message.make_query(ORIGIN, dns.rdatatype.IXFR)
    assert dns.message.from_wire(ask_raw(app, query)).rcode() == dns.rcode.FORMERR


# -- access ----------------------------------------------------------------------------


def test_only_allowed_addresses_may_transfer(tmp_path: Path) -> None:
    app = make_app(tmp_path, transfer='secondaries = [{ address = "127.0.0.51" }]\nallow = ["10.0.0.0/8"]')
    query = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    assert dns.message.from_wire(ask_raw(app, query, peer=STRANGER)).rcode() == dns.rcode.REFUSED
    assert app.transfers.served["refused"] == 1
    for peer in (SECONDARY, ("10.1.2.3", 1), ("::ffff:10.1.2.3", 1)):
        assert isinstance(app.runtime.answer(query.to_wire(), True, peer), Stream), peer


def test_a_keyed_secondary_needs_its_key(tmp_path: Path) -> None:
    app = make_app(tmp_path, transfer='secondaries = [{ address = "127.0.0.51", key = "xfr" }]')
    ring = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", SECRET)})
    unsigned = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    assert dns.message.from_wire(ask_raw(app, unsigned)).rcode() == dns.rcode.REFUSED
    transfer(app, dns.zone.Zone(ORIGIN), serial=None, keyring=ring, keyname="xfr.", peer=STRANGER)
    # A key we know, but not one allowed to transfer this zone: refused, and signed.
    other = dns.tsigkeyring.from_text({"other.": ("hmac-sha256", OTHER)})
    signed = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    signed.use_tsig(other, keyname="other.")
    wire = signed.to_wire()
    reply = dns.message.from_wire(ask_raw(app, wire), keyring=other, request_mac=signed.mac)
    assert reply.rcode() == dns.rcode.REFUSED and reply.had_tsig


@pytest.mark.parametrize(
    ("key", "secret", "error"),
    [("nokey.", SECRET, dns.rcode.BADKEY), ("xfr.", OTHER, dns.rcode.BADSIG)],
    ids=["unknown-key", "bad-secret"],
)
def test_a_bad_signature_is_notauth(tmp_path: Path, key: str, secret: str, error: int) -> None:
    app = make_app(tmp_path, transfer='secondaries = [{ address = "127.0.0.51", key = "xfr" }]')
    ring = dns.tsigkeyring.from_text({key: ("hmac-sha256", secret)})
    query = dns.message.make_query(ORIGIN, dns.rdatatype.AXFR)
    query.use_tsig(ring, keyname=key)
    reply = dns.message.from_wire(ask_raw(app, query), keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    assert reply.tsig_error == error
    assert reply.tsig is not None and reply.tsig[0].mac == b""  # RFC 8945 5.2: no MAC


def test_a_signed_soa_query_gets_a_signed_answer(tmp_path: Path) -> None:
    app = make_app(tmp_path, transfer='secondaries = [{ address = "127.0.0.51", key = "xfr" }]')
    ring = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", SECRET)})
    for tcp in (False, True):
        query = dns.message.make_query(ORIGIN, dns.rdatatype.SOA, use_edns=0)
        query.use_tsig(ring, keyname="xfr.")
        data = app.runtime.answer(query.to_wire(), tcp, STRANGER)
        assert isinstance(data, bytes)
        reply = dns.message.from_wire(data, keyring=ring, request_mac=query.mac)
        assert reply.had_tsig and reply.rcode() == dns.rcode.NOERROR
        assert reply.answer[0][0].serial == app.runtime.zones[(b"dyn", b"example", b"test")].serial
