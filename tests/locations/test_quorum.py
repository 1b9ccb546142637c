"""The pure vote: tallies, verdicts and connectivity exclusion."""

from __future__ import annotations

import random

from dynserver.health.state import Health, Result, TargetState
from dynserver.locations.quorum import Connectivity, Tally, tally


def view(observed: Health, at: float, ok: bool = True) -> TargetState:
    return TargetState(observed=observed, last_result=Result(ok=ok, reason="r", at=at))


def test_need_is_the_quorum_or_the_fresh_locations_if_fewer() -> None:
    views = {"a": view(Health.DOWN, 10), "b": view(Health.UP, 0)}
    count = tally(views, ["a", "b", "c"], [], quorum=2, now=10, fresh_for=5)
    assert (count.up, count.down, count.fresh, count.total, count.need) == (0, 1, 1, 3, 1)
    assert count.verdict is Health.DOWN


def test_verdicts() -> None:
    assert Tally(up=2, down=1, fresh=3, total=3, need=2).verdict is Health.UP
    assert Tally(up=1, down=2, fresh=3, total=3, need=2).verdict is Health.DOWN
    assert Tally(up=1, down=1, fresh=2, total=3, need=2).verdict is None
    assert Tally(up=1, down=1, fresh=2, total=2, need=1).verdict is Health.DOWN  # down wins a tie
    assert Tally().verdict is None
    assert Tally(up=1, down=2, fresh=3, total=3, need=2).describe() == "down at 2 of 3 locations (need 2)"


def test_excluded_and_unknown_views_do_not_count() -> None:
    views = {"a": view(Health.DOWN, 10), "b": view(Health.UNKNOWN, 10), "c": view(Health.UP, 10)}
    count = tally(views, ["a", "b", "c"], ["a"], quorum=2, now=10, fresh_for=5)
    assert (count.up, count.down, count.fresh, count.need) == (1, 0, 2, 2)


def test_a_location_whose_every_check_fails_while_others_pass_is_excluded() -> None:
    c = Connectivity(window=30)
    for check in ("x", "y"):
        c.result("a", check, False, 1)
        c.result("b", check, True, 1)
    assert c.excluded(1) == {"a": "all 2 of its checks failed while other locations saw them pass"}
    c.result("a", "x", True, 2)  # one passes again: it votes again
    assert c.excluded(2) == {}


def test_everything_failing_everywhere_is_an_outage_not_exclusion() -> None:
    c = Connectivity(window=30)
    for location in ("a", "b"):
        for check in ("x", "y"):
            c.result(location, check, False, 1)
    assert c.excluded(1) == {}


def test_one_check_is_not_enough_to_tell_and_stale_witnesses_do_not_count() -> None:
    c = Connectivity(window=30)
    c.result("a", "x", False, 100)
    c.result("b", "x", True, 100)
    assert c.excluded(100) == {}  # a single failing check may be that backend's path
    c.result("a", "y", False, 100)
    assert "a" in c.excluded(100)
    assert c.excluded(200) == {}  # b said nothing for 100 s: no witness


def test_canary() -> None:
    c = Connectivity(window=30)
    assert c.canary_ok("a") is None
    c.canary("a", False, "timeout")
    assert c.excluded(0) == {"a": "canary failed: timeout"}
    c.canary("a", True, "connected")
    assert c.excluded(0) == {} and c.canary_ok("a") is True
    c.result("a", "x", False, 0)
    c.forget_check("x")
    c.forget("a")
    assert c.excluded(0) == {}


def test_without_suspects_nobody_is_excluded() -> None:
    """The runtime asks excluded() only when suspects says someone may be: random
    results, canaries and dropped checks of three locations, and at every step a location
    excluded means suspects is true (the converse need not hold: a witness may be stale)."""
    rng = random.Random(19)
    c = Connectivity(window=30)
    at = 0.0
    seen_excluded = 0
    for _ in range(5000):
        at += rng.random() * 3
        location = rng.choice("abc")
        roll = rng.random()
        if roll < 0.03:
            c.canary(location, rng.random() < 0.5, "canary")
        elif roll < 0.05:
            c.forget_check(rng.choice("wxyz"))
        elif roll < 0.06:
            c.forget(location)
        else:
            failing = {"a": 0.9, "b": 0.5, "c": 0.1}[location]
            c.result(location, rng.choice("wxyz"), rng.random() > failing, at)
        excluded = c.excluded(at)
        seen_excluded += bool(excluded)
        assert c.suspects or excluded == {}
    assert seen_excluded > 100  # the walk did exclude locations, often
