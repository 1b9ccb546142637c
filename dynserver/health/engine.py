"""The health engine: target states, shared checks, and each record's current answer.

No I/O and no clock: results, ticks and operator actions come in with their time, and
what comes out is which targets changed and which records now answer differently. The
application turns that into a new snapshot, events and notifications.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from msgspec import structs

from dynserver.dns import wire
from dynserver.dns.zone import RRset, rrset_from_texts
from dynserver.health import state as machine
from dynserver.health.combine import combine
from dynserver.health.policy import Candidate, Decision, Order, decide, rotation
from dynserver.health.probes import Check
from dynserver.health.state import Event, Health, Result, TargetState, Thresholds, Transition
from dynserver.health.windows import MaintenanceWindow
from dynserver.locations.quorum import LocationView, Tally, is_fresh, joining, last_failed, tally
from dynserver.model import (
    DynamicRecord,
    LocationsConfig,
    Monitor,
    MonitorType,
    Target,
    monitors_of,
    required,
)
from dynserver.types import CheckKey, Name, RecordKey, TargetKey

_RTYPES = {"A": wire.TYPE_A, "AAAA": wire.TYPE_AAAA, "CNAME": wire.TYPE_CNAME}


@dataclass(frozen=True, slots=True)
class Change:
    """A target whose health changed, with the transition that did it."""

    record: DynamicRecord
    target: Target
    transition: Transition


# Combined checks: one monitor of a target whose health several monitors decide.
PartKey = tuple[TargetKey, str]


@dataclass(frozen=True, slots=True)
class Combination:
    """A target checked by several monitors: which, and how many must be up."""

    monitors: tuple[str, ...]
    need: int


@dataclass(frozen=True, slots=True)
class Forcing:
    """An admin's forced state of a target (gdnsd's admin_state): who, when, until when."""

    state: Health  # UP or DOWN
    actor: str
    at: float  # Unix time it was set
    until: float | None = None  # Unix time it ends by itself (None: until cleared)
    reason: str = ""

    def text(self) -> str:
        """'forced down by web:admin until 2026-12-06 18:00:00Z: replacing a disk'."""
        until = "until cleared" if self.until is None else f"until {_utc(self.until)}"
        return f"forced {self.state.value} by {self.actor} {until}" + (
            f": {self.reason}" if self.reason else ""
        )


def _utc(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def record_key(record: DynamicRecord) -> RecordKey:
    return record.name, record.type


def target_key(record: DynamicRecord, target: Target) -> TargetKey:
    return record.name, record.type, target.name


def thresholds(monitor: Monitor) -> Thresholds:
    return Thresholds(
        consecutive_up=monitor.consecutive_up,
        consecutive_down=monitor.consecutive_down,
        failback_delay=monitor.failback_delay,
        interval=monitor.interval,
        timeout=monitor.timeout,
    )


def checked_address(target: Target, value: str | None) -> str | None:
    """Where a target is checked: its check address when set (an update never moves it),
    else its current value; None: nothing to check until an update gives one."""
    return target.check_address or value


def build_check(monitor: Monitor, target: Target, address: str) -> Check:
    """The monitor's options with the target's overrides (the target's value wins), run
    against ``address``: where the target is checked (``checked_address``)."""
    headers = [(k, v) for k, v in monitor.header if k.lower() != "host" or target.host is None]
    if target.host is not None:
        headers.append(("Host", target.host))
    return Check(
        monitor=monitor,
        address=address,
        port=target.port or monitor.port,
        path=target.path or monitor.path,
        headers=tuple(headers),
    )


class Engine:
    # A result that leaves the count of its target's vote as it was is only counted, not
    # voted again, and tick() looks at the votes only when one may change by itself (the
    # outcome is the same: tests/health/test_engine_vote.py compares with both off).
    quick_votes = True

    def __init__(
        self,
        records: Sequence[DynamicRecord],
        monitors: Mapping[str, Monitor],
        *,
        restored: Mapping[TargetKey, TargetState] | None = None,
        values: Mapping[TargetKey, str | None] | None = None,
        locations: LocationsConfig | None = None,
        location_names: Sequence[str] = (),
        parts: Mapping[PartKey, TargetState] | None = None,
        forcing: Mapping[TargetKey, Forcing] | None = None,
    ) -> None:
        self.records: dict[RecordKey, DynamicRecord] = {record_key(r): r for r in records}
        self.monitors = dict(monitors)
        self.states: dict[TargetKey, TargetState] = {}
        self.values: dict[TargetKey, str | None] = {}
        restored = restored or {}
        values = values or {}
        parts = parts or {}
        # Combined checks: each monitor of such a target has its own state (``parts``);
        # the target's state in self.states is their combination (health/combine.py).
        self.combined: dict[TargetKey, Combination] = {}
        self.parts: dict[PartKey, TargetState] = {}
        single: dict[TargetKey, str] = {}  # the one monitor of every other checked target
        for record in records:
            for target in record.targets:
                key = target_key(record, target)
                self.values[key] = values.get(key, target.value)
                state = restored.get(key, TargetState())
                names = monitors_of(record, target)
                if not names:
                    state = structs.replace(state, observed=Health.UP)  # unchecked: always up
                elif len(names) == 1:
                    single[key] = names[0]
                else:
                    self.combined[key] = Combination(names, required(record, target))
                    # A state restored without its parts: each monitor resumes from it.
                    seed = TargetState(
                        observed=state.observed
                        if state.observed in (Health.UP, Health.DOWN)
                        else Health.UNKNOWN,
                        since=state.since,
                        watched_since=state.watched_since,
                    )
                    for name in names:
                        self.parts[(key, name)] = parts.get((key, name), seed)
                self.states[key] = structs.replace(state, maintenance=target.maintenance)
        # Each checked target's thresholds and how long its results stay fresh, built once
        # for apply() and tick(): both run for thousands of targets (tick: all, every second).
        limits_by_name = {name: thresholds(monitor) for name, monitor in self.monitors.items()}
        # Push monitors: nothing is probed; heartbeats come in (heartbeat()), and a target
        # without one for interval * consecutive_down is down (tick). A status=down
        # heartbeat takes it down at once: its machine has consecutive_down = 1.
        self.pushed = {name for name, m in self.monitors.items() if m.type is MonitorType.PUSH}

        def beat(name: str) -> tuple[Thresholds, float]:
            monitor = self.monitors[name]
            return replace(
                limits_by_name[name], consecutive_down=1
            ), monitor.interval * monitor.consecutive_down

        self._beats = {key: beat(name) for key, name in single.items() if name in self.pushed}
        self._part_beats = {part: beat(part[1]) for part in self.parts if part[1] in self.pushed}
        self._beat_start: dict[TargetKey | PartKey, float] = {}  # when silence started counting
        single = {key: name for key, name in single.items() if name not in self.pushed}
        self._watched: dict[TargetKey, tuple[Thresholds, float]] = {
            key: (limits_by_name[name], machine.stale_after(limits_by_name[name]))
            for key, name in single.items()
        }
        self._watched_due = 0.0  # tick(): no watched target needs a look before (loop time)
        self._part_watched: dict[PartKey, tuple[Thresholds, float]] = {
            part: (limits_by_name[part[1]], machine.stale_after(limits_by_name[part[1]]))
            for part in self.parts
            if part not in self._part_beats
        }
        # [locations]: each location's own state per checked target (its machine has no
        # failback delay: that applies to the voted state, self.states), the locations
        # that vote, those excluded (and why), and per target the time its count may
        # change without a new result (a location's last result going stale).
        self.voting = locations
        self.location_names: tuple[str, ...] = tuple(location_names)
        self.excluded: dict[str, str] = {}
        self.joined: dict[str, float] = {}  # when each location joined (see quorum.joining)
        self.views: dict[TargetKey, dict[str, TargetState]] = {}
        self._voters: dict[TargetKey, tuple[Thresholds, float, int]] = {}
        self._recount_at: dict[TargetKey, float] = {}
        self._count_event: dict[TargetKey, Event | None] = {}  # what the count said at the last vote
        self._vote_due = 0.0  # tick(): no target's vote may change by itself before (loop time)
        # The same per monitor of a combined target: each monitor is voted on its own.
        self.part_views: dict[PartKey, dict[str, TargetState]] = {}
        self._part_voters: dict[PartKey, tuple[Thresholds, float, int]] = {}
        self._part_recount_at: dict[PartKey, float] = {}
        if locations is not None:

            def voter(name: str) -> tuple[Thresholds, float, int]:
                monitor = self.monitors[name]
                fresh_for = locations.stale_after * monitor.interval + monitor.timeout
                quorum = monitor.quorum or locations.quorum
                return replace(limits_by_name[name], failback_delay=0.0), fresh_for, quorum

            for key, name in single.items():
                self.views[key] = {}
                self._voters[key] = voter(name)
            for part in self._part_watched:  # heartbeats come here, not to locations: no vote
                self.part_views[part] = {}
                self._part_voters[part] = voter(part[1])
        # Maintenance windows (record's and target's), and the targets a window drained
        # (an operator's own maintenance is theirs: a window's end does not lift it).
        self.windows: dict[TargetKey, tuple[MaintenanceWindow, ...]] = {
            target_key(record, target): record.maintenance_windows + target.maintenance_windows
            for record in records
            for target in record.targets
            if record.maintenance_windows or target.maintenance_windows
        }
        self.drained: set[TargetKey] = set()
        # Forced states (an admin's up or down over the checks), and who set them until when.
        self.forcing: dict[TargetKey, Forcing] = {}
        for key, forced in (forcing or {}).items():
            if key in self.states:
                self.forcing[key] = forced
                self.states[key] = structs.replace(self.states[key], forced=forced.state)
        self._window_change = 0.0  # wall time of the next window start or end
        self.decisions: dict[RecordKey, Decision] = {
            key: self._decide(record) for key, record in self.records.items()
        }
        # What each record answers now (values and TTL): a change means a new serial.
        self._served = {key: self._serving(key) for key in self.records}

    # -- checks ---------------------------------------------------------------------

    def checks(self) -> dict[CheckKey, tuple[Check, Monitor, list[TargetKey]]]:
        """Every distinct check, its monitor, and the targets it reports on."""
        found: dict[CheckKey, tuple[Check, Monitor, list[TargetKey]]] = {}
        for record in self.records.values():
            for target in record.targets:
                names = monitors_of(record, target)
                if not names:
                    continue
                address = checked_address(target, self.values[target_key(record, target)])
                if address is None:
                    continue
                for name in names:  # combined checks: one check per monitor
                    if name in self.pushed:
                        continue  # heartbeats come in: nothing to probe
                    key = CheckKey(name, address, target.port, target.host, target.path)
                    if key not in found:
                        monitor = self.monitors[name]
                        found[key] = (build_check(monitor, target, address), monitor, [])
                    found[key][2].append(target_key(record, target))
        return found

    def apply(
        self,
        targets: Iterable[TargetKey],
        result: Result,
        location: str | None = None,
        monitor: str | None = None,
    ) -> list[Change]:
        """Feed one check result to every target it covers. With [locations], ``location``
        names where the check ran: its own view of each target changes, then the vote.
        ``monitor``: the check's monitor, which a target checked by several needs."""
        if self.voting is not None:
            return self._apply_vote(targets, result, location or self.voting.name, monitor)
        changes = []
        combined = self.combined
        for key in targets:
            if key in combined:
                change = self._apply_part(key, monitor, result)
                if change is not None:
                    changes.append(change)
                continue
            state = self.states.get(key)
            if state is None:
                continue  # the target's address changed since this check started
            watched = self._watched.get(key)
            if watched is None:
                new, transition = machine.step(state, result, Thresholds())
            else:
                new, transition = machine.step(state, result, watched[0])
                # tick() has nothing to do for this target before its result goes stale
                # or its failback wait ends: the earliest of either bounds when it looks again.
                due = result.at + watched[1]
                if new.pending_until is not None and new.pending_until < due:
                    due = new.pending_until
                if due < self._watched_due:
                    self._watched_due = due
            self.states[key] = new
            if transition is not None:
                record = self.records[(key[0], key[1])]
                changes.append(Change(record, self._target(record, key), transition))
        return changes

    def tick(self, now: float) -> list[Change]:
        """Let time pass: failback delays end, silent checkers go stale."""
        if self.voting is not None:
            return self._tick_vote(now)
        changes = self._tick_watched(now) if now >= self._watched_due else []
        if self.parts:
            changes += self._tick_parts(now)
        if self._beats or self._part_beats:
            changes += self._tick_beats(now)
        return changes

    def _tick_watched(self, now: float) -> list[Change]:
        """The checked targets (one monitor, no vote) whose result went stale or whose
        failback wait ended by ``now``; and when the next may (``_watched_due``).

        Looking at every target every second cost ~13 µs per check at 5,000 targets (py-spy,
        10 looks per check at an interval of 10 s); nearly every second nothing is due, and
        apply() lowers the bound for each result, so the loop runs when something may be."""
        changes = []
        states = self.states
        due = float("inf")
        for key, (limits, fresh_for) in self._watched.items():
            current = states[key]
            last = current.last_result
            if current.observed is Health.UNKNOWN or last is None:
                continue  # nothing to go stale, no wait (a first result lowers the bound)
            if current.pending_until is None and now - last.at <= fresh_for:
                # Nearly every target: a fresh result and no failback wait to end.
                stale_at = max(last.at, current.watched_since) + fresh_for
                if stale_at < due:
                    due = stale_at
                continue
            new, transition = machine.tick(current, now, limits)
            if transition is not None:
                states[key] = new
                record = self.records[(key[0], key[1])]
                changes.append(Change(record, self._target(record, key), transition))
            if new.observed is not Health.UNKNOWN and new.last_result is not None:
                again = max(new.last_result.at, new.watched_since) + fresh_for
                if new.pending_until is not None and new.pending_until < again:
                    again = new.pending_until
                if again < due:
                    due = again
        self._watched_due = due
        return changes

    # -- push monitors (heartbeats) -----------------------------------------------------

    def push_monitors(self, key: TargetKey) -> tuple[str, ...]:
        """The push monitors of a target (those that take heartbeats)."""
        if key not in self._beats and key not in self.combined:
            return ()
        return tuple(name for name in monitors_of(*self._find(key)) if name in self.pushed)

    def heartbeat(self, key: TargetKey, monitor: str, result: Result) -> Change | None:
        """A heartbeat of one push monitor of a target (its push URL, or an update that
        counts as one): ok, or a status=down that takes the target down at once."""
        if key in self.combined:
            part = (key, monitor)
            beat = self._part_beats.get(part)
            if beat is None:
                return None
            self.parts[part], _ = machine.step(self.parts[part], result, beat[0])
            return self._combine(key, result.at, self._named(part, result))
        limits = self._beats.get(key)
        if limits is None or monitor not in monitors_of(*self._find(key)):
            return None
        new, transition = machine.step(self.states[key], result, limits[0])
        self.states[key] = new
        return None if transition is None else Change(*self._find(key), transition)

    def _tick_beats(self, now: float) -> list[Change]:
        """Targets whose heartbeats stopped: down, with how long they have been silent (as
        a failed result, shown like a check's); failback delays that ended: up."""
        changes = []
        for key, (limits, window) in self._beats.items():
            new, transition = self._beat_tick(key, self.states[key], now, limits, window)
            if new is not None:
                self.states[key] = new
            if transition is not None:
                changes.append(Change(*self._find(key), transition))
        touched = set()
        for part, (limits, window) in self._part_beats.items():
            new, _ = self._beat_tick(part, self.parts[part], now, limits, window)
            if new is not None:
                self.parts[part] = new
                touched.add(part[0])
        return changes + [c for key in touched if (c := self._combine(key, now)) is not None]

    def _beat_tick(
        self, slot: TargetKey | PartKey, state: TargetState, now: float, limits: Thresholds, window: float
    ) -> tuple[TargetState | None, Transition | None]:
        """One push monitor's state at ``now`` (None: unchanged)."""
        if state.observed is Health.PENDING:
            if state.pending_until is not None and now >= state.pending_until:
                return machine.tick(state, now, limits)
        elif state.observed is Health.DOWN:
            return None, None
        last = state.last_result
        since = max(last.at if last is not None else 0.0, state.watched_since)
        if not since:  # never heard of: silence counts from the first tick
            since = self._beat_start.setdefault(slot, now)
        if now - since <= window:
            return None, None
        what = "no heartbeat yet after" if last is None else "no heartbeat for"
        reason = f"{what} {now - since:.0f} s (expected within {window:g} s)"
        return machine.step(state, Result(ok=False, reason=reason, at=now), limits)

    # -- combined checks (several monitors per target) ------------------------------------

    def _apply_part(self, key: TargetKey, monitor: str | None, result: Result) -> Change | None:
        """One monitor's result for a target checked by several: its own state machine,
        then the combination."""
        part = (key, monitor or "")
        state = self.parts.get(part)
        if state is None or key not in self.states:
            return None  # not one of this target's monitors (any more)
        self.parts[part], _ = machine.step(state, result, self._part_watched[part][0])
        return self._combine(key, result.at, self._named(part, result))

    def _tick_parts(self, now: float) -> list[Change]:
        touched: set[TargetKey] = set()
        for part, (limits, fresh_for) in self._part_watched.items():
            current = self.parts[part]
            last = current.last_result
            if current.observed is Health.UNKNOWN or last is None:
                continue
            if current.pending_until is None and now - last.at <= fresh_for:
                continue
            new, transition = machine.tick(current, now, limits)
            if transition is not None:
                self.parts[part] = new
                touched.add(part[0])
        return [c for key in touched if (c := self._combine(key, now)) is not None]

    @staticmethod
    def _named(part: PartKey, result: Result) -> Result:
        """A monitor's result as its target shows it: the reason names the monitor."""
        return structs.replace(result, reason=f"{part[1]}: {result.reason}")

    def _combine(self, key: TargetKey, now: float, result: Result | None = None) -> Change | None:
        """The target's state from its monitors' (health/combine.py); ``result``: the one
        that just came in, kept as the target's last result."""
        combination = self.combined[key]
        parts = [(name, self.parts[(key, name)]) for name in combination.monitors]
        observed, pending_until, reason = combine(parts, combination.need)
        state = self.states[key]
        if result is not None:
            state = _counted(state, result)
        if observed is state.observed and pending_until == state.pending_until:
            self.states[key] = state
            return None
        previous = state.health
        changed = observed is not state.observed
        state = structs.replace(
            state, observed=observed, pending_until=pending_until, since=now if changed else state.since
        )
        self.states[key] = state
        if not changed or state.maintenance or state.forced is not None:
            return None  # drained or forced targets change silently, as in the state machine
        record, target = self._find(key)
        return Change(record, target, Transition(previous, state.health, reason, now))

    def monitor_states(self, key: TargetKey) -> list[tuple[str, TargetState]]:
        """Each monitor's own state of a target checked by several (empty otherwise)."""
        combination = self.combined.get(key)
        if combination is None:
            return []
        return [(name, self.parts[(key, name)]) for name in combination.monitors]

    # -- the vote ([locations]) ---------------------------------------------------------

    def set_locations(self, names: Sequence[str], now: float) -> list[Change]:
        """The locations that vote (the server's, when it checks, and every agent's). A
        removed location's views go: what it saw no longer counts."""
        self.location_names = tuple(names)
        for name in names:
            self.joined.setdefault(name, now)
        for name in [n for n in self.joined if n not in names]:
            del self.joined[name]
        for views in [*self.views.values(), *self.part_views.values()]:
            for name in [n for n in views if n not in names]:
                del views[name]
        return self.recount(now)

    def set_excluded(self, excluded: Mapping[str, str], now: float) -> list[Change]:
        """Locations that lost their own connectivity (locations.quorum.Connectivity)."""
        if dict(excluded) == self.excluded:
            return []
        self.excluded = dict(excluded)
        return self.recount(now)

    def recount(self, now: float) -> list[Change]:
        """Count every target's vote again (the locations or their standing changed)."""
        changes = []
        for key in self._voters:
            change = self._revote(key, now)
            if change is not None:
                changes.append(change)
        touched = {part[0] for part in self._part_voters if self._revote_part(part, now)}
        return changes + [c for key in touched if (c := self._combine(key, now)) is not None]

    def tally(self, key: TargetKey, now: float) -> Tally:
        voter = self._voters.get(key)
        if voter is None:
            return Tally()
        _, fresh_for, quorum = voter
        return tally(
            self.views[key],
            self.location_names,
            self.excluded,
            quorum=quorum,
            now=now,
            fresh_for=fresh_for,
            joined=self.joined,
        )

    def location_views(self, key: TargetKey, now: float) -> list[LocationView]:
        """Each location's view of a target, in location order (the dashboard's grid)."""
        voter = self._voters.get(key)
        if voter is None:
            return []
        views = self.views[key]
        return [
            LocationView(
                name=name,
                health=views[name].observed if name in views else Health.UNKNOWN,
                last_result=views[name].last_result if name in views else None,
                fresh=is_fresh(views.get(name), now, voter[1]),
                excluded=name in self.excluded,
            )
            for name in self.location_names
        ]

    def _apply_vote(
        self, targets: Iterable[TargetKey], result: Result, location: str, monitor: str | None
    ) -> list[Change]:
        changes = []
        for key in targets:
            if key in self.combined:
                part = (key, monitor or "")
                part_views = self.part_views.get(part)
                if part_views is None or key not in self.states:
                    continue
                seen = part_views.get(location) or TargetState(watched_since=result.at)
                part_views[location], _ = machine.step(seen, result, self._part_voters[part][0])
                self._revote_part(part, result.at, result)
                change = self._combine(key, result.at, self._named(part, result))
                if change is not None:
                    changes.append(change)
                continue
            views = self.views.get(key)
            state = self.states.get(key)
            if views is None or state is None:
                continue  # the target's address changed since this check started, or unchecked
            view = views.get(location)
            if view is None:
                view = TargetState(watched_since=result.at)
            limits, fresh_for, _ = self._voters[key]
            views[location], _ = machine.step(view, result, limits)
            last, now = view.last_result, result.at
            if (
                self.quick_votes
                and last is not None
                and views[location].observed is view.observed
                and now - last.at <= fresh_for  # this view counted at the last vote and still does
                and now < self._recount_at.get(key, 0.0)  # no other view expired, no joining ended
                and state.observed is not Health.PENDING  # (its wait can end, a failure restart it)
                and (state.observed, self._count_event[key]) not in machine.TRANSITIONS
            ):
                # The common case: the count is what it was at the last vote, so a vote
                # would decide the same event, and that event does not move the state:
                # only the result is counted, and the next recount moves if this view set it.
                self.states[key] = _counted(state, result)
                if self._recount_at[key] == last.at + fresh_for:
                    self._recount_at[key] = self._next_recount(views, now, fresh_for)
                continue
            change = self._revote(key, result.at, result)
            if change is not None:
                changes.append(change)
        return changes

    def _tick_vote(self, now: float) -> list[Change]:
        changes = []
        if now >= self._vote_due or not self.quick_votes:
            changes = self._tick_votes(now)
        if self._beats or self._part_beats:
            changes += self._tick_beats(now)
        if self._part_voters:
            parts = self.parts
            touched = {
                part[0]
                for part in self._part_voters
                if (parts[part].pending_until is not None or now >= self._part_recount_at.get(part, 0.0))
                and self._revote_part(part, now)
            }
            changes += [c for key in touched if (c := self._combine(key, now)) is not None]
        return changes

    def _tick_votes(self, now: float) -> list[Change]:
        """The targets whose count changed by itself by ``now`` (a view went stale, a
        joining window ended) or whose failback wait may end, voted again; and when that
        may next be (``_vote_due``): with one result every interval and a view fresh for
        stale_after intervals, this loop over every target runs every ~20 s, not every
        second (2 µs a result of an agent at 20,000 targets, as engine.tick for no vote)."""
        changes = []
        states = self.states
        recount_at = self._recount_at
        due = float("inf")
        for key in self._voters:
            state = states[key]
            if state.pending_until is None and now < (at := recount_at.get(key, 0.0)):
                if at < due:
                    due = at
                continue  # nearly every target: no location's last result went stale yet
            change = self._revote(key, now)
            if change is not None:
                changes.append(change)
            if states[key].pending_until is not None:
                due = 0.0  # a failback wait: looked at every tick, as before
            elif recount_at[key] < due:
                due = recount_at[key]
        self._vote_due = due
        return changes

    def _next_recount(self, views: Mapping[str, TargetState], now: float, fresh_for: float) -> float:
        """When a count can next change by itself: the oldest counted result goes stale,
        or a location that joined without reporting stops counting."""
        excluded = self.excluded
        oldest = float("inf")  # a loop, not min() of lists: this runs for most results
        for name, view in views.items():
            last = view.last_result
            if last is not None and last.at < oldest and now - last.at <= fresh_for and name not in excluded:
                oldest = last.at
        for name, at in self.joined.items():
            if at < oldest and name not in excluded and joining(views.get(name), at, now, fresh_for):
                oldest = at
        return oldest + fresh_for

    def _revote(self, key: TargetKey, now: float, result: Result | None = None) -> Change | None:
        """The target's voted state after its vote is counted again at ``now``."""
        new, transition, recount_at, self._count_event[key] = self._vote(
            self.states[key], self.views[key], self._voters[key], self._watched[key][0], now, result
        )
        self._recount_at[key] = recount_at
        self.states[key] = new
        if new.pending_until is not None:
            self._vote_due = 0.0
        elif recount_at < self._vote_due:
            self._vote_due = recount_at
        if transition is None:
            return None
        record = self.records[(key[0], key[1])]
        return Change(record, self._target(record, key), transition)

    def _revote_part(self, part: PartKey, now: float, result: Result | None = None) -> bool:
        """One monitor of a combined target voted again; True if its state changed."""
        new, transition, self._part_recount_at[part], _ = self._vote(
            self.parts[part],
            self.part_views[part],
            self._part_voters[part],
            self._part_watched[part][0],
            now,
            result,
        )
        self.parts[part] = new
        return transition is not None

    def _vote(
        self,
        state: TargetState,
        views: dict[str, TargetState],
        voter: tuple[Thresholds, float, int],
        limits: Thresholds,
        now: float,
        result: Result | None,
    ) -> tuple[TargetState, Transition | None, float, Event | None]:
        """A voted state counted again at ``now``: the new state, its transition, when the
        count may next change by itself, and the event of the count alone (what a state
        that is not pending gets)."""
        _, fresh_for, quorum = voter
        count = tally(
            views,
            self.location_names,
            self.excluded,
            quorum=quorum,
            now=now,
            fresh_for=fresh_for,
            joined=self.joined,
        )
        recount_at = self._next_recount(views, now, fresh_for)
        if result is not None:
            state = _counted(state, result)
        verdict = count.verdict
        counted: Event | None = None
        if count.fresh == 0:
            counted = Event.STALE
        elif verdict is Health.DOWN:
            counted = Event.FAILED
        elif verdict is Health.UP:
            counted = Event.PASSED
        event = counted
        if (
            counted not in (Event.STALE, Event.FAILED)
            and state.observed is Health.PENDING
            and last_failed(views, self.location_names, self.excluded, now, fresh_for) >= max(1, count.need)
        ):
            event = Event.FAILED_ONCE
        reason = ""
        if event is not None and (state.observed, event) in machine.TRANSITIONS:
            reason = self._vote_reason(views, count, event, now, fresh_for)
        new, transition = machine.apply_event(state, event, now, reason, limits)
        return new, transition, recount_at, counted

    def _vote_reason(
        self, views: Mapping[str, TargetState], count: Tally, event: Event, now: float, fresh_for: float
    ) -> str:
        """Which locations agreed, and what each saw: events and notifications say it."""
        if event is Event.STALE:
            return f"no fresh result from any of {count.total} locations"
        want_ok = event is Event.PASSED
        seen = []
        for name in self.location_names:
            view = views.get(name)
            if name in self.excluded or not is_fresh(view, now, fresh_for):
                continue
            assert view is not None and view.last_result is not None
            agrees = view.observed is Health.UP if want_ok else view.observed is Health.DOWN
            if event is Event.FAILED_ONCE:
                agrees = not view.last_result.ok
            if agrees:
                seen.append(f"{name}: {view.last_result.reason}")
        verdict = "up" if want_ok else "down"
        agreed = len(seen)
        out_of = f"{agreed} of {count.total} locations"
        if count.fresh < count.total:
            out_of += f", deciding from {count.fresh}"
        return f"{verdict} at {out_of} ({'; '.join(seen)})"

    def tick_windows(self, wall: float, now: float) -> list[Change]:
        """Drain the targets a maintenance window covers at ``wall`` (Unix time), and give
        back those whose window ended; ``now`` is the loop time the transitions carry."""
        if not self.windows or wall < self._window_change:
            return []
        changes = []
        upcoming = float("inf")
        for key, windows in self.windows.items():
            open_ = [w for w in windows if w.active(wall)]
            upcoming = min(upcoming, *(w.next_change(wall) for w in windows))
            state = self.states.get(key)
            if state is None:
                continue
            if open_ and not state.maintenance:
                new, transition = machine.set_maintenance(state, True, now)
                reason = f"maintenance window: {open_[0].text}"
                self.drained.add(key)
            elif not open_ and key in self.drained:
                self.drained.discard(key)
                if not state.maintenance:
                    continue
                new, transition = machine.set_maintenance(state, False, now)
                reason = "maintenance window over"
            else:
                continue
            self.states[key] = new
            if transition is not None:
                record, target = self._find(key)
                changes.append(Change(record, target, structs.replace(transition, reason=reason)))
        self._window_change = upcoming
        return changes

    def next_deadline(self) -> float | None:
        """The earliest failback delay to end, so the caller can wake exactly then."""
        times = [s.pending_until for s in self.states.values() if s.pending_until is not None]
        times += [s.pending_until for s in self.parts.values() if s.pending_until is not None]
        return min(times) if times else None

    def set_value(self, key: TargetKey, value: str) -> bool:
        """A new address for a target (an update). Its health carries over: a target
        that is answered now is answered with the new address at once, and the check of
        the new address (run at once by the caller) confirms or corrects it. A target
        that had no address is unknown until that check passes. A target with a check
        address keeps its check: the update changes only what DNS answers."""
        if self.values[key] == value:
            return False
        self.values[key] = value
        return True

    def target_rrsets(self, record: DynamicRecord) -> list[RRset]:
        """``<target>.<record>`` answers each target's current address, whatever its
        health: anyone can see a backup's last known address (and updates name it)."""
        if record.type == "CNAME":
            return []
        return [
            rrset_from_texts((target.name.encode(), *record.name), _RTYPES[record.type], record.ttl, [value])
            for target in record.targets
            if (value := self.values[target_key(record, target)]) is not None
        ]

    def force(
        self, key: TargetKey, forcing: Forcing | None, now: float, ended: bool = False
    ) -> Change | None:
        """Force a target up or down (None: back to its checks, cleared or ``ended`` by
        itself); a change when what the policy sees changes. Its checks go on meanwhile,
        silently."""
        record, target = self._find(key)
        if forcing is None:
            gone = self.forcing.pop(key, None)
            what = "forced state" if gone is None else f"forced {gone.state.value}"
            reason = f"{what} {'ended' if ended else 'cleared'}: back to its checks"
        else:
            self.forcing[key] = forcing
            reason = forcing.text()
        new, transition = machine.set_forced(
            self.states[key], None if forcing is None else forcing.state, now, reason
        )
        self.states[key] = new
        return Change(record, target, transition) if transition is not None else None

    def expired_forcing(self, wall: float) -> list[TargetKey]:
        """The targets whose forced state has ended by ``wall`` (Unix time)."""
        return [key for key, f in self.forcing.items() if f.until is not None and f.until <= wall]

    def set_maintenance(self, key: TargetKey, on: bool, now: float) -> Change | None:
        record, target = self._find(key)
        self.drained.discard(key)  # the operator's word from now on, until the next window
        new, transition = machine.set_maintenance(self.states[key], on, now)
        self.states[key] = new
        return Change(record, target, transition) if transition is not None else None

    # -- answers --------------------------------------------------------------------

    def recompute(self, keys: Iterable[RecordKey]) -> list[RecordKey]:
        """Decide the given records again; return those whose answer changed."""
        changed = []
        for key in keys:
            self.decisions[key] = self._decide(self.records[key])
            served = self._serving(key)
            if served != self._served[key]:
                self._served[key] = served
                changed.append(key)
        return changed

    def rrset(self, key: RecordKey) -> RRset | None:
        """The record's current RRset (None: no data, the name answers NODATA)."""
        record = self.records[key]
        decision = self.decisions[key]
        if not decision.values:
            return None
        values = decision.values
        if record.type == "CNAME":
            values = tuple(v if v.endswith(".") else v + "." for v in values)
        # Two targets with one value are one record, with both weights.
        weights: dict[str, int] = {}
        for value, weight in zip(values, decision.weights or (1,) * len(values), strict=True):
            weights[value] = weights.get(value, 0) + weight
        rrset = _answer(record.name, _RTYPES[record.type], self.ttl(key), tuple(weights))
        if record.order is Order.ROTATE and len(rrset.rdatas) == len(weights) > 1:
            return replace(rrset, turns=rotation(list(weights.values())))
        return rrset

    def _serving(self, key: RecordKey) -> tuple[tuple[str, ...], tuple[int, ...], int]:
        """What a record answers (values, their weights, TTL): a change means a new serial."""
        decision = self.decisions[key]
        return decision.values, decision.weights, self.ttl(key)

    def ttl(self, key: RecordKey) -> int:
        """The low pending TTL while any target is pending, so failback is seen fast."""
        record = self.records[key]
        if record.pending_ttl is not None and any(
            self.states[target_key(record, t)].health is Health.PENDING for t in record.targets
        ):
            return record.pending_ttl
        return record.ttl

    def _decide(self, record: DynamicRecord) -> Decision:
        candidates = [
            Candidate(
                name=target.name,
                value=self.values[target_key(record, target)],
                priority=target.priority,
                health=self.states[target_key(record, target)].health,
                weight=target.weight,
            )
            for target in record.targets
        ]
        return decide(
            candidates,
            policy=record.policy,
            fallback=record.fallback,
            min_up=record.min_up,
            single=record.type == "CNAME",
        )

    def _find(self, key: TargetKey) -> tuple[DynamicRecord, Target]:
        record = self.records[(key[0], key[1])]
        return record, self._target(record, key)

    @staticmethod
    def _target(record: DynamicRecord, key: TargetKey) -> Target:
        return record.target(key[2])


@functools.lru_cache(maxsize=1 << 15)
def _answer(name: Name, rtype: int, ttl: int, values: tuple[str, ...]) -> RRset:
    """A record's RRset of these values (RRsets are immutable: one object serves every
    snapshot). Parsing the values with dnspython cost ~60 µs per publish; a record
    moves between a few answers (its preferred target, a backup), so most are here."""
    return rrset_from_texts(name, rtype, ttl, list(values))


def _counted(state: TargetState, result: Result) -> TargetState:
    """A state with ``result`` as its last one, counted (its state machine decides apart).
    Built directly, as machine.step builds its state: dataclasses.replace is several times
    slower, and this runs for every result of every location."""
    ok = result.ok
    return TargetState(
        observed=state.observed,
        since=state.since,
        successes=state.successes + 1 if ok else 0,
        failures=0 if ok else state.failures + 1,
        pending_until=state.pending_until,
        last_result=result,
        maintenance=state.maintenance,
        watched_since=state.watched_since,
        forced=state.forced,
    )
