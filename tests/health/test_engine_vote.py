"""The engine with [locations]: each location's own state machine, then the vote."""

from __future__ import annotations

import random
from dataclasses import replace

from dynserver.config import parse_name
from dynserver.health import engine as engine_module
from dynserver.health.engine import Change, Engine, target_key
from dynserver.health.state import Health, Result, TargetState
from dynserver.model import DynamicRecord, LocationsConfig, Monitor, MonitorType, Target

ZONE = parse_name("dyn.example.test")
WEB = Monitor(name="web", type=MonitorType.HTTP, port=8080, interval=10.0, timeout=2.0)
PRIMARY = Target("primary", "127.0.0.21", priority=1)
BACKUP = Target("backup", "127.0.0.22", priority=2)
APP = DynamicRecord(
    zone=ZONE,
    name=parse_name("app.dyn.example.test"),
    type="A",
    ttl=30,
    targets=(PRIMARY, BACKUP),
    monitor="web",
)
KEY = target_key(APP, PRIMARY)
THREE = ["local", "fra", "nyc"]


def engine(quorum: int = 2, monitor: Monitor = WEB, names: list[str] = THREE) -> Engine:
    return Engine(
        [APP], {"web": monitor}, locations=LocationsConfig(quorum=quorum, stale_after=3), location_names=names
    )


def feed(e: Engine, location: str, ok: bool, at: float, target: Target = PRIMARY) -> list[str]:
    changes = e.apply(
        [target_key(APP, target)], Result(ok=ok, reason="ok" if ok else "timeout", at=at), location
    )
    return [f"{c.target.name}:{c.transition.current.value}" for c in changes]


def answer(e: Engine) -> list[str]:
    e.recompute([(APP.name, "A")])
    rrset = e.rrset((APP.name, "A"))
    return [] if rrset is None else rrset.texts()


def test_one_location_down_of_three_keeps_the_target_up() -> None:
    e = engine()
    assert feed(e, "local", True, 1) == ["primary:up"]  # 1 fresh location: need min(2, 1) = 1
    assert e.states[KEY].observed is Health.UP
    feed(e, "fra", True, 1)
    feed(e, "nyc", True, 1)
    assert feed(e, "local", False, 2) == []  # one bad path: no failover
    assert e.tally(KEY, 2).down == 1 and e.tally(KEY, 2).need == 2
    assert feed(e, "fra", False, 3) == ["primary:down"]  # two agree: the answer moves
    reason = e.states[KEY]
    assert reason.observed is Health.DOWN


def test_the_transition_reason_names_the_locations_that_agreed() -> None:
    e = engine()
    for name in THREE:
        feed(e, name, True, 1)
    feed(e, "nyc", False, 2)
    changes = e.apply([KEY], Result(ok=False, reason="status 503", at=3), "fra")
    assert changes[0].transition.reason == "down at 2 of 3 locations (fra: status 503; nyc: timeout)"


def test_up_needs_the_quorum_too_and_down_wins_a_tie() -> None:
    e = engine(quorum=1)
    feed(e, "local", True, 1)
    assert feed(e, "fra", False, 1) == ["primary:down"]  # quorum 1: any location
    assert feed(e, "local", True, 2) == []  # one up, one down: down holds, no flapping
    assert feed(e, "fra", True, 3) == ["primary:up"]


def test_a_silent_location_stops_counting_and_the_vote_shrinks() -> None:
    e = engine()
    for name in THREE:
        feed(e, name, True, 0)
    # fra and nyc go silent (a dead agent); fresh window is 3 * 10 + 2 = 32 s.
    assert e.tick(20) == []
    feed(e, "local", True, 20)
    assert e.tally(KEY, 40) == e.tally(KEY, 40)  # read-only
    tally = e.tally(KEY, 40)
    assert (tally.fresh, tally.total, tally.need) == (1, 3, 1)
    # The dead agents did not cause a failover; now the one that reports decides alone.
    assert feed(e, "local", False, 41) == ["primary:down"]


def test_no_fresh_location_makes_the_target_unknown() -> None:
    e = engine()
    feed(e, "local", True, 0)
    assert e.tick(30) == []
    changes = e.tick(33)
    assert [c.transition.current for c in changes] == [Health.UNKNOWN]
    assert "no fresh result from any of 3 locations" in changes[0].transition.reason


