"""Forced states (issue 17, gdnsd's admin_state) in the state machine and the engine: an
admin's up or down over the checks, for a while or until cleared. A fake clock: times are
arguments (loop time for transitions, Unix time for the end)."""

from __future__ import annotations

import pytest

from dynserver.config import parse_name
from dynserver.health import state as machine
from dynserver.health.engine import Engine, Forcing, target_key
from dynserver.health.state import Health, Result, TargetState, Thresholds
from dynserver.model import DynamicRecord, Monitor, MonitorType, Target

ZONE = parse_name("dyn.example.test")
WEB = Monitor(name="web", type=MonitorType.HTTP, interval=10.0)
DB = Monitor(name="db", type=MonitorType.TCP, port=5432, interval=10.0)
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
BACKUP_KEY = target_key(APP, BACKUP)
WALL = 1_800_000_000.0  # Unix time "now" of these tests


def up_engine(*records: DynamicRecord) -> Engine:
    engine = Engine(list(records or [APP]), {"web": WEB, "db": DB})
    for key in (KEY, BACKUP_KEY):
        engine.apply([key], Result(True, "status 200", at=1.0), monitor="web")
    return engine


def answer(engine: Engine) -> list[str]:
    engine.recompute([(APP.name, "A")])
    rrset = engine.rrset((APP.name, "A"))
    return [] if rrset is None else rrset.texts()


def test_forced_down_is_not_answered_and_checks_go_on_silently() -> None:
    engine = up_engine()
    assert answer(engine) == ["127.0.0.21"]
    change = engine.force(KEY, Forcing(Health.DOWN, "web:admin", WALL, WALL + 3600, "disk swap"), 2.0)
    assert change is not None
    assert (change.transition.previous, change.transition.current) == (Health.UP, Health.DOWN)
    assert change.transition.reason == "forced down by web:admin until 2027-01-15 09:00:00Z: disk swap"
    assert answer(engine) == ["127.0.0.22"]
    # Checks go on: what they observe changes, silently; the forced state stands.
    assert engine.apply([KEY], Result(False, "timeout", at=3.0), monitor="web") == []
    assert engine.states[KEY].observed is Health.DOWN and engine.states[KEY].health is Health.DOWN
    assert engine.apply([KEY], Result(True, "status 200", at=4.0), monitor="web") == []
    assert engine.states[KEY].observed is Health.UP
    assert answer(engine) == ["127.0.0.22"]


def test_clearing_returns_to_what_the_checks_say() -> None:
    engine = up_engine()
    engine.force(KEY, Forcing(Health.DOWN, "api", WALL), 2.0)
    engine.apply([KEY], Result(False, "timeout", at=3.0), monitor="web")  # really down meanwhile
    assert engine.force(KEY, None, 4.0) is None  # down forced, down observed: no change
    assert engine.forcing == {}
    engine.force(KEY, Forcing(Health.DOWN, "api", WALL), 5.0)
    engine.apply([KEY], Result(True, "status 200", at=6.0), monitor="web")  # back meanwhile
    change = engine.force(KEY, None, 7.0)
    assert change is not None and change.transition.current is Health.UP
    assert change.transition.reason == "forced down cleared: back to its checks"
    assert answer(engine) == ["127.0.0.21"]


def test_forced_up_is_answered_while_its_checks_fail() -> None:
    engine = up_engine()
    engine.apply([KEY], Result(False, "refused", at=2.0), monitor="web")
    assert answer(engine) == ["127.0.0.22"]
    change = engine.force(KEY, Forcing(Health.UP, "cli", WALL), 3.0)
    assert change is not None and change.transition.current is Health.UP
    assert answer(engine) == ["127.0.0.21"]
    changes = engine.tick(100.0)  # stale checks change nothing either while forced
    assert [c.target.name for c in changes] == ["backup"]


def test_maintenance_wins_over_forced_up() -> None:
    engine = up_engine()
    engine.force(KEY, Forcing(Health.UP, "api", WALL), 2.0)
    change = engine.set_maintenance(KEY, True, 3.0)
    assert change is not None and change.transition.current is Health.MAINTENANCE
    assert answer(engine) == ["127.0.0.22"]
    change = engine.set_maintenance(KEY, False, 4.0)
    assert change is not None and change.transition.current is Health.UP


def test_an_end_time_expires_it() -> None:
    engine = up_engine()
    engine.force(KEY, Forcing(Health.DOWN, "api", WALL, until=WALL + 60), 2.0)
    engine.force(BACKUP_KEY, Forcing(Health.DOWN, "api", WALL), 2.0)  # until cleared
    assert engine.expired_forcing(WALL + 59.9) == []
    assert engine.expired_forcing(WALL + 60) == [KEY]
    change = engine.force(KEY, None, 3.0, ended=True)
    assert change is not None and change.transition.reason == "forced down ended: back to its checks"


def test_a_combined_target_forced_down_stays_down_while_its_monitors_recover() -> None:
    app = DynamicRecord(
        zone=ZONE,
        name=parse_name("app.dyn.example.test"),
        type="A",
        ttl=30,
        targets=(PRIMARY, BACKUP),
        monitor="web",
        monitors=("web", "db"),
    )
    engine = Engine([app], {"web": WEB, "db": DB})
    engine.force(KEY, Forcing(Health.DOWN, "api", WALL), 1.0)
    assert engine.apply([KEY], Result(True, "ok", at=2.0), monitor="web") == []
    assert engine.apply([KEY], Result(True, "ok", at=2.0), monitor="db") == []
    assert engine.states[KEY].observed is Health.UP and engine.states[KEY].health is Health.DOWN
    change = engine.force(KEY, None, 3.0)
    assert change is not None and change.transition.current is Health.UP


def test_restored_and_reloaded_forcing_is_kept() -> None:
    forcing = Forcing(Health.DOWN, "web:admin", WALL, None, "")
    engine = Engine([APP], {"web": WEB}, forcing={KEY: forcing})
    assert engine.states[KEY].health is Health.DOWN and engine.forcing == {KEY: forcing}
    engine.apply([KEY, BACKUP_KEY], Result(True, "status 200", at=1.0), monitor="web")
    assert answer(engine) == ["127.0.0.22"]


def test_the_state_machine_only_forces_up_or_down() -> None:
    state = TargetState(observed=Health.UP)
    with pytest.raises(ValueError, match="forced up or down"):
        machine.set_forced(state, Health.PENDING, 1.0, "x")
    forced, transition = machine.set_forced(state, Health.DOWN, 1.0, "why")
    assert transition is not None and forced.health is Health.DOWN
    # A failure while forced is silent, and the forced flag survives each step.
    stepped, silent = machine.step(forced, Result(False, "timeout", at=2.0), Thresholds())
    assert silent is None and stepped.forced is Health.DOWN and stepped.observed is Health.DOWN
