"""Combined checks (issue 17): several monitors per target, each through its own state
machine, combined by require = all / any / N; with maintenance, windows and the vote."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dynserver.config import parse_name
from dynserver.health.combine import combine, require_text
from dynserver.health.engine import Engine, target_key
from dynserver.health.state import Health, Result, TargetState
from dynserver.health.windows import parse_window
from dynserver.model import DynamicRecord, LocationsConfig, Monitor, MonitorType, Target

ZONE = parse_name("dyn.example.test")
WEB = Monitor(name="web", type=MonitorType.HTTP, port=8080, interval=10.0)
DB = Monitor(name="db", type=MonitorType.TCP, port=5432, interval=10.0, consecutive_down=2)
SLOW = Monitor(name="slow", type=MonitorType.TCP, port=22, interval=10.0, failback_delay=5.0)
MONITORS = {"web": WEB, "db": DB, "slow": SLOW}
PRIMARY = Target("primary", "127.0.0.21", priority=1)
BACKUP = Target("backup", "127.0.0.22", priority=2)


def record(
    *targets: Target, monitors: tuple[str, ...] = ("web", "db"), require: int | None = None
) -> DynamicRecord:
    return DynamicRecord(
        zone=ZONE,
        name=parse_name("app.dyn.example.test"),
        type="A",
        ttl=30,
        targets=targets or (PRIMARY, BACKUP),
        monitor=monitors[0],
        monitors=monitors,
        require=require,
    )


def feed(engine: Engine, monitor: str, target: Target, ok: bool, at: float, reason: str = "") -> list[str]:
    app = next(iter(engine.records.values()))
    result = Result(ok=ok, reason=reason or ("status 200" if ok else "status 503"), at=at)
    changes = engine.apply([target_key(app, target)], result, monitor=monitor)
    return [f"{c.target.name}:{c.transition.current.value}" for c in changes]


def answer(engine: Engine) -> list[str]:
    key = next(iter(engine.records))
    engine.recompute([key])
    rrset = engine.rrset(key)
    return [] if rrset is None else rrset.texts()


def test_one_check_per_monitor_and_address() -> None:
    engine = Engine([record()], MONITORS)
    checks = engine.checks()
    assert sorted((k.monitor, k.address) for k in checks) == [
        ("db", "127.0.0.21"),
        ("db", "127.0.0.22"),
        ("web", "127.0.0.21"),
        ("web", "127.0.0.22"),
    ]
    ports = {k.monitor: check.port for k, (check, _, _) in checks.items()}
    assert ports == {"web": 8080, "db": 5432}  # each monitor's own options


def test_all_required_one_failing_monitor_takes_the_target_down_and_is_named() -> None:
    app = record()
    engine = Engine([app], MONITORS)
    key = target_key(app, PRIMARY)
    assert feed(engine, "web", PRIMARY, True, 1) == []  # db has no verdict yet: still unknown
    assert engine.states[key].observed is Health.UNKNOWN
    assert feed(engine, "db", PRIMARY, True, 1) == ["primary:up"]
    feed(engine, "web", BACKUP, True, 1)
    feed(engine, "db", BACKUP, True, 1)
    assert answer(engine) == ["127.0.0.21"]
    # db's own threshold (consecutive_down = 2): one failure is not enough.
    assert feed(engine, "db", PRIMARY, False, 2, "refused") == []
    changes = engine.apply([key], Result(ok=False, reason="refused", at=3), monitor="db")
    assert [c.transition.current for c in changes] == [Health.DOWN]
    reason = changes[0].transition.reason
    assert "db: refused" in reason and "1 of 2 monitors up, all required" in reason
    assert "web" not in reason.split("(")[1]  # only the failing monitor is named as failing
    assert answer(engine) == ["127.0.0.22"]
    # The target's last result names its monitor; each monitor's state is kept.
    assert engine.states[key].last_result is not None
    assert engine.states[key].last_result.reason == "db: refused"
    assert [(n, s.observed) for n, s in engine.monitor_states(key)] == [
        ("web", Health.UP),
        ("db", Health.DOWN),
    ]
    # web failing too changes nothing more; db back: still down until web is back.
    assert feed(engine, "web", PRIMARY, False, 4) == []
    assert feed(engine, "db", PRIMARY, True, 5) == []
    assert feed(engine, "web", PRIMARY, True, 6) == ["primary:up"]
    assert answer(engine) == ["127.0.0.21"]


def test_any_required_stays_up_while_one_monitor_passes() -> None:
    app = record(require=1)
    engine = Engine([app], MONITORS)
    assert feed(engine, "web", PRIMARY, True, 1) == ["primary:up"]  # any: one verdict is enough
    assert feed(engine, "db", PRIMARY, False, 2) == []
    assert feed(engine, "db", PRIMARY, False, 3) == []  # db down (its 2 failures): web still up
    key = target_key(app, PRIMARY)
    assert dict((n, s.observed) for n, s in engine.monitor_states(key))["db"] is Health.DOWN
    changes = engine.apply([key], Result(ok=False, reason="timeout", at=4), monitor="web")
    assert [c.transition.current for c in changes] == [Health.DOWN]
    assert "0 of 2 monitors up, any required" in changes[0].transition.reason
    assert "web: timeout" in changes[0].transition.reason and "db: status 503" in changes[0].transition.reason


def test_at_least_n_of_three() -> None:
    app = record(monitors=("web", "db", "slow"), require=2)
    engine = Engine([app], MONITORS)
    feed(engine, "web", PRIMARY, True, 1)
    assert feed(engine, "slow", PRIMARY, True, 1) == ["primary:up"]  # 2 of 3
    assert feed(engine, "db", PRIMARY, False, 2) == []
    assert feed(engine, "db", PRIMARY, False, 3) == []  # db down, 2 of 3 still up
    changes = engine.apply(
        [target_key(app, PRIMARY)], Result(ok=False, reason="timeout", at=4), monitor="web"
    )
    assert [c.transition.current for c in changes] == [Health.DOWN]
    assert "1 of 3 monitors up, at least 2 required" in changes[0].transition.reason


def test_a_monitors_failback_delay_makes_the_target_pending() -> None:
    app = record(monitors=("web", "slow"), require=None)
    engine = Engine([app], MONITORS)
    key = target_key(app, PRIMARY)
    feed(engine, "web", PRIMARY, True, 1)
    assert feed(engine, "slow", PRIMARY, True, 1) == ["primary:up"]
    assert feed(engine, "slow", PRIMARY, False, 2) == ["primary:down"]
    assert feed(engine, "slow", PRIMARY, True, 3) == ["primary:pending"]  # slow's own failback wait
    assert engine.states[key].pending_until == 8.0
    assert engine.next_deadline() == 8.0
    assert engine.tick(7.9) == []
    assert [c.transition.current for c in engine.tick(8.0)] == [Health.UP]


def test_a_stalled_monitor_makes_the_target_unknown() -> None:
    app = record()
    engine = Engine([app], MONITORS)
    feed(engine, "web", PRIMARY, True, 1)
    feed(engine, "db", PRIMARY, True, 1)
    feed(engine, "web", PRIMARY, True, 30)  # db says nothing more
    changes = engine.tick(34.0)  # db: over 3 intervals + timeout after its last result
    assert [(c.target.name, c.transition.current) for c in changes] == [("primary", Health.UNKNOWN)]
    assert "no verdict yet from db" in changes[0].transition.reason


def test_maintenance_and_windows_drain_a_combined_target_silently() -> None:
    window = parse_window({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"})
    primary = replace(PRIMARY, maintenance_windows=(window,))
    app = record(primary, BACKUP)
    engine = Engine([app], MONITORS)
    key = target_key(app, primary)
    feed(engine, "web", primary, True, 1)
    feed(engine, "db", primary, True, 1)
    changes = engine.tick_windows(window.start + 1, 2)  # type: ignore[operator]
    assert [c.transition.current for c in changes] == [Health.MAINTENANCE]
    assert feed(engine, "db", primary, False, 3) == []
    assert feed(engine, "db", primary, False, 4) == []  # down while drained: no transition
    assert engine.states[key].observed is Health.DOWN
    changes = engine.tick_windows(window.end + 1, 5)  # type: ignore[operator]
    assert [c.transition.current for c in changes] == [Health.DOWN]  # back to what checks see


def test_invert_is_the_monitors_own() -> None:
    """invert flips a monitor's result in the probe; the combination sees the flipped one."""
    app = record()
    engine = Engine([app], {**MONITORS, "db": replace(DB, invert=True)})
    feed(engine, "web", PRIMARY, True, 1)
    assert feed(engine, "db", PRIMARY, True, 1, "status 503 (inverted: must fail)") == ["primary:up"]


