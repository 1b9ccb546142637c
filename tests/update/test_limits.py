"""Rate limits and lockout, driven with explicit times: no clock, no sleeps."""

from __future__ import annotations

import pytest

from dynserver.update.limits import Block, Limiter, LimitPolicy, Why, client_key

POLICY = LimitPolicy(
    client_failures=3,
    credential_failures=5,
    failure_window=60,
    lockout=100,
    burst=4,
    rate=1.0,
)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(address: str, key: str) -> None:
    assert client_key(address) == key


def test_burst_then_the_rate() -> None:
    limiter = Limiter(POLICY)
    assert [limiter.admit("192.0.2.1", 0.0) for _ in range(4)] == [None] * 4
    block = limiter.admit("192.0.2.1", 0.0)
    assert block == Block(Why.RATE, 1.0)
    assert limiter.admit("192.0.2.2", 0.0) is None  # another client has its own bucket
    assert limiter.admit("192.0.2.1", 1.0) is None  # one token back per second
    assert limiter.admit("192.0.2.1", 1.0) is not None


def test_client_failures_lock_the_client_out_whatever_it_presents() -> None:
    limiter = Limiter(POLICY)
    for t in (0.0, 10.0, 20.0):
        assert limiter.admit("192.0.2.1", t) is None
        limiter.failed("192.0.2.1", f"guess{t}", t)
    block = limiter.admit("192.0.2.1", 21.0)
    assert block is not None and block.why is Why.CLIENT_LOCKED
    assert block.retry_after == pytest.approx(99.0)
    # other clients and the names it tried are not locked
    assert limiter.admit("192.0.2.2", 21.0) is None
    assert limiter.credential_blocked("guess0.0", 21.0) is None
    # the lock ends on time, and what it refused meanwhile did not extend it
    limiter.failed("192.0.2.1", None, 50.0)
    assert limiter.admit("192.0.2.1", 120.0) is None


def test_failures_outside_the_window_do_not_count() -> None:
    limiter = Limiter(POLICY)
    for t in (0.0, 30.0, 61.0, 92.0):  # never 3 within 60 s
        limiter.failed("192.0.2.1", None, t)
        assert limiter.admit("192.0.2.1", t) is None


def test_a_credential_guessed_from_many_clients_is_locked_for_everyone() -> None:
    limiter = Limiter(POLICY)
    for n in range(5):
        limiter.failed(f"192.0.2.{n}", "alpha", float(n))
    block = limiter.credential_blocked("alpha", 5.0)
    assert block is not None and block.why is Why.CREDENTIAL_LOCKED
    assert limiter.credential_blocked("beta", 5.0) is None
    assert limiter.credential_blocked("alpha", 104.0) is None


def test_one_client_locks_itself_out_before_it_can_lock_the_credential() -> None:
    limiter = Limiter(POLICY)
    for t in range(3):
        limiter.failed("192.0.2.1", "alpha", float(t))
    assert limiter.admit("192.0.2.1", 3.0) is not None
    assert limiter.credential_blocked("alpha", 3.0) is None


def test_ipv6_clients_in_one_64_share_their_limits() -> None:
    limiter = Limiter(POLICY)
    for n in range(3):
        limiter.failed(f"2001:db8::{n + 1}", None, 0.0)
    assert limiter.admit("2001:db8::ffff", 1.0) is not None
    assert limiter.admit("2001:db8:0:1::1", 1.0) is None


def test_memory_stays_bounded_under_a_flood_of_addresses() -> None:
    limiter = Limiter(LimitPolicy(burst=2, rate=1.0, max_clients=100))
    for n in range(1000):
        limiter.admit(f"10.0.{n // 256}.{n % 256}", 0.0)
        limiter.failed(f"10.1.{n // 256}.{n % 256}", f"name{n}", 0.0)
    assert len(limiter._buckets) <= 100
    assert len(limiter._failures) <= 200
