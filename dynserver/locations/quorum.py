"""The vote: how the states that several locations see of one target become its health,
and when a location's own connectivity is gone so that it must not vote. Pure: no
clock, no I/O; times are arguments (event-loop seconds).

Each location runs its own state machine per target (health/state.py, the monitor's
consecutive_up/down and retries, no failback delay). A location counts for a target
while its last result is fresh (at most ``stale_after`` intervals + the timeout old) and
it is not excluded. Of the n counted locations, ``need = min(quorum, n)`` must agree:
down when at least ``need`` see the target down; else up when at least ``need`` see it
up; else the target keeps its state. Down wins a tie, so quorum 1 means "any location
that sees it down"; and a target never flaps between two disagreeing locations.

A location that joined (the server started, or an agent was added) and has not yet
reported counts as fresh but undecided for one fresh window: after a restart, the first
location to report does not decide alone before the others had a chance to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dynserver.health.state import Health, Result, TargetState


@dataclass(frozen=True, slots=True)
class Tally:
    """One target's vote as it stands: counts of counted locations seeing it up and down."""

    up: int = 0
    down: int = 0
    fresh: int = 0  # locations counted: fresh and not excluded
    total: int = 0  # locations known (the server, when it checks, and every agent)
    need: int = 0  # min(quorum, fresh)

    @property
    def verdict(self) -> Health | None:
        """DOWN, UP, or None: no agreement (or no counted location), keep the state."""
        if self.need == 0:
            return None
        if self.down >= self.need:
            return Health.DOWN
        if self.up >= self.need:
            return Health.UP
        return None

    def describe(self) -> str:
        """'down at 2 of 3 locations (need 2)' as events and the dashboard say it."""
        verdict = self.verdict
        if verdict is None:
            return f"no agreement: {self.up} up, {self.down} down of {self.fresh} counted (need {self.need})"
        seen = self.down if verdict is Health.DOWN else self.up
        return f"{verdict.value} at {seen} of {self.fresh} locations (need {self.need})"


@dataclass(frozen=True, slots=True)
class LocationView:
    """One location's view of one target, for the dashboard grid and the API."""

    name: str
    health: Health
    last_result: Result | None
    fresh: bool
    excluded: bool


@dataclass(frozen=True, slots=True)
class LocationStatus:
    """One location as the agents page, the API and /metrics show it."""

    name: str
    kind: str  # "local" (this server) or "agent"
    connected: bool
    version: str | None = None
    client: str | None = None  # the agent's address as the server sees it
    last_contact: float | None = None  # Unix time of the last stream or result
    results: int = 0
    fresh_targets: int = 0
    targets: int = 0
    excluded: str | None = None  # why it does not vote, if it does not
    canary_ok: bool | None = None  # None: no canary configured (or no result yet)


def is_fresh(state: TargetState | None, now: float, fresh_for: float) -> bool:
    """A location's view counts while its last result is at most ``fresh_for`` old."""
    if state is None or state.last_result is None:
        return False
    return now - state.last_result.at <= fresh_for


def joining(state: TargetState | None, joined: float | None, now: float, fresh_for: float) -> bool:
    """No result yet, within a fresh window of joining: fresh, but undecided."""
    return (state is None or state.last_result is None) and joined is not None and now - joined <= fresh_for


def tally(
    views: Mapping[str, TargetState],
    locations: Iterable[str],
    excluded: Iterable[str],
    *,
    quorum: int,
    now: float,
    fresh_for: float,
    joined: Mapping[str, float] | None = None,
) -> Tally:
    """Count the locations' views of one target (``locations``: every known location)."""
    out = set(excluded)
    joined = joined or {}
    up = down = fresh = total = 0
    for name in locations:
        total += 1
        state = views.get(name)
        if name in out:
            continue
        if not is_fresh(state, now, fresh_for):
            fresh += joining(state, joined.get(name), now, fresh_for)
            continue
        assert state is not None
        fresh += 1
        if state.observed is Health.UP:
            up += 1
        elif state.observed is Health.DOWN:
            down += 1
    return Tally(up=up, down=down, fresh=fresh, total=total, need=min(quorum, fresh))


