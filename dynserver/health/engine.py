"""The health engine: target states, shared checks, and each record's current answer.

No I/O and no clock: results, ticks and operator actions come in with their time, and
what comes out is which targets changed and which records now answer differently. The
application turns that into a new snapshot, events and notifications.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from dynserver.dns import wire
from dynserver.dns.zone import RRset, rrset_from_texts
from dynserver.health import state as machine
from dynserver.health.policy import Candidate, Decision, decide
from dynserver.health.probes import Check
from dynserver.health.state import Health, Result, TargetState, Thresholds, Transition
from dynserver.model import DynamicRecord, Monitor, Target
from dynserver.types import CheckKey, RecordKey, TargetKey

_RTYPES = {"A": wire.TYPE_A, "AAAA": wire.TYPE_AAAA, "CNAME": wire.TYPE_CNAME}


@dataclass(frozen=True, slots=True)
class Change:
    """A target whose health changed, with the transition that did it."""

    record: DynamicRecord
    target: Target
    transition: Transition


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
    def __init__(
        self,
        records: Sequence[DynamicRecord],
        monitors: Mapping[str, Monitor],
        *,
        restored: Mapping[TargetKey, TargetState] | None = None,
        values: Mapping[TargetKey, str | None] | None = None,
    ) -> None:
        self.records: dict[RecordKey, DynamicRecord] = {record_key(r): r for r in records}
        self.monitors = dict(monitors)
        self.states: dict[TargetKey, TargetState] = {}
        self.values: dict[TargetKey, str | None] = {}
        restored = restored or {}
        values = values or {}
        for record in records:
            for target in record.targets:
                key = target_key(record, target)
                self.values[key] = values.get(key, target.value)
                state = restored.get(key, TargetState())
                if record.monitor is None:
                    state = replace(state, observed=Health.UP)  # unchecked: always up
                self.states[key] = replace(state, maintenance=target.maintenance)
        # Each checked target's thresholds and how long its results stay fresh, built once
        # for apply() and tick(): both run for thousands of targets (tick: all, every second).
        limits = {name: thresholds(monitor) for name, monitor in self.monitors.items()}
        self._watched: dict[TargetKey, tuple[Thresholds, float]] = {
            target_key(record, target): (limits[record.monitor], machine.stale_after(limits[record.monitor]))
            for record in records
            if record.monitor is not None
            for target in record.targets
        }
        self.decisions: dict[RecordKey, Decision] = {
            key: self._decide(record) for key, record in self.records.items()
        }
        # What each record answers now (values and TTL): a change means a new serial.
        self._served = {key: (self.decisions[key].values, self.ttl(key)) for key in self.records}

    # -- checks ---------------------------------------------------------------------

    def checks(self) -> dict[CheckKey, tuple[Check, Monitor, list[TargetKey]]]:
        """Every distinct check, its monitor, and the targets it reports on."""
        found: dict[CheckKey, tuple[Check, Monitor, list[TargetKey]]] = {}
        for record in self.records.values():
            if record.monitor is None:
                continue
            monitor = self.monitors[record.monitor]
            for target in record.targets:
                address = checked_address(target, self.values[target_key(record, target)])
                if address is None:
                    continue
                key = CheckKey(record.monitor, address, target.port, target.host, target.path)
                if key not in found:
                    found[key] = (build_check(monitor, target, address), monitor, [])
                found[key][2].append(target_key(record, target))
        return found

    def apply(self, targets: Iterable[TargetKey], result: Result) -> list[Change]:
        """Feed one check result to every target it covers."""
        changes = []
        for key in targets:
            state = self.states.get(key)
            if state is None:
                continue  # the target's address changed since this check started
            watched = self._watched.get(key)
            new, transition = machine.step(state, result, watched[0] if watched else Thresholds())
            self.states[key] = new
            if transition is not None:
                record = self.records[(key[0], key[1])]
                changes.append(Change(record, self._target(record, key), transition))
        return changes

    def tick(self, now: float) -> list[Change]:
        """Let time pass: failback delays end, silent checkers go stale."""
        changes = []
        states = self.states
        for key, (limits, fresh_for) in self._watched.items():
            current = states[key]
            last = current.last_result
            if current.observed is Health.UNKNOWN or last is None:
                continue
            if current.pending_until is None and now - last.at <= fresh_for:
                continue  # nearly every target: a fresh result and no failback wait to end
            new, transition = machine.tick(current, now, limits)
            if transition is not None:
                states[key] = new
                record = self.records[(key[0], key[1])]
                changes.append(Change(record, self._target(record, key), transition))
        return changes

    def next_deadline(self) -> float | None:
        """The earliest failback delay to end, so the caller can wake exactly then."""
        times = [s.pending_until for s in self.states.values() if s.pending_until is not None]
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

    def set_maintenance(self, key: TargetKey, on: bool, now: float) -> Change | None:
        record, target = self._find(key)
        new, transition = machine.set_maintenance(self.states[key], on, now)
        self.states[key] = new
        return Change(record, target, transition) if transition is not None else None

    # -- answers --------------------------------------------------------------------

    def recompute(self, keys: Iterable[RecordKey]) -> list[RecordKey]:
        """Decide the given records again; return those whose answer changed."""
        changed = []
        for key in keys:
            self.decisions[key] = self._decide(self.records[key])
            served = (self.decisions[key].values, self.ttl(key))
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
        return rrset_from_texts(record.name, _RTYPES[record.type], self.ttl(key), values)

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
        return next(t for t in record.targets if t.name == key[2])
