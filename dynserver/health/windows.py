"""Maintenance windows: when a target is drained on a schedule, one-off or recurring
(a cron expression, or weekdays and a time of day, in a time zone). Pure: the time is an
argument (Unix seconds); croniter (a well-kept cron library) reads the expressions.

During a window the target is in maintenance exactly as if an operator had set it: not
answered, not alerted on, its checks go on; after it, the target is back to its checks.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from dataclasses import dataclass

from croniter import croniter

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """One-off (``start``..``end``, Unix seconds) or recurring (``cron`` fires, then
    ``duration`` seconds, in ``timezone``)."""

    text: str  # as the config wrote it, for events and the dashboard
    start: float | None = None
    end: float | None = None
    cron: str | None = None
    duration: float = 0.0
    timezone: str = "UTC"

    def active(self, now: float) -> bool:
        return _state(self, now)[0]

    def next_change(self, now: float) -> float:
        """When this window next starts or ends after ``now`` (inf: never)."""
        return _state(self, now)[1]


def _state(window: MaintenanceWindow, now: float) -> tuple[bool, float]:
    if window.cron is None:
        start, end = window.start or 0.0, window.end or 0.0
        if now < start:
            return False, start
        return (True, end) if now < end else (False, _NEVER)
    zone = zoneinfo.ZoneInfo(window.timezone)
    moment = datetime.datetime.fromtimestamp(now, zone)
    # The last time the expression fired at or before now (croniter's get_prev is strict).
    last = croniter(window.cron, moment + datetime.timedelta(microseconds=1)).get_prev(datetime.datetime)
    ends = last.timestamp() + window.duration
    if now < ends:
        return True, ends
    return False, croniter(window.cron, moment).get_next(datetime.datetime).timestamp()


def parse_window(raw: object) -> MaintenanceWindow:
    """A window as the config writes it, or ValueError saying what was expected:
    ``{ start = "2026-12-24T20:00:00+01:00", end = "2026-12-25T06:00:00+01:00" }``,
    ``{ cron = "0 2 * * *", duration = 3600, timezone = "Europe/Berlin" }`` or
    ``{ weekdays = ["sat", "sun"], from = "02:00", to = "04:00", timezone = "UTC" }``."""
    if not isinstance(raw, dict):
        raise ValueError(f"expected a table such as {_EXAMPLE}")
    keys = set(raw)
    timezone = raw.get("timezone", "UTC")
    if not isinstance(timezone, str) or not _zone_exists(timezone):
        raise ValueError(f'timezone {timezone!r} is not a time zone; expected e.g. "Europe/Berlin" or "UTC"')
    text = ", ".join(f"{k} = {raw[k]!r}" if not isinstance(raw[k], list) else f"{k} = {raw[k]}" for k in raw)
    if keys <= {"start", "end", "timezone"} and {"start", "end"} <= keys:
        zone = zoneinfo.ZoneInfo(timezone)
        start, end = _instant(raw["start"], "start", zone), _instant(raw["end"], "end", zone)
        if end <= start:
            raise ValueError("end must come after start; expected an end later than the start")
        return MaintenanceWindow(text=text, start=start, end=end)
    if keys <= {"cron", "duration", "timezone"} and {"cron", "duration"} <= keys:
        cron = raw["cron"]
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ValueError(
                f'cron {cron!r} is not a cron expression; expected five fields, e.g. "0 2 * * *"'
            )
        return MaintenanceWindow(text=text, cron=cron, duration=_duration(raw["duration"]), timezone=timezone)
    if keys <= {"weekdays", "from", "to", "timezone"} and {"weekdays", "from", "to"} <= keys:
        days = raw["weekdays"]
        if not isinstance(days, list) or not days or any(str(d).lower()[:3] not in _DAYS for d in days):
            raise ValueError(
                f'weekdays must be a list of days such as ["sat", "sun"], got {days!r}; '
                "expected mon, tue, wed, thu, fri, sat or sun"
            )
        begin, finish = _clock(raw["from"], "from"), _clock(raw["to"], "to")
        length = (finish - begin) % (24 * 60) or 24 * 60  # "22:00" to "02:00" spans midnight
        numbers = ",".join(str((_DAYS.index(str(d).lower()[:3]) + 1) % 7) for d in days)
        cron = f"{begin % 60} {begin // 60} * * {numbers}"
        return MaintenanceWindow(text=text, cron=cron, duration=length * 60.0, timezone=timezone)
    raise ValueError(f"expected one of {_EXAMPLE}")


_EXAMPLE = (
    '{ start = "2026-12-24T20:00:00Z", end = "2026-12-25T06:00:00Z" }, '
    '{ cron = "0 2 * * *", duration = 3600, timezone = "Europe/Berlin" } or '
    '{ weekdays = ["sat", "sun"], from = "02:00", to = "04:00", timezone = "UTC" }'
)


def _zone_exists(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _instant(value: object, key: str, zone: datetime.tzinfo) -> float:
    """A TOML datetime or an ISO 8601 string, with its offset (one without is in ``zone``)."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{key} {value!r} is not a date and time; expected e.g. 2026-12-24T20:00:00Z"
            ) from None
    if not isinstance(value, datetime.datetime):
        raise ValueError(f"{key} must be a date and time, e.g. 2026-12-24T20:00:00Z")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.timestamp()


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 60 <= value <= 7 * 86400:
        raise ValueError(
            f"duration must be seconds from 60 to 604800 (a week), got {value!r}; "
            "expected e.g. 3600 (an hour)"
        )
    return float(value)


def _clock(value: object, key: str) -> int:
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'{key} {value!r} is not a time of day; expected "HH:MM", e.g. "02:00"')
    return int(match.group(1)) * 60 + int(match.group(2))
