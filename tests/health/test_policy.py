"""Policy: table-driven, one row per situation users meet."""

from __future__ import annotations

import pytest

from dynserver.health.policy import ROTATION_LIMIT, Candidate, Decision, Fallback, Policy, decide, rotation
from dynserver.health.state import Health

U, D, P, M, X = Health.UP, Health.DOWN, Health.PENDING, Health.MAINTENANCE, Health.UNKNOWN


def targets(*specs: tuple[str, int, Health]) -> list[Candidate]:
    return [Candidate(name, f"192.0.2.{i + 1}", prio, health) for i, (name, prio, health) in enumerate(specs)]


OKERR = [("charlie", 1), ("echo", 2), ("bravo", 3)]
POOL = [("a", 1), ("b", 1), ("c", 1)]


def with_health(spec: list[tuple[str, int]], healths: str) -> list[Candidate]:
    codes = {"U": U, "D": D, "P": P, "M": M, "X": X}
    return targets(*[(n, p, codes[h]) for (n, p), h in zip(spec, healths, strict=True)])


@pytest.mark.parametrize(
    ("spec", "healths", "kwargs", "answered"),
    [
        # okerr priority failover: the best target that is up
        (OKERR, "UUU", {}, ("charlie",)),
        (OKERR, "DUU", {}, ("echo",)),
        (OKERR, "DDU", {}, ("bravo",)),
        (OKERR, "PDU", {}, ("bravo",)),  # pending is not up yet
        (OKERR, "MUU", {}, ("echo",)),  # maintenance drains
        (OKERR, "XUU", {}, ("echo",)),  # unknown is not up
        # nothing up: the preferred group by default, never empty
        (OKERR, "DDD", {}, ("charlie",)),
        (OKERR, "DDD", {"fallback": Fallback.ALL}, ("charlie", "echo", "bravo")),
        (OKERR, "DDD", {"fallback": Fallback.NONE}, ()),
        (OKERR, "MDD", {}, ("echo",)),  # preferred is drained: the best non-drained group
        (OKERR, "MMM", {}, ("charlie",)),  # everything drained: still never empty
        # seed 000 round robin: a failed member is removed, the last one never is
        (POOL, "UUU", {}, ("a", "b", "c")),
        (POOL, "UDU", {}, ("a", "c")),
        (POOL, "DDU", {}, ("c",)),
        (POOL, "DDD", {}, ("a", "b", "c")),
        # gdnsd multifo min_up: fewer than min_up up -> all members of the group
        (POOL, "UDU", {"min_up": 2}, ("a", "c")),
        (POOL, "DDU", {"min_up": 2}, ("a", "b", "c")),
        # check-only never changes the answer
        (OKERR, "DDU", {"policy": Policy.CHECK_ONLY}, ("charlie", "echo", "bravo")),
        # CNAME: one value
        (POOL, "DUU", {"single": True}, ("b",)),
    ],
)
def test_decide(
    spec: list[tuple[str, int]], healths: str, kwargs: dict[str, object], answered: tuple[str, ...]
) -> None:
    decision = decide(with_health(spec, healths), **kwargs)  # type: ignore[arg-type]
    assert decision.targets == answered


def test_targets_without_value_wait_for_their_first_update() -> None:
    candidates = [Candidate("dialup", None, 1, U), Candidate("backup", "192.0.2.9", 2, U)]
    assert decide(candidates).values == ("192.0.2.9",)
    assert decide([Candidate("dialup", None, 1, U)]) == Decision((), (), "no target has a value yet")


def test_reason_names_group() -> None:
    decision = decide(with_health(POOL, "UDU"))
    assert decision.priority == 1 and "2 of 3 up" in decision.reason


# -- rotation: which value comes first, answer after answer ---------------------------


@pytest.mark.parametrize(
    ("weights", "turns"),
    [
        ([], ()),
        ([5], ()),  # one value: nothing to rotate
        ([1, 1], (0, 1)),
        ([1, 1, 1, 1], (0, 1, 2, 3)),  # equal weights: plain round robin (BIND's cyclic)
        ([3, 1, 1], (0, 1, 0, 2, 0)),  # spread out, not a run of three
        ([1, 2], (1, 0, 1)),
        ([2, 2, 1], (0, 1, 2, 0, 1)),
    ],
)
def test_rotation_is_a_smooth_weighted_round_robin(weights: list[int], turns: tuple[int, ...]) -> None:
    assert rotation(weights) == turns


@pytest.mark.parametrize(
    "weights", [[1, 1, 1], [3, 1, 1], [7, 2, 1], [1, 9], [5, 5, 3, 2, 1], [1000, 1], [600, 300, 100]]
)
def test_first_places_follow_the_weights(weights: list[int]) -> None:
    turns = rotation(weights)
    total = sum(weights)
    if total <= ROTATION_LIMIT:
        assert len(turns) == total
        assert [turns.count(i) for i in range(len(weights))] == weights, "exact shares"
    else:
        # Scaled down to the limit: every target keeps a turn, shares within one turn.
        assert len(turns) <= ROTATION_LIMIT
        for i, weight in enumerate(weights):
            assert turns.count(i) >= 1
            assert abs(turns.count(i) - weight * len(turns) / total) <= 1 + len(weights)


def test_the_decision_carries_each_value_weight() -> None:
    candidates = [
        Candidate("a", "192.0.2.1", 1, U, weight=3),
        Candidate("b", "192.0.2.2", 1, D, weight=2),
        Candidate("c", "192.0.2.3", 1, U, weight=1),
        Candidate("z", "192.0.2.9", 2, U, weight=9),
    ]
    decision = decide(candidates)
    assert (decision.values, decision.weights) == (("192.0.2.1", "192.0.2.3"), (3, 1))
