"""The CSK rollover state machine (dynserver/dnssec/rollover.py) on a fake clock.

A simulated validator walks the roll minute by minute: whatever it may have cached (a DNSKEY
RRset, a DS RRset, an RRset with its signatures, each for at most its TTL after the last
nameserver changed it), at every instant some cached DS must match a cached DNSKEY whose key
signed every cached RRset. That is the property RFC 7583's waits exist for; the test fails if
any wait of the module is shortened.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from dynserver.dnssec.rollover import (
    KeyTimes,
    Phase,
    RolloverError,
    Timings,
    ds_published,
    key_state,
    start,
    status,
)

T0 = 1_800_000_000.0
HOUR = 3600.0
TIMINGS = Timings(
    dnskey_ttl=HOUR, max_ttl=2 * HOUR, propagation=300, parent_ds_ttl=86400, parent_propagation=HOUR
)


def merge(keys: list[KeyTimes], changed: list[KeyTimes]) -> list[KeyTimes]:
    by_tag = {k.tag: k for k in keys}
    by_tag.update({k.tag: k for k in changed})
    return list(by_tag.values())


def first_key() -> KeyTimes:
    # As dnssec/keys.generate makes it: published, signing and announced from creation.
    return KeyTimes(1111, created=T0 - 30 * 86400, publish=T0 - 30 * 86400, activate=T0 - 30 * 86400,
                    sync_publish=T0 - 30 * 86400)  # fmt: skip


def test_one_key_is_idle() -> None:
    state = status([first_key()], T0)
    assert state.phase is Phase.IDLE
    assert state.old is not None and state.old.tag == 1111
    assert state.next_at is None
    assert key_state(first_key(), T0) == "published+signing+cds"


def test_a_whole_roll_on_a_fake_clock() -> None:
    keys = [first_key()]
    keys = merge(keys, start(keys, 2222, T0, TIMINGS))
    new = next(k for k in keys if k.tag == 2222)
    # N is published and signing at once (double signature); CDS still shows O.
    assert (new.publish, new.activate, new.created) == (T0, T0, T0)
    assert new.sync_publish == T0 + 300 + HOUR  # Ipub = Dprp + TTL(DNSKEY)
    state = status(keys, T0)
    assert state.phase is Phase.PUBLISHING
    assert state.next_at == T0 + 300 + HOUR
    assert "do not change the DS yet" in state.next_step
    assert dict((k.tag, word) for k, word in state.keys) == {
        1111: "published+signing+cds",
        2222: "published+signing",
    }
    # Too early for the DS: refused, and says until when.
    with pytest.raises(RolloverError, match="too early"):
        ds_published(keys, T0 + HOUR, TIMINGS)
    # Once N is everywhere: CDS/CDNSKEY switch to N; the user is told to replace the DS.
    ready = T0 + 300 + HOUR
    state = status(keys, ready)
    assert state.phase is Phase.SUBMIT_DS
    assert state.next_at is None
    assert "replace the DS" in state.next_step and "2222" in state.next_step
    assert dict((k.tag, word) for k, word in state.keys) == {
        1111: "published+signing",
        2222: "published+signing+cds",
    }
    # The user confirms the parent's DS a day later: O goes after TTL(DS) + Dprp(parent).
    seen = T0 + 86400
    keys = merge(keys, ds_published(keys, seen, TIMINGS))
    old = next(k for k in keys if k.tag == 1111)
    assert old.inactive == old.delete == seen + HOUR + 86400
    state = status(keys, seen)
    assert state.phase is Phase.RETIRING
    assert state.next_at == seen + HOUR + 86400
    # Then the roll is over: one key, the new one.
    state = status(keys, seen + HOUR + 86400)
    assert state.phase is Phase.IDLE
    assert state.old is not None and state.old.tag == 2222
    assert dict((k.tag, word) for k, word in state.keys)[1111] == "removed"
    # And a second roll can start from there.
    keys = merge(keys, start(keys, 3333, seen + 2 * 86400 + HOUR, TIMINGS))
    assert status(keys, seen + 2 * 86400 + HOUR).phase is Phase.PUBLISHING


def test_removal_also_waits_for_signatures_made_before_the_roll() -> None:
    """A DS confirmed at once (TTL(DS) tiny) must still not remove O before every RRset
    cached with O's signature alone has expired (t0 + Dprp + max TTL)."""
    timings = dataclasses.replace(TIMINGS, parent_ds_ttl=1, parent_propagation=0, max_ttl=10 * HOUR)
    keys = [first_key()]
    keys = merge(keys, start(keys, 2222, T0, timings))
    ready = T0 + 300 + HOUR
    keys = merge(keys, ds_published(keys, ready, timings))
    old = next(k for k in keys if k.tag == 1111)
    assert old.delete == T0 + 300 + 10 * HOUR


def test_refusals() -> None:
    keys = [first_key()]
    with pytest.raises(RolloverError, match="no DS change is awaited"):
        ds_published(keys, T0, TIMINGS)
    with pytest.raises(RolloverError, match="already in use"):
        start(keys, 1111, T0, TIMINGS)
    rolling = merge(keys, start(keys, 2222, T0, TIMINGS))
    with pytest.raises(RolloverError, match="one key in use"):
        start(rolling, 3333, T0 + 1, TIMINGS)
    with pytest.raises(ValueError, match="dnskey_ttl"):
        Timings(dnskey_ttl=-1, max_ttl=0)
    three = [*rolling, KeyTimes(4444, publish=T0)]
    with pytest.raises(RolloverError, match="3 keys"):
        status(three, T0 + 1)
    assert status([], T0).phase is Phase.IDLE