def test_a_target_names_its_own_monitors() -> None:
    primary = replace(PRIMARY, monitors=("web", "db"), require=1)
    app = DynamicRecord(
        zone=ZONE,
        name=parse_name("app.dyn.example.test"),
        type="A",
        ttl=30,
        targets=(primary, BACKUP),
        monitor="web",
    )
    engine = Engine([app], MONITORS)
    assert sorted((k.monitor, k.address) for k in engine.checks()) == [
        ("db", "127.0.0.21"),
        ("web", "127.0.0.21"),
        ("web", "127.0.0.22"),
    ]
    assert target_key(app, BACKUP) not in engine.combined  # one monitor: the single path
    assert feed(engine, "db", primary, True, 1) == ["primary:up"]
    assert feed(engine, "web", BACKUP, True, 1) == ["backup:up"]


def test_restored_state_seeds_each_monitor() -> None:
    app = record()
    key = target_key(app, PRIMARY)
    engine = Engine([app], MONITORS, restored={key: TargetState(observed=Health.UP, since=1.0)})
    assert all(s.observed is Health.UP for _, s in engine.monitor_states(key))
    assert feed(engine, "web", PRIMARY, True, 2) == []  # no flap to unknown after a restart


def test_the_vote_runs_per_monitor_then_combines() -> None:
    app = record()
    engine = Engine(
        [app], MONITORS, locations=LocationsConfig(quorum=2, stale_after=3), location_names=["local", "fra"]
    )
    key = target_key(app, PRIMARY)

    def vote(location: str, monitor: str, ok: bool, at: float) -> list[str]:
        result = Result(ok=ok, reason="ok" if ok else f"{location} fails", at=at)
        return [c.transition.current.value for c in engine.apply([key], result, location, monitor)]

    for location in ("local", "fra"):
        vote(location, "web", True, 1)
        vote(location, "db", True, 1)
    assert engine.states[key].observed is Health.UP
    assert vote("local", "db", False, 2) == []
    assert vote("local", "db", False, 3) == []  # local alone sees db down: no quorum
    assert vote("fra", "db", False, 3) == []
    assert vote("fra", "db", False, 4) == ["down"]  # both locations see db down (its threshold 2)
    assert "db" in engine.states[key].last_result.reason  # type: ignore[union-attr]
    assert vote("local", "db", True, 5) == []
    assert vote("fra", "db", True, 5) == ["up"]


@pytest.mark.parametrize(
    ("need", "total", "text"), [(2, 2, "all"), (1, 2, "any"), (1, 1, "all"), (2, 3, "at least 2")]
)
def test_require_text(need: int, total: int, text: str) -> None:
    assert require_text(need, total) == text


def test_combine_rule() -> None:
    up, down, unknown = TargetState(observed=Health.UP), TargetState(observed=Health.DOWN), TargetState()
    pending = TargetState(observed=Health.PENDING, pending_until=9.0)
    assert combine([("a", up), ("b", unknown)], 2)[0] is Health.UNKNOWN
    assert combine([("a", up), ("b", unknown)], 1)[0] is Health.UP
    assert combine([("a", down), ("b", unknown)], 2)[0] is Health.DOWN
    assert combine([("a", up), ("b", pending)], 2)[:2] == (Health.PENDING, 9.0)
    assert combine([("a", down), ("b", pending)], 2)[0] is Health.DOWN
