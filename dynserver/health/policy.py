"""Policy: targets and their health in, the answer of a dynamic record out. Pure.

Targets of equal priority form a group (lower number = preferred). The answer is the
up members of the best group that has any: failover between groups, all members
within one. One group is seed 000's "remove from round robin"; one target per group is
okerr's priority failover. When nothing is up, the record's fallback applies, and the
default never serves an empty answer.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from dynserver.health.state import Health


class Policy(enum.StrEnum):
    """How a record's targets become its answer (a record's ``policy``). Config errors
    list the values in this order."""

    FAILOVER = "failover"  #: answer the up members of the best group
    CHECK_ONLY = "check-only"  #: never change the answer; only check and notify


class Fallback(enum.StrEnum):
    """What a record answers when no target is up (a record's ``fallback``). Config errors
    list the values in this order."""

    PREFERRED = "preferred"  #: nothing up: answer the best group (never empty)
    ALL = "all"  #: nothing up: answer every target
    NONE = "none"  #: nothing up: answer nothing (NODATA)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A target as the policy sees it."""

    name: str
    value: str | None  # None until a first update gives it an address
    priority: int
    health: Health


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer and why: shown on the dashboard and recorded in events."""

    values: tuple[str, ...]
    targets: tuple[str, ...]
    reason: str
    priority: int | None = None  # the group answered, when one was


def decide(
    candidates: Sequence[Candidate],
    *,
    policy: Policy = Policy.FAILOVER,
    fallback: Fallback = Fallback.PREFERRED,
    min_up: int = 1,
    single: bool = False,
) -> Decision:
    """Choose the answer. ``single``: the record type takes one value (CNAME)."""
    usable = [c for c in candidates if c.value is not None]
    ordered = sorted(usable, key=lambda c: c.priority)  # stable: config order within a group
    if policy is Policy.CHECK_ONLY:
        return _decision(ordered, "check-only: the configured answer", None, single)
    serving = [c for c in ordered if c.health is not Health.MAINTENANCE]
    for priority, members in groupby(serving, key=lambda c: c.priority):
        group = list(members)
        up = [c for c in group if c.health is Health.UP]
        if not up:
            continue
        if len(up) < min_up:
            # gdnsd multifo's up_thresh: too few left to carry the load, serve them all.
            reason = f"priority {priority}: {len(up)} up, fewer than min_up {min_up}: all members"
            return _decision(group, reason, priority, single)
        return _decision(up, f"priority {priority}: {len(up)} of {len(group)} up", priority, single)
    if fallback is Fallback.NONE:
        return Decision(values=(), targets=(), reason="nothing up: fallback none")
    if fallback is Fallback.ALL:
        return _decision(serving or ordered, "nothing up: fallback all", None, single)
    pool = serving or ordered  # every target drained: still never an empty answer
    if not pool:
        return Decision(values=(), targets=(), reason="no target has a value yet")
    best = pool[0].priority
    group = [c for c in pool if c.priority == best]
    return _decision(group, f"nothing up: fallback to the preferred group (priority {best})", best, single)


def _decision(chosen: list[Candidate], reason: str, priority: int | None, single: bool) -> Decision:
    if single:
        chosen = chosen[:1]
    return Decision(
        values=tuple(c.value for c in chosen if c.value is not None),
        targets=tuple(c.name for c in chosen),
        reason=reason,
        priority=priority,
    )
