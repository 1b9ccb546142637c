"""Maintenance windows (issue 17), pure: one-off and recurring, in time zones, with a
clock the test sets; and the engine draining and giving back the targets they cover."""

from __future__ import annotations

import datetime

import pytest

from dynserver.config import parse_name
from dynserver.health.engine import Engine, target_key
from dynserver.health.state import Health, Result
from dynserver.health.windows import parse_window
from dynserver.model import DynamicRecord, Monitor, MonitorType, Target


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def test_one_off() -> None:
    window = parse_window({"start": "2026-12-24T20:00:00+01:00", "end": "2026-12-25T06:00:00+01:00"})
    assert not window.active(at("2026-12-24T19:59:59+01:00"))
    assert window.next_change(at("2026-12-24T19:00:00+01:00")) == at("2026-12-24T20:00:00+01:00")
    assert window.active(at("2026-12-24T20:00:00+01:00"))
    assert window.next_change(at("2026-12-25T01:00:00+01:00")) == at("2026-12-25T06:00:00+01:00")
    assert not window.active(at("2026-12-25T06:00:00+01:00"))
    assert window.next_change(at("2026-12-26T00:00:00+01:00")) == float("inf")


def test_a_naive_time_is_in_the_windows_time_zone_and_toml_datetimes_work() -> None:
    naive = parse_window(
        {"start": "2026-12-24T20:00:00", "end": "2026-12-24T21:00:00", "timezone": "Europe/Berlin"}
    )
    assert naive.start == at("2026-12-24T20:00:00+01:00")
    toml = parse_window(
        {"start": datetime.datetime(2026, 12, 24, 19, 0, tzinfo=datetime.UTC), "end": "2026-12-24T20:00:00Z"}
    )
    assert toml.active(at("2026-12-24T20:30:00+01:00"))


def test_cron_in_a_time_zone() -> None:
    nightly = parse_window({"cron": "0 2 * * *", "duration": 3600, "timezone": "Europe/Berlin"})
    assert nightly.active(at("2026-12-07T02:00:00+01:00"))
    assert nightly.active(at("2026-12-07T02:59:59+01:00"))
    assert not nightly.active(at("2026-12-07T03:00:00+01:00"))
    assert nightly.next_change(at("2026-12-07T02:30:00+01:00")) == at("2026-12-07T03:00:00+01:00")
    assert nightly.next_change(at("2026-12-07T12:00:00+01:00")) == at("2026-12-08T02:00:00+01:00")
    # Summer time: 02:00 in Berlin is 00:00 UTC, not 01:00.
    assert nightly.active(at("2026-07-01T00:30:00+00:00"))


def test_weekdays_and_a_time_of_day_across_midnight() -> None:
    weekend = parse_window({"weekdays": ["sat", "sunday"], "from": "22:00", "to": "02:00", "timezone": "UTC"})
    assert weekend.cron == "0 22 * * 6,0"
    assert weekend.duration == 4 * 3600
    assert weekend.active(at("2026-12-12T23:00:00+00:00"))  # a Saturday night
    assert weekend.active(at("2026-12-13T01:59:00+00:00"))  # ... into Sunday
    assert not weekend.active(at("2026-12-14T23:00:00+00:00"))  # a Monday


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"start": "2026-12-24T20:00:00Z"}, "expected one of"),
        ({"start": "tomorrow", "end": "2026-12-24T20:00:00Z"}, "is not a date and time"),
        ({"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T19:00:00Z"}, "end must come after start"),
        ({"cron": "every night", "duration": 3600}, "is not a cron expression"),
        ({"cron": "0 2 * * *", "duration": 5}, "duration must be seconds from 60"),
        ({"cron": "0 2 * * *", "duration": 3600, "timezone": "Mars/Olympus"}, "is not a time zone"),
        ({"weekdays": ["someday"], "from": "02:00", "to": "03:00"}, "weekdays must be a list of days"),
        ({"weekdays": ["sat"], "from": "2am", "to": "03:00"}, "is not a time of day"),
        ("nightly", "expected a table"),
    ],
)
def test_mistakes_say_what_was_expected(raw: object, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_window(raw)
    assert says in str(caught.value)


WEB = Monitor(name="web", type=MonitorType.HTTP, port=8080)
ZONE = parse_name("dyn.example.test")


def test_the_engine_drains_during_a_window_and_gives_back_after() -> None:
    window = parse_window({"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T21:00:00Z"})
    primary = Target("primary", "127.0.0.21", priority=1, maintenance_windows=(window,))
    backup = Target("backup", "127.0.0.22", priority=2)
    record = DynamicRecord(
        ZONE, parse_name("app.dyn.example.test"), "A", 30, (primary, backup), monitor="web"
    )
    engine = Engine([record], {"web": WEB})
    for target in (primary, backup):
        engine.apply([target_key(record, target)], Result(ok=True, reason="ok", at=1))
    key = target_key(record, primary)
    assert engine.tick_windows(at("2026-12-24T19:59:00Z"), 2) == []
    changes = engine.tick_windows(at("2026-12-24T20:00:01Z"), 3)
    assert [(c.target.name, c.transition.current) for c in changes] == [("primary", Health.MAINTENANCE)]
    assert (
        changes[0].transition.reason
        == "maintenance window: start = '2026-12-24T20:00:00Z', end = '2026-12-24T21:00:00Z'"
    )
    engine.recompute([(record.name, "A")])
    assert engine.decisions[(record.name, "A")].values == ("127.0.0.22",)
    assert engine.tick_windows(at("2026-12-24T20:30:00Z"), 4) == []  # nothing to do meanwhile
    back = engine.tick_windows(at("2026-12-24T21:00:00Z"), 5)
    assert [(c.transition.current, c.transition.reason) for c in back] == [
        (Health.UP, "maintenance window over")
    ]
    assert engine.states[key].health is Health.UP


def test_an_operators_maintenance_is_not_lifted_by_a_window() -> None:
    window = parse_window({"start": "2026-12-24T20:00:00Z", "end": "2026-12-24T21:00:00Z"})
    primary = Target("primary", "127.0.0.21", maintenance_windows=(window,))
    record = DynamicRecord(ZONE, parse_name("app.dyn.example.test"), "A", 30, (primary,), monitor="web")
    engine = Engine([record], {"web": WEB})
    key = target_key(record, primary)
    engine.set_maintenance(key, True, 1)  # set before the window
    assert engine.tick_windows(at("2026-12-24T20:00:01Z"), 2) == []
    assert engine.tick_windows(at("2026-12-24T21:00:01Z"), 3) == []
    assert engine.states[key].maintenance  # still the operator's