def test_excluded_location_does_not_vote() -> None:
    e = engine()
    for name in THREE:
        feed(e, name, True, 1)
    feed(e, "local", False, 2)
    e.set_excluded({"local": "canary failed: timeout"}, 2)
    assert feed(e, "fra", False, 3) == []  # fresh 2 (fra, nyc), need 2: only fra down
    assert e.location_views(KEY, 3)[0].excluded
    # local counts again: 2 down
    assert [c.transition.current for c in e.set_excluded({}, 4)] == [Health.DOWN]


def test_failback_delay_applies_to_the_voted_state() -> None:
    monitor = Monitor(name="web", type=MonitorType.HTTP, port=8080, interval=10.0, failback_delay=5.0)
    e = engine(monitor=monitor, names=["local", "fra"])
    for name in ("local", "fra"):
        feed(e, name, True, 0)
        feed(e, name, True, 0, BACKUP)
    feed(e, "local", False, 1)
    assert feed(e, "fra", False, 1) == ["primary:down"]
    assert answer(e) == ["127.0.0.22"]
    feed(e, "local", True, 2)
    assert feed(e, "fra", True, 2) == ["primary:pending"]
    # One location failing during the wait is not the quorum: the wait goes on...
    assert feed(e, "local", False, 3) == []
    feed(e, "local", True, 3.5)
    assert [c.transition.current for c in e.tick(7.1)] == [Health.UP]
    assert answer(e) == ["127.0.0.21"]


def test_a_pending_wait_restarts_when_the_quorum_fails_once() -> None:
    monitor = Monitor(
        name="web", type=MonitorType.HTTP, port=8080, interval=10.0, failback_delay=5.0, consecutive_down=3
    )
    e = engine(monitor=monitor, names=["local", "fra"])
    for at in (0, 1, 2):
        feed(e, "local", False, at)
        feed(e, "fra", False, at)
    assert e.states[KEY].observed is Health.DOWN
    feed(e, "local", True, 3)
    assert feed(e, "fra", True, 3) == ["primary:pending"]
    feed(e, "local", False, 4)  # each location saw one failure: not down by its machine
    assert feed(e, "fra", False, 4) == ["primary:down"]  # ...but both: the wait restarts


def test_monitor_quorum_overrides_the_table() -> None:
    monitor = Monitor(name="web", type=MonitorType.HTTP, port=8080, interval=10.0, quorum=3)
    e = engine(quorum=1, monitor=monitor)
    for name in THREE:
        feed(e, name, True, 1)
    feed(e, "local", False, 2)
    assert feed(e, "fra", False, 2) == []
    assert feed(e, "nyc", False, 2) == ["primary:down"]


def test_removed_location_views_go() -> None:
    e = engine()
    for name in THREE:
        feed(e, name, True, 1)
    feed(e, "nyc", False, 2)
    e.set_locations(["local", "fra"], 2)
    assert [v.name for v in e.location_views(KEY, 2)] == ["local", "fra"]
    assert "nyc" not in e.views[KEY]


def test_without_locations_nothing_changes() -> None:
    e = Engine([APP], {"web": WEB})
    assert e.voting is None and e.views == {}
    assert feed(e, "ignored", False, 1) == ["primary:down"]


def test_after_a_restart_the_first_location_to_report_does_not_decide_alone() -> None:
    e = Engine(
        [APP],
        {"web": WEB},
        restored={KEY: TargetState(observed=Health.UP)},
        locations=LocationsConfig(quorum=2, stale_after=3),
        location_names=THREE,
    )
    e.set_locations(THREE, 100)  # the server started: every location joins at 100
    assert feed(e, "local", False, 101) == []  # fra and nyc may still report: need 2
    assert e.tally(KEY, 101).fresh == 3
    assert feed(e, "fra", True, 102) == []
    # nyc never reports: after one fresh window (32 s) it stops counting, and so does
    # the joining grace; local's view is stale by then too, fra decides alone.
    assert e.tick(131) == []
    assert e.tally(KEY, 133.5).fresh == 1
    assert feed(e, "local", False, 134) == []  # 1 up (fra), 1 down (local), need 2: keep


def _snapshot(e: Engine) -> tuple[object, ...]:
    return (dict(e.states), {k: dict(v) for k, v in e.views.items()}, dict(e._recount_at))


