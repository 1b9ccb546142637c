"""Response rate limiting's table (dynserver/dns/rrl.py): the rate, the window, slip, exempt
networks, the keys (network and kind of answer), a bounded table, and start/stop events
that are rate-limited themselves."""

from __future__ import annotations

import ipaddress

import pytest

from dynserver.dns import rrl
from dynserver.dns.rrl import ANSWER, DROP, SLIP, RateLimiter

NET = bytes((192, 0, 2))
OTHER = bytes((198, 51, 100))
POSITIVE = rrl.POSITIVE + b"\x03www\x00\x00\x01\x00\x01"


def limiter(**settings: object) -> RateLimiter:
    options: dict[str, object] = {"rate": 10, "slip": 2, "window": 1.0, **settings}
    return RateLimiter(**options)  # type: ignore[arg-type]


def verdicts(table: RateLimiter, count: int, now: float, network: bytes = NET) -> list[int]:
    return [table.verdict(network, POSITIVE, now) for _ in range(count)]


def test_rate_replies_a_second_then_every_slipth_is_tc_and_the_rest_dropped() -> None:
    table = limiter()
    assert verdicts(table, 10, 100.0) == [ANSWER] * 10
    assert verdicts(table, 6, 100.0) == [DROP, SLIP, DROP, SLIP, DROP, SLIP]
    assert (table.limited, table.slipped, table.dropped) == (6, 3, 3)
    assert verdicts(table, 5, 100.5) == [ANSWER] * 5, "tokens come back at the rate"
    assert verdicts(table, 1, 100.5) != [ANSWER]


@pytest.mark.parametrize(("slip", "expected"), [(0, [DROP] * 4), (1, [SLIP] * 4)])
def test_slip_zero_drops_all_and_one_slips_all(slip: int, expected: list[int]) -> None:
    table = limiter(slip=slip)
    verdicts(table, 10, 5.0)
    assert verdicts(table, 4, 5.0) == expected


def test_the_window_is_the_depth_of_a_bucket() -> None:
    table = limiter(window=3.0)
    assert verdicts(table, 30, 1.0) == [ANSWER] * 30
    assert verdicts(table, 1, 1.0) == [DROP]
    assert verdicts(table, 31, 100.0)[-1] != ANSWER, "never more than the window after a pause"


def test_networks_and_kinds_of_answer_have_their_own_buckets() -> None:
    table = limiter()
    verdicts(table, 11, 1.0)
    assert verdicts(table, 10, 1.0, OTHER) == [ANSWER] * 10, "another /24"
    assert table.verdict(NET, rrl.NXDOMAIN, 1.0) == ANSWER, "another kind"
    assert table.verdict(NET + b"\x00", POSITIVE, 1.0) == ANSWER


def test_exempt_networks_are_never_limited() -> None:
    table = limiter(exempt=(ipaddress.ip_network("192.0.2.7/32"), ipaddress.ip_network("2001:db8::/48")))
    assert verdicts(table, 100, 1.0) == [ANSWER] * 100, "the /24 of an exempt address"
    six = bytes.fromhex("20010db8000001")
    assert verdicts(table, 100, 1.0, six) == [ANSWER] * 100
    assert verdicts(table, 11, 1.0, OTHER)[-1] == DROP


def test_the_table_is_fixed_in_size_whatever_the_traffic() -> None:
    table = limiter(size=256)
    for n in range(5000):
        table.verdict(n.to_bytes(3, "big"), POSITIVE, 1.0)
    assert len(table._keys) == 256 and sum(key is not None for key in table._keys) <= 256


def test_start_and_stop_events_are_rate_limited_too() -> None:
    seen: list[tuple[str, str]] = []
    table = limiter(event=lambda what, network: seen.append((what, network)))
    verdicts(table, 11, 1.0)
    verdicts(table, 1, 3.0)
    assert seen == [("started", "192.0.2.0/24"), ("stopped", "192.0.2.0/24")]
    seen.clear()
    for n in range(100):
        verdicts(table, 11, 3.0, n.to_bytes(3, "big"))
    assert len(seen) == rrl.EVENT_BURST - 2 and table.events_suppressed == 100 - len(seen)


def test_answer_keys_and_networks() -> None:
    header = bytes.fromhex("123484000001000100000000")
    question = b"\x03WwW\x00\x00\x01\x00\x01"
    positive = header + question + b"rest"
    assert rrl.reply_key(positive) == rrl.POSITIVE + question.lower()
    assert rrl.reply_key(bytes.fromhex("123484030001000000010000") + question) == rrl.NXDOMAIN
    assert rrl.reply_key(bytes.fromhex("123484000001000000010000") + question) == rrl.NODATA
    assert rrl.reply_key(bytes.fromhex("123480000001000000020000") + question) == rrl.REFERRAL
    assert rrl.reply_key(bytes.fromhex("123480050000000000000000")) == rrl.ERROR
    assert rrl.peer_network(("192.0.2.77", 53)) == NET
    assert rrl.peer_network(("2001:db8:0:1ff::1", 53)) == bytes.fromhex("20010db8000001")
    assert rrl.network_text(bytes.fromhex("20010db8000001")) == "2001:db8:0:100::/56"
    slip = rrl.truncated(positive, 12 + len(question))
    assert slip == bytes.fromhex("123486000001000000000000") + question
