"""DNS Cookies (RFC 7873, RFC 9018): server cookies against RFC 9018's test vectors and an
independent SipHash-2-4 written here from the paper, validity in time, malformed options
(FORMERR), and the COOKIE option written into replies."""

from __future__ import annotations

import ipaddress
import os
import struct
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from dynserver.dns import cookies, wire
from dynserver.dns.cookies import Cookies
from dynserver.dns.snapshot import Snapshot
from tests.dns.zones import DYN
from tests.snapshots import load_snapshot

# RFC 9018 Appendix A.1 and A.2: the same client learns, then refreshes, a server cookie.
SECRET = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")
CLIENT = bytes.fromhex("2464c4abcf10c957")
ADDRESS = "198.51.100.100"
VECTORS = [
    (1559731985, "010000005cf79f111f8130c3eee29480"),
    (1559734385, "010000005cf7a871d4a564a1442aca77"),
]


def siphash24(key: bytes, message: bytes) -> int:
    """SipHash-2-4 (Aumasson and Bernstein, 2012), written out independently of siphashc."""
    mask = (1 << 64) - 1

    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & mask

    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def rounds(n: int) -> None:
        for _ in range(n):
            v[0] = (v[0] + v[1]) & mask
            v[1] = rotl(v[1], 13) ^ v[0]
            v[0] = rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & mask
            v[3] = rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & mask
            v[3] = rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & mask
            v[1] = rotl(v[1], 17) ^ v[2]
            v[2] = rotl(v[2], 32)

    tail = len(message) % 8
    padded = message[: len(message) - tail] + message[len(message) - tail :] + bytes(7 - tail)
    padded += bytes(((len(message) & 0xFF),))
    for (word,) in struct.iter_unpack("<Q", padded):
        v[3] ^= word
        rounds(2)
        v[0] ^= word
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def independent_server_cookie(secret: bytes, client: bytes, address: str, now: int) -> bytes:
    """RFC 9018 4.2 from the text: Version | Reserved | Timestamp | Hash(Client | those | IP)."""
    head = bytes((1, 0, 0, 0)) + now.to_bytes(4, "big")
    ip = ipaddress.ip_address(address).packed
    return head + siphash24(secret, client + head + ip).to_bytes(8, "little")


@pytest.mark.parametrize(("now", "expected"), VECTORS)
def test_server_cookies_match_rfc_9018s_test_vectors(now: int, expected: str) -> None:
    assert Cookies(SECRET).server_cookie(CLIENT, ADDRESS, now).hex() == expected
    assert independent_server_cookie(SECRET, CLIENT, ADDRESS, now).hex() == expected


@pytest.mark.parametrize("address", ["192.0.2.1", "127.0.0.1", "2001:db8::1", "::1"])
def test_server_cookies_match_an_independent_implementation(address: str) -> None:
    for _ in range(20):
        secret, client, now = os.urandom(16), os.urandom(8), int.from_bytes(os.urandom(4), "big")
        ours = Cookies(secret).server_cookie(client, address, now)
        assert ours == independent_server_cookie(secret, client, address, now)


def test_a_cookie_is_valid_for_an_hour_from_its_client_and_refreshed_after_half() -> None:
    jar = Cookies(SECRET)
    now = VECTORS[0][0]
    option = CLIENT + jar.server_cookie(CLIENT, ADDRESS, now)
    assert jar.valid(option, ADDRESS, now)
    assert jar.valid(option, ADDRESS, now + 3600)
    assert not jar.valid(option, ADDRESS, now + 3601), "more than an hour old"
    assert jar.valid(option, ADDRESS, now - 300) and not jar.valid(option, ADDRESS, now - 301), "ahead"
    assert not jar.valid(option, "198.51.100.101", now), "another client's address"
    assert not Cookies(os.urandom(16)).valid(option, ADDRESS, now), "another secret"
    assert not jar.valid(CLIENT, ADDRESS, now), "a client cookie alone"
    assert jar.check(option, ADDRESS, now + 1800) is None, "fresh enough: sent back as it is"
    fresh = jar.check(option, ADDRESS, now + 1801)
    assert fresh is not None and fresh[:8] == CLIENT and jar.valid(fresh, ADDRESS, now + 1801)


def test_servers_sharing_a_secret_accept_each_others_cookies() -> None:
    one, two = Cookies(SECRET), Cookies(SECRET)
    option = CLIENT + one.server_cookie(CLIENT, ADDRESS, 1000)
    assert two.valid(option, ADDRESS, 1010)
    with pytest.raises(ValueError):
        Cookies(b"short")


def _query_with_cookie(value: bytes) -> bytes:
    query = dns.message.make_query("www.dyn.example.test", "A", use_edns=0)
    query.use_edns(0, options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, value)])
    return query.to_wire()


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    return load_snapshot(tmp_path, {"dyn.example.test": DYN})


@pytest.mark.parametrize("size", [0, 1, 7, 9, 15, 41, 100])
def test_a_malformed_cookie_option_gets_formerr(snapshot: Snapshot, size: int) -> None:
    reply = snapshot.answer(_query_with_cookie(os.urandom(size)), False)
    assert isinstance(reply, bytes)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize("size", [8, 16, 24, 40])
def test_a_well_formed_cookie_is_parsed_and_answered(snapshot: Snapshot, size: int) -> None:
    value = os.urandom(size)
    data = _query_with_cookie(value)
    edns = wire.parse_query(data).edns
    assert edns is not None and edns.cookie == value
    reply = snapshot.answer(data, False)
    assert isinstance(reply, bytes) and dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR


def test_two_cookie_options_get_formerr(snapshot: Snapshot) -> None:
    query = dns.message.make_query("www.dyn.example.test", "A")
    option = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, CLIENT)
    query.use_edns(0, options=[option, option])
    reply = snapshot.answer(query.to_wire(), False)
    assert isinstance(reply, bytes) and dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


def test_the_cookie_option_goes_into_our_opt_when_it_fits(snapshot: Snapshot) -> None:
    data = _query_with_cookie(CLIENT)
    reply = snapshot.answer(data, False)
    assert isinstance(reply, bytes)
    value = CLIENT + Cookies(SECRET).server_cookie(CLIENT, ADDRESS, 1000)
    message = dns.message.from_wire(cookies.with_cookie(reply, value, 1232))
    assert [(o.otype, o.to_wire()) for o in message.options] == [(dns.edns.OptionType.COOKIE, value)]
    assert cookies.with_cookie(reply, value, len(reply)) == reply, "no room: left out"
    plain = snapshot.answer(dns.message.make_query("www.dyn.example.test", "A").to_wire(), False)
    assert isinstance(plain, bytes) and cookies.with_cookie(plain, value, 1232) == plain, "no OPT"


def test_badcookie_carries_the_question_and_a_fresh_cookie(snapshot: Snapshot) -> None:
    data = _query_with_cookie(CLIENT)
    reply = snapshot.answer(data, False)
    assert isinstance(reply, bytes)
    value = CLIENT + Cookies(SECRET).server_cookie(CLIENT, ADDRESS, 1000)
    end = 12 + len(wire.parse_query(data).question)
    message = dns.message.from_wire(cookies.badcookie(reply, end, value, do=True))
    assert message.rcode() == dns.rcode.BADCOOKIE
    assert message.id == wire.parse_query(data).id
    assert str(message.question[0].name) == "www.dyn.example.test."
    assert not message.answer and message.ednsflags & dns.flags.DO
    assert [o.to_wire() for o in message.options] == [value]
