"""The target state machine, driven by scripted results on a fake clock."""

from __future__ import annotations

import pytest

from dynserver.health.state import (
    Health,
    Result,
    TargetState,
    Thresholds,
    set_maintenance,
    step,
    tick,
)

U, D, P, M, X = Health.UP, Health.DOWN, Health.PENDING, Health.MAINTENANCE, Health.UNKNOWN


def run(script: str, limits: Thresholds, start: TargetState | None = None) -> list[Health]:
    """Feed results one per second: '+' pass, '-' fail, '.' a second passes (tick only)."""
    state = start or TargetState()
    seen = []
    for now, symbol in enumerate(script, start=1):
        if symbol == ".":
            state, _ = tick(state, float(now), limits)
        else:
            state, _ = step(state, Result(ok=symbol == "+", reason="r", at=float(now)), limits)
        seen.append(state.health)
    return seen


@pytest.mark.parametrize(
    ("limits", "script", "expected"),
    [
        # start-up: one result decides, no failback wait from unknown
        (Thresholds(), "+", [U]),
        (Thresholds(), "-", [D]),
        # consecutive_down 2: a single failure is tolerated
        (Thresholds(consecutive_down=2), "+-+--", [U, U, U, U, D]),
        # consecutive_up 3 to come back (no failback delay)
        (Thresholds(consecutive_up=1), "-++", [D, U, U]),
        (Thresholds(consecutive_up=3), "+-++++", [X, D, D, D, U, U]),
        # unknown needs consecutive_up too
        (Thresholds(consecutive_up=2), "++", [X, U]),
        # failback delay 2 s: pending until it has been up for 2 s
        (Thresholds(failback_delay=2), "+-+.+.", [U, D, P, P, U, U]),
        # a failure while pending restarts everything (seed 000)
        (Thresholds(failback_delay=2), "+-+-+..", [U, D, P, D, P, P, U]),
        # stale: no result for 3 intervals (+ timeout) makes the target unknown
        (Thresholds(interval=1, timeout=0.5), "+....", [U, U, U, U, X]),
    ],
)
def test_transitions(limits: Thresholds, script: str, expected: list[Health]) -> None:
    assert run(script, limits) == expected


def test_transition_carries_reason_and_time() -> None:
    state = TargetState()
    state, transition = step(state, Result(ok=False, reason="status 503", at=5.0), Thresholds())
    assert transition is not None
    assert (transition.previous, transition.current, transition.reason, transition.at) == (
        X,
        D,
        "status 503",
        5.0,
    )
    assert state.since == 5.0
    state, transition = step(state, Result(ok=False, reason="timeout", at=6.0), Thresholds())
    assert transition is None  # still down: no transition, but the result is kept
    assert state.last_result is not None and state.last_result.reason == "timeout"


def test_maintenance_drains_silently_and_keeps_observing() -> None:
    limits = Thresholds()
    state, _ = step(TargetState(), Result(ok=True, reason="ok", at=1.0), limits)
    state, transition = set_maintenance(state, True, 2.0)
    assert transition is not None and (transition.previous, transition.current) == (U, M)
    # checks go on; a failure while drained changes what we observe but alerts nobody
    state, transition = step(state, Result(ok=False, reason="refused", at=3.0), limits)
    assert transition is None and state.health is M and state.observed is D
    state, transition = set_maintenance(state, False, 4.0)
    assert transition is not None and (transition.previous, transition.current) == (M, D)
    assert set_maintenance(state, False, 5.0) == (state, None)


def test_staleness_counts_from_when_checking_resumed() -> None:
    """A state restored after a long stop is not stale before its first fresh check:
    the time dynserver was stopped is not a stalled checker."""
    limits = Thresholds(interval=1, timeout=0.5)  # stale after 3.5 s without a result
    restored = TargetState(observed=U, last_result=Result(ok=True, reason="r", at=10.0), watched_since=100.0)
    assert tick(restored, 103.0, limits)[0].health is U
    state, transition = tick(restored, 104.0, limits)
    assert state.health is X
    assert transition is not None and transition.reason == "no check result (checker stalled)"
