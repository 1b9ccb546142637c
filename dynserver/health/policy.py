"""Policy: targets and their health in, the answer of a dynamic record out. Pure.

Targets of equal priority form a group (lower number = preferred). The answer is the
up members of the best group that has any: failover between groups, all members
within one. One group is seed 000's "remove from round robin"; one target per group is
okerr's priority failover. When nothing is up, the record's fallback applies, and the
default never serves an empty answer.

Within the answer, ``rotation`` says which record comes first, answer after answer
(BIND's cyclic order, CoreDNS' loadbalance): in turn, or as often as each target's
``weight`` says (a smooth weighted round robin, nginx's), the others following in
cyclic order. The DNS core keeps one precomputed reply per first record and steps
through this sequence (dynserver/dns/snapshot.py).
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


class Order(enum.StrEnum):
    """The order of a record's answer when it holds several values (a record's ``order``).
    Config errors list the values in this order."""

    ROTATE = "rotate"  #: each answer starts with the next value (by weight), as round robin means
    FIXED = "fixed"  #: always in config order (priority, then as listed)


# The longest rotation kept per record: weights whose sum is larger are scaled down to
# it (every target keeps at least one turn), so a reply holds at most this many steps.
ROTATION_LIMIT = 64


@dataclass(frozen=True, slots=True)
class Candidate:
    """A target as the policy sees it."""

    name: str
    value: str | None  # None until a first update gives it an address
    priority: int
    health: Health
    weight: int = 1  # its share of first places in a rotating answer


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer and why: shown on the dashboard and recorded in events."""

    values: tuple[str, ...]
    targets: tuple[str, ...]
    reason: str
    priority: int | None = None  # the group answered, when one was
    weights: tuple[int, ...] = ()  # each value's weight (the first target's, for a repeated value)


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
        weights=tuple(c.weight for c in chosen if c.value is not None),
    )


def rotation(weights: Sequence[int], limit: int = ROTATION_LIMIT) -> tuple[int, ...]:
    """Which value comes first, answer after answer: indices into ``weights``, one cycle.

    Each index appears in proportion to its weight, spread out rather than in runs (a
    smooth weighted round robin: every step adds each weight to its credit and picks the
    largest credit, first on ties, which then pays the total back). Equal weights give
    0, 1, ..., n-1. The cycle is sum(weights) long, at most ``limit``: larger weights
    are scaled down, each keeping at least one turn. One value or none: no rotation."""
    if len(weights) < 2:
        return ()
    total = sum(weights)
    if total > limit:
        weights = [max(1, w * limit // total) for w in weights]
        total = sum(weights)
    credit = [0] * len(weights)
    turns = []
    for _ in range(total):
        for i, weight in enumerate(weights):
            credit[i] += weight
        best = credit.index(max(credit))
        credit[best] -= total
        turns.append(best)
    return tuple(turns)