def test_a_result_that_changes_no_count_gives_what_a_full_vote_gives() -> None:
    """Results that leave a vote's count as it was are only counted (Engine.quick_votes):
    random results of three locations, with gaps that let views go stale, failback
    waits, an excluded location and ticks, fed to an engine with the shortcut and one
    without: every change, state, view and next recount is the same."""
    rng = random.Random(19)
    slow_monitor = replace(WEB, consecutive_down=2, consecutive_up=2, failback_delay=15.0)
    for quorum, monitor in [(1, WEB), (2, WEB), (2, slow_monitor), (3, slow_monitor)]:
        quick, full = engine(quorum, monitor), engine(quorum, monitor)
        full.quick_votes = False
        quick.set_locations(THREE, 0.0)
        full.set_locations(THREE, 0.0)
        at = 0.0
        for step in range(3000):
            at += rng.choice([0.1, 1.0, 3.0, 10.0, 40.0]) if step % 50 == 0 else rng.random() * 4
            roll = rng.random()
            if roll < 0.05:
                got = [(c.target.name, c.transition) for c in quick.tick(at)]
                assert got == [(c.target.name, c.transition) for c in full.tick(at)]
            elif roll < 0.07:
                excluded = {"nyc": "canary failed"} if rng.random() < 0.5 else {}
                got = [(c.target.name, c.transition) for c in quick.set_excluded(excluded, at)]
                assert got == [(c.target.name, c.transition) for c in full.set_excluded(excluded, at)]
            else:
                location = rng.choice(THREE[: rng.choice([1, 2, 3])])  # some locations lag
                ok = rng.random() < (0.9 if (step // 200) % 2 else 0.3)
                target = rng.choice([PRIMARY, BACKUP])
                assert feed(quick, location, ok, at, target) == feed(full, location, ok, at, target)
            assert _snapshot(quick) == _snapshot(full), (quorum, step)
        assert quick.states[KEY].last_result is not None


def test_counting_a_result_keeps_every_other_field_of_the_state() -> None:
    """_counted builds the state field by field (for speed): a field added to TargetState
    must be added there too, or it would be lost on every result."""
    state = TargetState(
        observed=Health.PENDING,
        since=5.0,
        successes=3,
        failures=0,
        pending_until=9.0,
        last_result=None,
        maintenance=True,
        watched_since=1.0,
        forced=Health.DOWN,
    )
    result = Result(ok=False, reason="timeout", at=7.0)
    counted = engine_module._counted(state, result)
    for name in TargetState.__struct_fields__:
        expected = {"last_result": result, "successes": 0, "failures": 1}.get(name, getattr(state, name))
        assert getattr(counted, name) == expected, name


def test_ticks_look_at_the_votes_only_when_one_may_change_and_still_on_time() -> None:
    """tick() skips the loop over every target until a view may go stale or a failback
    wait may end; a result that starts a wait brings the next look forward."""
    monitor = Monitor(name="web", type=MonitorType.HTTP, port=8080, interval=10.0, failback_delay=5.0)
    e = engine(quorum=1, monitor=monitor, names=["local"])
    looks: list[float] = []
    loop = e._tick_votes

    def counted(now: float) -> list[Change]:
        looks.append(now)
        return loop(now)

    e._tick_votes = counted  # type: ignore[method-assign]
    feed(e, "local", True, 0, BACKUP)
    assert feed(e, "local", False, 0) == ["primary:down"]
    for second in range(1, 10):
        assert e.tick(second) == []
        feed(e, "local", False, second)
        feed(e, "local", True, second, BACKUP)
    assert looks == [1]  # the first tick looks at all, then none is due before 9 + 32 s
    assert feed(e, "local", True, 10) == ["primary:pending"]  # the wait ends at 15
    assert e.tick(14.9) == [] and looks[-1] == 14.9
    assert [c.transition.current for c in e.tick(15.0)] == [Health.UP]
    assert e.tick(16) == [] and e.tick(30) == [] and looks[-1] == 15.0
    stale = e.tick(43)  # primary's last result at 10, backup's at 9: fresh for 32 s
    assert sorted((c.target.name, c.transition.current) for c in stale) == [
        ("backup", Health.UNKNOWN),
        ("primary", Health.UNKNOWN),
    ]
    assert looks[-1] == 43
