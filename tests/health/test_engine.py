"""The engine: shared checks, results to targets, answers recomputed, TTL while pending."""

from __future__ import annotations

from dynserver.config import parse_name
from dynserver.health.engine import Engine, target_key
from dynserver.health.state import Health, Result
from dynserver.model import DynamicRecord, Monitor, Target

ZONE = parse_name("dyn.example.test")
WEB = Monitor(name="web", type="http", port=8080, interval=10.0, failback_delay=5.0)


def record(name: str, *targets: Target, **kwargs: object) -> DynamicRecord:
    return DynamicRecord(
        zone=ZONE,
        name=parse_name(f"{name}.dyn.example.test"),
        type="A",
        ttl=30,
        targets=targets,
        monitor="web",
        **kwargs,
    )  # type: ignore[arg-type]


CHARLIE = Target("charlie", "127.0.0.21", priority=1)
ECHO = Target("echo", "127.0.0.22", priority=2)


def test_one_check_per_address_shared_by_records() -> None:
    app = record("app", CHARLIE, ECHO)
    www = record("www", CHARLIE)
    engine = Engine([app, www], {"web": WEB})
    checks = engine.checks()
    assert len(checks) == 2  # charlie is checked once for both records
    charlie = next(v for k, v in checks.items() if k.address == "127.0.0.21")
    assert sorted(charlie[2]) == sorted([target_key(app, CHARLIE), target_key(www, CHARLIE)])
    assert charlie[0].port == 8080


def test_failover_and_failback_with_pending_ttl() -> None:
    app = record("app", CHARLIE, ECHO, pending_ttl=5)
    engine = Engine([app], {"web": WEB})
    key = (app.name, "A")
    checks = engine.checks()
    by_address = {k.address: targets for k, (_, _, targets) in checks.items()}

    def feed(address: str, ok: bool, at: float) -> list[tuple[str, str]]:
        changes = engine.apply(by_address[address], Result(ok=ok, reason="r", at=at))
        return [(c.target.name, c.transition.current.value) for c in changes]

    assert feed("127.0.0.21", True, 1) == [("charlie", "up")]
    assert feed("127.0.0.22", True, 1) == [("echo", "up")]
    assert engine.recompute([key]) == []  # unknown fell back to charlie already: no change
    assert engine.rrset(key).texts() == ["127.0.0.21"]  # type: ignore[union-attr]
    assert feed("127.0.0.21", False, 2) == [("charlie", "down")]
    assert engine.recompute([key]) == [key]
    assert engine.rrset(key).texts() == ["127.0.0.22"]  # type: ignore[union-attr]
    assert feed("127.0.0.21", True, 3) == [("charlie", "pending")]
    assert engine.recompute([key]) == [key]  # same values, but the low TTL applies now
    assert engine.ttl(key) == 5
    assert engine.next_deadline() == 8.0
    assert engine.tick(7.9) == []
    assert [c.transition.current for c in engine.tick(8.0)] == [Health.UP]
    engine.recompute([key])
    assert engine.rrset(key).texts() == ["127.0.0.21"]  # type: ignore[union-attr]
    assert engine.ttl(key) == 30


def test_unmonitored_records_are_static_and_maintenance_drains() -> None:
    plain = DynamicRecord(
        zone=ZONE, name=parse_name("plain.dyn.example.test"), type="A", ttl=60, targets=(CHARLIE, ECHO)
    )
    engine = Engine([plain], {})
    key = (plain.name, "A")
    assert engine.checks() == {}
    assert engine.rrset(key).texts() == ["127.0.0.21"]  # type: ignore[union-attr]
    change = engine.set_maintenance(target_key(plain, CHARLIE), True, 1.0)
    assert change is not None and change.transition.current is Health.MAINTENANCE
    assert engine.recompute([key]) == [key]
    assert engine.rrset(key).texts() == ["127.0.0.22"]  # type: ignore[union-attr]


def test_tick_marks_silent_targets_unknown_after_three_intervals_and_the_timeout() -> None:
    app = record("app", CHARLIE, ECHO)
    engine = Engine([app], {"web": WEB})  # interval 10 s, timeout 2 s: stale after 32 s
    by_address = {k.address: targets for k, (_, _, targets) in engine.checks().items()}
    engine.apply(by_address["127.0.0.21"], Result(ok=True, reason="status 200", at=100.0))
    engine.apply(by_address["127.0.0.22"], Result(ok=True, reason="status 200", at=110.0))
    assert engine.tick(132.0) == []  # charlie's result is exactly 32 s old: not yet
    stale = engine.tick(132.5)
    assert [(c.target.name, c.transition.current, c.transition.reason) for c in stale] == [
        ("charlie", Health.UNKNOWN, "no check result (checker stalled)")
    ]
    assert engine.tick(133.0) == []  # said once
    assert [c.target.name for c in engine.tick(142.5)] == ["echo"]
    unmonitored = Engine([DynamicRecord(zone=ZONE, name=app.name, type="A", ttl=60, targets=(CHARLIE,))], {})
    assert unmonitored.tick(1e9) == []  # never checked: never stale
