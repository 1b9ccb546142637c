"""The engine with check addresses (issue 17): checks are keyed and shared by the address
the probe connects to, and an update moves the value answered, not the check."""

from __future__ import annotations

from dynserver.health.engine import Engine, build_check, checked_address, target_key
from dynserver.health.state import Health, Result
from dynserver.model import Target
from tests.health.test_engine import WEB, record

SIDECAR = "127.0.0.40"


def test_the_check_key_and_the_probe_use_the_check_address() -> None:
    nat = Target("nat", "203.0.113.7", check_address="10.0.0.7", port=8081)
    engine = Engine([record("app", nat)], {"web": WEB})
    ((key, (check, _, _)),) = engine.checks().items()
    assert (key.address, key.port) == ("10.0.0.7", 8081)
    assert (check.address, check.port) == ("10.0.0.7", 8081)
    assert check.host_header is None  # no Host is made up: the probe's default, as today


def test_build_check_connects_to_the_check_address_or_the_value() -> None:
    behind = Target("a", "192.0.2.1", check_address=SIDECAR)
    plain = Target("b", "192.0.2.1")
    assert build_check(WEB, behind, checked_address(behind, "192.0.2.1")).address == SIDECAR
    assert build_check(WEB, plain, checked_address(plain, "192.0.2.1")).address == "192.0.2.1"


def test_targets_behind_one_sidecar_share_one_check() -> None:
    one = Target("one", "192.0.2.1", check_address=SIDECAR)
    two = Target("two", "192.0.2.2", check_address=SIDECAR)
    app = record("app", one, two)
    engine = Engine([app], {"web": WEB})
    ((key, (_, _, targets)),) = engine.checks().items()
    assert key.address == SIDECAR
    assert sorted(targets) == sorted([target_key(app, one), target_key(app, two)])


def test_one_value_with_two_check_addresses_is_two_checks() -> None:
    inside = Target("inside", "203.0.113.7", check_address="10.0.0.7")
    outside = Target("outside", "203.0.113.7", check_address="10.0.0.8")
    engine = Engine([record("app", inside, outside)], {"web": WEB})
    assert sorted(k.address for k in engine.checks()) == ["10.0.0.7", "10.0.0.8"]


def test_an_update_moves_the_value_but_not_the_check() -> None:
    nat = Target("nat", "203.0.113.7", check_address="10.0.0.7")
    app = record("app", nat)
    engine = Engine([app], {"web": WEB})
    before = engine.checks()
    key = target_key(app, nat)
    engine.apply(next(iter(before.values()))[2], Result(ok=True, reason="status 200", at=1))
    assert engine.set_value(key, "203.0.113.99")
    assert engine.checks().keys() == before.keys()  # the same check, still shared as before
    assert engine.states[key].health is Health.UP  # its health is the check's: it carries over
    engine.recompute([(app.name, "A")])
    assert engine.rrset((app.name, "A")).texts() == ["203.0.113.99"]  # type: ignore[union-attr]


def test_without_a_check_address_the_check_follows_the_value() -> None:
    plain = Target("plain", "192.0.2.1")
    app = record("app", plain)
    engine = Engine([app], {"web": WEB})
    engine.set_value(target_key(app, plain), "192.0.2.9")
    assert [k.address for k in engine.checks()] == ["192.0.2.9"]


def test_a_target_without_a_value_is_checked_at_its_check_address() -> None:
    waiting = Target("waiting", None, check_address=SIDECAR)
    app = record("app", waiting)
    engine = Engine([app], {"web": WEB})
    assert [k.address for k in engine.checks()] == [SIDECAR]
    engine.apply([target_key(app, waiting)], Result(ok=True, reason="status 200", at=1))
    engine.recompute([(app.name, "A")])
    assert engine.rrset((app.name, "A")) is None  # up, but nothing to answer until an update


def test_checked_address_is_the_check_address_else_the_value() -> None:
    assert checked_address(Target("a", None, check_address=SIDECAR), None) == SIDECAR
    assert checked_address(Target("b", "192.0.2.1", check_address=SIDECAR), "192.0.2.1") == SIDECAR
    assert checked_address(Target("c", "192.0.2.1"), "192.0.2.9") == "192.0.2.9"
    assert checked_address(Target("d", None), None) is None  # nothing to check yet
