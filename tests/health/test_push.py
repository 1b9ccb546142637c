"""Push monitors in the engine (issue 17): nothing probed, heartbeats come in; the target
is up while they arrive within interval x consecutive_down, down at once on status=down,
alone or combined with a probed monitor. A fake clock: times are arguments."""

from __future__ import annotations

import pytest

from dynserver.config import parse_name
from dynserver.health.engine import Engine, target_key
from dynserver.health.state import Health, Result, TargetState
from dynserver.model import DynamicRecord, Monitor, MonitorType, Target
from dynserver.update import push

ZONE = parse_name("dyn.example.test")
BEAT = Monitor(name="beat", type=MonitorType.PUSH, interval=60.0, consecutive_down=2)
WEB = Monitor(name="web", type=MonitorType.HTTP, interval=10.0)
PRIMARY = Target("primary", "127.0.0.21", priority=1)
BACKUP = Target("backup", "127.0.0.22", priority=2)


def record(*monitors: str) -> DynamicRecord:
    return DynamicRecord(
        zone=ZONE,
        name=parse_name("app.dyn.example.test"),
        type="A",
        ttl=30,
        targets=(PRIMARY,),
        monitor=monitors[0],
        monitors=monitors if len(monitors) > 1 else (),
    )


KEY = target_key(record("beat"), PRIMARY)


def beat(engine: Engine, at: float, ok: bool = True, reason: str = "heartbeat") -> list[Health]:
    change = engine.heartbeat(KEY, "beat", Result(ok=ok, reason=reason, at=at))
    return [] if change is None else [change.transition.current]


def test_a_push_monitor_is_never_probed() -> None:
    engine = Engine([record("beat")], {"beat": BEAT})
    assert engine.checks() == {}
    assert engine.push_monitors(KEY) == ("beat",)
    assert engine.states[KEY].observed is Health.UNKNOWN


def test_up_while_heartbeats_arrive_and_down_when_they_stop() -> None:
    engine = Engine([record("beat")], {"beat": BEAT})
    assert engine.tick(1000.0) == []  # silence starts counting at the first tick
    assert beat(engine, 1010.0) == [Health.UP]
    assert engine.tick(1010.0 + 120.0) == []  # exactly interval x consecutive_down: still up
    assert beat(engine, 1129.0) == []
    changes = engine.tick(1129.0 + 120.5)
    assert [c.transition.current for c in changes] == [Health.DOWN]
    assert changes[0].transition.reason == "no heartbeat for 120 s (expected within 120 s)"
    assert engine.tick(1400.0) == []  # down once, not again every tick
    assert beat(engine, 1401.0) == [Health.UP]


def test_a_target_that_never_beats_goes_down_after_the_window() -> None:
    engine = Engine([record("beat")], {"beat": BEAT})
    engine.tick(5000.0)
    assert engine.tick(5120.0) == []
    changes = engine.tick(5121.0)
    assert [(c.transition.previous, c.transition.current) for c in changes] == [(Health.UNKNOWN, Health.DOWN)]
    assert changes[0].transition.reason.startswith("no heartbeat yet after 121 s")


def test_status_down_takes_it_down_at_once() -> None:
    engine = Engine([record("beat")], {"beat": BEAT})
    beat(engine, 1.0)
    assert beat(engine, 2.0, ok=False, reason="heartbeat: down: disk full") == [Health.DOWN]
    assert engine.states[KEY].last_result is not None
    assert engine.states[KEY].last_result.reason == "heartbeat: down: disk full"


def test_failback_delay_applies_to_heartbeats_too() -> None:
    slow = Monitor(name="beat", type=MonitorType.PUSH, interval=60.0, failback_delay=30.0)
    engine = Engine([record("beat")], {"beat": slow})
    beat(engine, 1.0)
    beat(engine, 2.0, ok=False)
    assert beat(engine, 3.0) == [Health.PENDING]
    assert [c.transition.current for c in engine.tick(33.0)] == [Health.UP]


def test_restored_state_keeps_its_grace_after_a_restart() -> None:
    restored = TargetState(
        observed=Health.UP, last_result=Result(True, "heartbeat", at=10.0), watched_since=500.0
    )
    engine = Engine([record("beat")], {"beat": BEAT}, restored={KEY: restored})
    assert engine.tick(620.0) == []  # silence counts from the restart (500), not the last beat
    assert [c.transition.current for c in engine.tick(621.0)] == [Health.DOWN]


def test_combined_with_a_probed_monitor() -> None:
    app = record("web", "beat")
    engine = Engine([app], {"beat": BEAT, "web": WEB})
    assert [k.monitor for k in engine.checks()] == ["web"]  # only web is probed
    engine.tick(0.0)
    engine.apply([KEY], Result(True, "status 200", at=1.0), monitor="web")
    change = engine.heartbeat(KEY, "beat", Result(True, "heartbeat", at=1.0))
    assert change is not None and change.transition.current is Health.UP
    engine.apply([KEY], Result(True, "status 200", at=100.0), monitor="web")
    changes = engine.tick(125.0)
    assert [c.transition.current for c in changes] == [Health.DOWN]
    assert "beat: no heartbeat for 124 s" in changes[0].transition.reason


def test_a_heartbeat_for_a_monitor_the_target_lacks_changes_nothing() -> None:
    engine = Engine([record("beat")], {"beat": BEAT, "web": WEB})
    assert engine.heartbeat(KEY, "web", Result(True, "heartbeat", at=1.0)) is None
    assert engine.states[KEY].observed is Health.UNKNOWN


# -- the request's side (dynserver.update.push) ---------------------------------------


def test_tokens_are_random_and_only_their_hash_is_stored() -> None:
    stored, token = push.create("app.dyn.example.test", "A", "primary", now=1.0)
    _, second = push.create("app.dyn.example.test", "A", "primary", now=1.0)
    assert token != second and len(token) == 32 and push.looks_like_token(token)
    assert stored.digest == push.digest(token) and token.encode() not in stored.digest
    assert (stored.record, stored.type, stored.target, stored.created) == (
        "app.dyn.example.test",
        "A",
        "primary",
        1.0,
    )


@pytest.mark.parametrize(
    ("query", "ok", "reason", "latency"),
    [
        ({}, True, "heartbeat", None),
        ({"status": "up", "msg": "OK", "ping": "42"}, True, "heartbeat: OK", 0.042),
        ({"status": "down", "msg": "disk\nfull"}, False, "heartbeat: down: disk full", None),
        ({"status": "DOWN"}, False, "heartbeat: down", None),
        ({"msg": "x" * 500}, True, "heartbeat: " + "x" * 200, None),
        ({"ping": ""}, True, "heartbeat", None),
    ],
)
def test_a_heartbeat_request(query: dict[str, str], ok: bool, reason: str, latency: float | None) -> None:
    assert push.beat(query) == push.Beat(ok, reason, latency)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"status": "maybe"}, "status='maybe': expected up or down"),
        ({"ping": "fast"}, "ping='fast': expected milliseconds"),
        ({"ping": "-1"}, "expected milliseconds"),
        ({"ping": "nan"}, "expected milliseconds"),
        ({"token": "x"}, "unknown parameter 'token'; expected: msg, ping, status"),
    ],
)
def test_a_bad_heartbeat_request_says_what_was_expected(query: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match="expected") as caught:
        push.beat(query)
    assert says in str(caught.value)


@pytest.mark.parametrize("text", ["short", "a" * 129, "has/slash" * 3, "spaces are bad here ok"])
def test_not_a_token_shape(text: str) -> None:
    assert not push.looks_like_token(text)
