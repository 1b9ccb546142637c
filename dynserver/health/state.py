"""The health state machine of one target: every rule of it lives in this file.

Probes only report results; this module decides. It is pure: time is an argument,
nothing is read from a clock, and the transition table below is the whole behaviour.

    unknown ──consecutive_down failures──▶ down ──consecutive_up successes──▶ pending
       │                                    ▲                                   │
       └──consecutive_up successes──▶ up ───┘◀── (failback_delay: 0) ───────────┤
                                      ▲          one failure restarts: down ◀───┤
                                      └──────── failback_delay elapsed ─────────┘
    any state ──no result for 3 intervals──▶ unknown (stale)
    maintenance is a flag over all of this: the target is drained, checks go on.
    forced (an admin's up or down, gdnsd's admin_state) is one too, below maintenance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec
from msgspec.structs import replace

# A checker that has not reported for this many intervals has stalled.
STALE_INTERVALS = 3


class Health(enum.StrEnum):
    """A target's health, as the policy, the dashboard, the API and the store name it."""

    UNKNOWN = "unknown"  #: no verdict yet (start-up, or results went stale)
    UP = "up"  #: passing: may be answered
    DOWN = "down"  #: failing: never answered (unless a fallback says so)
    PENDING = "pending"  #: recovered, waiting out the failback delay
    MAINTENANCE = "maintenance"  #: drained by the operator: never answered, not alerted on


class Event(enum.StrEnum):
    """What can happen to a target, as the transition table sees it."""

    PASSED = "passed"  #: a check passed and the consecutive_up threshold is reached
    FAILED = "failed"  #: a check failed and the consecutive_down threshold is reached
    FAILED_ONCE = "failed_once"  #: a single failure (restarts a failback wait)
    DELAY_OVER = "delay_over"  #: the failback delay has elapsed
    STALE = "stale"  #: no result for STALE_INTERVALS intervals