# -- the validator's view --------------------------------------------------------------


def simulate(timings: Timings, ds_seen_after: float, step: float = 300.0) -> list[str]:
    """Run a roll and check, every ``step`` seconds from before t0 to after its end, that
    any mix of cached data a validator may hold still validates. Returns the failures."""
    keys = [first_key()]
    keys = merge(keys, start(keys, 2222, T0, timings))
    ready = next(k for k in keys if k.tag == 2222).sync_publish  # when we tell the user
    assert ready is not None
    ds_seen = ready + ds_seen_after
    keys = merge(keys, ds_published(keys, ds_seen, timings))
    end = max(k.delete or 0.0 for k in keys) + 2 * max(timings.max_ttl, timings.parent_ds_ttl)
    # The parent: DS = {O} until the user's change is everywhere, then {N}. The change
    # was made when the user saw it at one parent server; all of them have it within
    # Dprp(parent) after that.
    ds_change = ds_seen + timings.parent_propagation

    def dnskey_sets(at: float) -> list[frozenset[int]]:
        # Served between (at - TTL - Dprp) and at: every version a cache may still hold.
        return served(at - timings.dnskey_ttl - timings.propagation, at, lambda t: published(keys, t))

    def signer_sets(at: float) -> list[frozenset[int]]:
        return served(at - timings.max_ttl - timings.propagation, at, lambda t: signing(keys, t))

    def ds_sets(at: float) -> list[frozenset[int]]:
        return served(
            at - timings.parent_ds_ttl, at, lambda t: frozenset({1111} if t < ds_change else {2222})
        )

    failures = []
    t = T0 - 2 * HOUR
    while t < end:
        for ds, dnskey, signers in itertools.product(ds_sets(t), dnskey_sets(t), signer_sets(t)):
            # The DNSKEY RRset is signed by the keys signing when it was served: both
            # during the roll, so any key of it that a DS matches authenticates it.
            trusted = ds & dnskey
            if not trusted or not (signers & dnskey):
                failures.append(
                    f"t0{t - T0:+.0f}s: DS {set(ds)}, DNSKEY {set(dnskey)}, RRSIG by {set(signers)}"
                )
        t += step
    return failures


def served(since: float, until: float, what: object) -> list[frozenset[int]]:
    assert callable(what)
    seen: list[frozenset[int]] = []
    t = since
    while t <= until:
        value = what(t)
        if value not in seen:
            seen.append(value)
        t += 150.0
    value = what(until)
    if value not in seen:
        seen.append(value)
    return seen


def published(keys: list[KeyTimes], at: float) -> frozenset[int]:
    return frozenset(k.tag for k in keys if k.published(at))


def signing(keys: list[KeyTimes], at: float) -> frozenset[int]:
    return frozenset(k.tag for k in keys if k.signing(at))


@pytest.mark.parametrize("ds_seen_after", [0.0, 600.0, 3 * 86400.0])
def test_a_validator_never_fails_mid_roll(ds_seen_after: float) -> None:
    timings = Timings(
        dnskey_ttl=HOUR, max_ttl=2 * HOUR, propagation=300, parent_ds_ttl=7200, parent_propagation=600
    )
    assert simulate(timings, ds_seen_after) == []


def test_the_simulation_catches_a_removal_that_comes_too_soon() -> None:
    """The check above can fail: with TTL(DS) under-declared (the parent really caches
    longer than we were told), the old key leaves while old DS sets are still cached."""
    honest = Timings(
        dnskey_ttl=HOUR, max_ttl=2 * HOUR, propagation=300, parent_ds_ttl=7200, parent_propagation=600
    )
    told = dataclasses.replace(honest, parent_ds_ttl=60)
    keys = [first_key()]
    keys = merge(keys, start(keys, 2222, T0, told))
    keys = merge(keys, ds_published(keys, T0 + told.publish_wait, told))
    removal = next(k for k in keys if k.tag == 1111).delete
    assert removal is not None
    # An old DS cached for the honest TTL outlives the old key by more than an hour.
    assert removal < T0 + honest.publish_wait + honest.parent_propagation + honest.parent_ds_ttl - HOUR
    assert simulate(told, 0.0) == []  # the simulation trusts the declared TTL...
    failing = simulate_with_parent_ttl(told, honest.parent_ds_ttl)
    assert failing, "a removal before the old DS expires must be caught"


def simulate_with_parent_ttl(timings: Timings, real_ds_ttl: float) -> list[str]:
    """``simulate`` where the parent's DS TTL is really ``real_ds_ttl``."""
    keys = [first_key()]
    keys = merge(keys, start(keys, 2222, T0, timings))
    ds_seen = T0 + timings.publish_wait
    keys = merge(keys, ds_published(keys, ds_seen, timings))
    ds_change = ds_seen + timings.parent_propagation
    failures = []
    t = T0
    while t < ds_change + 2 * real_ds_ttl:
        ds_cached = {1111} if t < ds_change + real_ds_ttl else set()
        if ds_cached and not (ds_cached & published(keys, t)):
            failures.append(f"t0{t - T0:+.0f}s: cached DS {ds_cached} matches no published key")
        t += 60.0
    return failures
