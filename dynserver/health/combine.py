"""Combined checks (issue 17): several monitors decide one target's health. Pure.

Each monitor's results run through the state machine on their own (health/state.py, with
that monitor's thresholds, retries and failback delay); this module only combines the
monitors' observed states, Route 53 "calculated health check" style:

    up       at least ``need`` monitors are up
    pending  not so, but enough are up or waiting out their failback delay
    down     too many are down (or pending) for ``need`` ever to be reached
    unknown  otherwise: the monitors still unknown decide (start-up, stale checks)
"""

from __future__ import annotations

from collections.abc import Sequence

from dynserver.health.state import Health, TargetState


def require_text(need: int, total: int) -> str:
    """require as the config writes it: "all", "any" or "at least N"."""
    if need >= total:
        return "all"
    if need == 1:
        return "any"
    return f"at least {need}"


def combine(parts: Sequence[tuple[str, TargetState]], need: int) -> tuple[Health, float | None, str]:
    """The combined observed health of a target whose monitors are ``parts`` (name, its
    own state), when ``need`` of them must be up; with when a pending one ends its wait,
    and a reason that names the monitors that decided it."""
    total = len(parts)
    up = [name for name, state in parts if state.observed is Health.UP]
    waits = sorted(
        state.pending_until
        for _, state in parts
        if state.observed is Health.PENDING and state.pending_until is not None
    )
    down = [(name, state) for name, state in parts if state.observed in (Health.DOWN, Health.PENDING)]
    rule = f"{len(up)} of {total} monitors up, {require_text(need, total)} required"
    if len(up) >= need:
        passed = "; ".join(
            f"{name}: {_reason(state)}" for name, state in parts if state.observed is Health.UP
        )
        return Health.UP, None, f"{rule} ({passed})"
    failing = "; ".join(f"{name}: {_reason(state)}" for name, state in down)
    if len(up) + len(waits) >= need:
        return Health.PENDING, waits[need - len(up) - 1], f"{rule}, waiting on failback ({failing})"
    if total - len(down) < need:
        return Health.DOWN, None, f"{rule} ({failing})"
    unknown = ", ".join(name for name, state in parts if state.observed is Health.UNKNOWN)
    return Health.UNKNOWN, None, f"{rule}, no verdict yet from {unknown}"


def _reason(state: TargetState) -> str:
    last = state.last_result
    return state.observed.value if last is None else last.reason