# (observed health, event) -> next observed health. Pairs not listed change nothing.
TRANSITIONS: dict[tuple[Health, Event], Health] = {
    (Health.UNKNOWN, Event.PASSED): Health.UP,  # start-up: no failback wait
    (Health.UNKNOWN, Event.FAILED): Health.DOWN,
    (Health.UP, Event.FAILED): Health.DOWN,
    (Health.DOWN, Event.PASSED): Health.PENDING,  # becomes UP at once without a delay
    (Health.PENDING, Event.FAILED_ONCE): Health.DOWN,  # seed 000: "all is restarted"
    (Health.PENDING, Event.FAILED): Health.DOWN,
    (Health.PENDING, Event.DELAY_OVER): Health.UP,
    (Health.UP, Event.STALE): Health.UNKNOWN,
    (Health.DOWN, Event.STALE): Health.UNKNOWN,
    (Health.PENDING, Event.STALE): Health.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class Thresholds:
    consecutive_up: int = 1
    consecutive_down: int = 1
    failback_delay: float = 0.0
    interval: float = 10.0
    timeout: float = 2.0


class Result(msgspec.Struct, frozen=True):
    """One probe's verdict. ``reason`` is short and human: "status 503", "timeout".

    Result, TargetState and Transition are frozen msgspec Structs, not frozen dataclasses:
    every check's result, and every location's, builds a Result and two TargetStates
    (the location's view, the voted state); a frozen dataclass sets each field through
    object.__setattr__ (4.2 us for a TargetState, 2.4 us for a Result, measured), a Struct
    is built in C (0.5 us). Same fields, defaults, equality, hash and immutability;
    msgspec.structs.replace stands for dataclasses.replace."""

    ok: bool
    reason: str
    at: float
    latency: float | None = None
    certificate_expires: float | None = None  # https, when asked: Unix time (notAfter)


class TargetState(msgspec.Struct, frozen=True):
    observed: Health = Health.UNKNOWN
    since: float = 0.0  # when ``health`` last changed
    successes: int = 0  # consecutive
    failures: int = 0  # consecutive
    pending_until: float | None = None
    last_result: Result | None = None
    maintenance: bool = False
    # When checking this target (re)started. Staleness counts from here or the last
    # result, whichever is later: time spent stopped is not a stalled checker, so a state
    # restored after a long stop is not thrown away before its first fresh check.
    watched_since: float = 0.0
    # An admin's forced state (UP or DOWN) over what checks observe; None: the checks decide.
    forced: Health | None = None

    @property
    def health(self) -> Health:
        """What the policy and the UI see: maintenance, then a forced state, override what
        checks observe."""
        if self.maintenance:
            return Health.MAINTENANCE
        return self.observed if self.forced is None else self.forced


class Transition(msgspec.Struct, frozen=True):
    """A change of a target's health, with the cause (for events and notifications)."""

    previous: Health
    current: Health
    reason: str
    at: float


def step(state: TargetState, result: Result, limits: Thresholds) -> tuple[TargetState, Transition | None]:
    """Feed one check result into the machine."""
    now = result.at
    ok = result.ok
    # Built directly, not with dataclasses.replace (several times slower): once per check.
    state = TargetState(
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
    if ok:
        event = Event.PASSED if state.successes >= limits.consecutive_up else None
    else:
        event = Event.FAILED if state.failures >= limits.consecutive_down else Event.FAILED_ONCE
    state, transition = _apply(state, event, now, result.reason, limits)
    # A pending target whose delay is over by the time a result arrives is up now.
    if state.observed is Health.PENDING and transition is None:
        state, transition = tick(state, now, limits)
    return state, transition


def stale_after(limits: Thresholds) -> float:
    """How long a target may go without a result before its state is stale."""
    return STALE_INTERVALS * limits.interval + limits.timeout


def tick(state: TargetState, now: float, limits: Thresholds) -> tuple[TargetState, Transition | None]:
    """Advance time: end a failback wait, or mark results stale."""
    if state.observed is Health.PENDING and state.pending_until is not None and now >= state.pending_until:
        return _apply(state, Event.DELAY_OVER, now, "failback delay over", limits)
    last = state.last_result
    silent_since = None if last is None else max(last.at, state.watched_since)
    if (
        silent_since is not None
        and state.observed is not Health.UNKNOWN
        and now - silent_since > stale_after(limits)
    ):
        return _apply(state, Event.STALE, now, "no check result (checker stalled)", limits)
    return state, None


def set_forced(
    state: TargetState, forced: Health | None, now: float, reason: str
) -> tuple[TargetState, Transition | None]:
    """Force the target UP or DOWN (None: back to what its checks observe); a transition
    when what the policy sees changes (not under maintenance, nor to the same health)."""
    if forced not in (None, Health.UP, Health.DOWN):
        raise ValueError(f"a target is forced up or down, not {forced}")
    previous = state.health
    state = replace(state, forced=forced)
    if state.health is previous:
        return state, None
    state = replace(state, since=now)
    return state, Transition(previous, state.health, reason, now)


def set_maintenance(state: TargetState, on: bool, now: float) -> tuple[TargetState, Transition | None]:
    if state.maintenance == on:
        return state, None
    previous = state.health
    state = replace(state, maintenance=on, since=now)
    reason = "maintenance on" if on else "maintenance off"
    return state, Transition(previous, state.health, reason, now)


def apply_event(
    state: TargetState, event: Event | None, now: float, reason: str, limits: Thresholds
) -> tuple[TargetState, Transition | None]:
    """Apply one event by the transition table (a vote of several locations decides the
    events of a target's voted state: health/engine.py). A pending target whose failback
    delay has ended by ``now`` is up."""
    state, transition = _apply(state, event, now, reason, limits)
    if state.observed is Health.PENDING and transition is None:
        state, transition = tick(state, now, limits)
    return state, transition


def _apply(
    state: TargetState, event: Event | None, now: float, reason: str, limits: Thresholds
) -> tuple[TargetState, Transition | None]:
    if event is None:
        return state, None
    target = TRANSITIONS.get((state.observed, event))
    if target is None:
        return state, None
    if target is Health.PENDING and limits.failback_delay <= 0:
        target = Health.UP
    previous = state.health
    pending_until = now + limits.failback_delay if target is Health.PENDING else None
    state = replace(state, observed=target, since=now, pending_until=pending_until)
    if target is Health.DOWN:
        # Coming back needs consecutive_up fresh successes (and a fresh failback wait).
        state = replace(state, successes=0)
    if state.maintenance or state.forced is not None:
        return state, None  # drained or forced targets change silently: no alert, no answer change
    return state, Transition(previous, state.health, reason, now)
