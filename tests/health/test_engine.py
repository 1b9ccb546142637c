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


def test_tick_looks_at_the_targets_only_when_one_may_be_due() -> None:
    """Stale results and ended failback waits are found on time, but the targets are not
    all looked at every second in between: nothing can be due before the earliest result
    goes stale or the earliest wait ends, and every result lowers that bound."""
    app = record("app", CHARLIE, ECHO)
    engine = Engine([app], {"web": WEB})  # stale 32 s after a result; failback delay 5 s
    looks: list[int] = []

    class Watched(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            looks.append(1)  # one look at every target
            return super().items()

    engine._watched = Watched(engine._watched)
    by_address = {k.address: targets for k, (_, _, targets) in engine.checks().items()}

    def feed(address: str, ok: bool, at: float) -> list[str]:
        changes = engine.apply(by_address[address], Result(ok=ok, reason="r", at=at))
        return [c.transition.current.value for c in changes]

    assert feed("127.0.0.21", True, 100) == ["up"]
    assert feed("127.0.0.22", True, 110) == ["up"]
    for second in range(101, 132):
        assert engine.tick(float(second)) == []
    assert len(looks) == 1  # the first tick finds the bound (132: charlie's result goes stale)
    stale = engine.tick(132.5)
    assert [(c.target.name, c.transition.current) for c in stale] == [("charlie", Health.UNKNOWN)]
    assert engine.tick(142.0) == []
    assert [c.target.name for c in engine.tick(142.5)] == ["echo"]
    looks.clear()
    # A failback wait that starts after the last look is seen to end on time.
    assert feed("127.0.0.21", False, 150) == ["down"]
    assert feed("127.0.0.21", True, 151) == ["pending"]
    assert engine.tick(155.9) == [] and len(looks) == 0  # before the wait ends: no look
    assert [(c.target.name, c.transition.current) for c in engine.tick(156.0)] == [("charlie", Health.UP)]
