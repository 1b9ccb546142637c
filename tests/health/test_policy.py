"""Policy: table-driven, one row per situation users meet."""

from __future__ import annotations

import pytest

from dynserver.health.policy import Candidate, Decision, Fallback, Policy, decide
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