def last_failed(
    views: Mapping[str, TargetState],
    locations: Iterable[str],
    excluded: Iterable[str],
    now: float,
    fresh_for: float,
) -> int:
    """Counted locations whose latest result failed: a pending target's wait restarts when
    ``need`` of them say so (one failure restarts the wait, seed 000, voted)."""
    out = set(excluded)
    count = 0
    for name in locations:
        state = views.get(name)
        if name in out or not is_fresh(state, now, fresh_for):
            continue
        assert state is not None and state.last_result is not None
        count += not state.last_result.ok
    return count


@dataclass(slots=True)
class _Seen:
    """A location's latest result per check, and how many of them failed."""

    ok: dict[object, bool] = field(default_factory=dict)
    failing: int = 0
    at: float = 0.0


class Connectivity:
    """Notices a location that has lost its own connectivity, so it is excluded from the
    vote instead of voting every target down (Gatus' connectivity checker, automatic).

    A location is cut off when either
    - its canary (an address every location connects to, [locations] canary) failed its
      last check, or
    - it has run at least MIN_CHECKS distinct checks, the latest result of every one of
      them failed, and some other location that reported within ``window`` seconds saw
      at least one check pass: the failures are the location's, not the backends'.
    When every location sees everything fail, nobody is excluded: that is an outage.
    """

    MIN_CHECKS = 2

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: dict[str, _Seen] = {}
        self._canary: dict[str, tuple[bool, str]] = {}
        self._canary_failed: set[str] = set()
        self._all_failing: set[str] = set()  # at least MIN_CHECKS checks, every latest one failed

    @property
    def suspects(self) -> bool:
        """Whether excluded() can name anyone: a canary failed, or a location's latest
        result of every check failed (else it is empty, whatever the time)."""
        return bool(self._canary_failed or self._all_failing)

    def _recheck(self, location: str, seen: _Seen) -> None:
        if seen.failing >= self.MIN_CHECKS and seen.failing == len(seen.ok):
            self._all_failing.add(location)
        else:
            self._all_failing.discard(location)

    def result(self, location: str, check: object, ok: bool, now: float) -> None:
        seen = self._seen.get(location)
        if seen is None:
            seen = self._seen[location] = _Seen()
        seen.at = now
        outcomes = seen.ok
        before = outcomes.get(check)
        if before is ok:
            return  # as the check's last result: nothing to count again
        if before is not None and not before:
            seen.failing -= 1
        outcomes[check] = ok
        seen.failing += not ok
        self._recheck(location, seen)

    def canary(self, location: str, ok: bool, reason: str) -> None:
        self._canary[location] = (ok, reason)
        if ok:
            self._canary_failed.discard(location)
        else:
            self._canary_failed.add(location)

    def canary_ok(self, location: str) -> bool | None:
        found = self._canary.get(location)
        return None if found is None else found[0]

    def forget(self, location: str) -> None:
        """An agent removed: what it saw no longer counts (and no longer excuses others)."""
        self._seen.pop(location, None)
        self._canary.pop(location, None)
        self._canary_failed.discard(location)
        self._all_failing.discard(location)

    def forget_check(self, check: object) -> None:
        """A check that no longer runs (an address changed): drop its latest results."""
        for location, seen in self._seen.items():
            ok = seen.ok.pop(check, None)
            if ok is False:
                seen.failing -= 1
            self._recheck(location, seen)

    def excluded(self, now: float) -> dict[str, str]:
        """Every cut-off location and why, as the dashboard and events say it."""
        out: dict[str, str] = {}
        for location, (ok, reason) in self._canary.items():
            if not ok:
                out[location] = f"canary failed: {reason}"
        for location, seen in self._seen.items():
            if location in out or len(seen.ok) < self.MIN_CHECKS or seen.failing < len(seen.ok):
                continue
            if any(
                other != location
                and other not in out
                and now - theirs.at <= self.window
                and theirs.failing < len(theirs.ok)
                for other, theirs in self._seen.items()
            ):
                out[location] = f"all {len(seen.ok)} of its checks failed while other locations saw them pass"
        return out
