"""The backoff schedule, driven directly: attempts in, seconds out."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from dynserver.backoff import Backoff
from dynserver.mirror.worker import FIRST_BACKOFF, MAX_BACKOFF
from dynserver.notify.sender import RETRY
from dynserver.xfr.notify import ANSWER_WAIT, MAX_PAUSE, RESEND

# (schedule, attempt, keyword arguments, seconds)
CASES = [
    # a check's retries: 0.1 s doubling, capped by the check's timeout (here 0.5 s)
    (Backoff(0.1, cap=0.5), 1, {}, 0.1),
    (Backoff(0.1, cap=0.5), 2, {}, 0.2),
    (Backoff(0.1, cap=0.5), 3, {}, 0.4),
    (Backoff(0.1, cap=0.5), 4, {}, 0.5),
    # a timeout shorter than the first wait caps even the first retry
    (Backoff(0.1, cap=0.05), 1, {}, 0.05),
    # alert deliveries: no cap
    (RETRY, 1, {}, 1.0),
    (RETRY, 4, {}, 8.0),
    (RETRY, 20, {}, 2.0**19),
    # mirror pushes: capped, and a provider's Retry-After is the wait, shorter or longer
    (Backoff(FIRST_BACKOFF, cap=MAX_BACKOFF), 9, {}, 256.0),
    (Backoff(FIRST_BACKOFF, cap=MAX_BACKOFF), 10, {}, 300.0),
    (Backoff(FIRST_BACKOFF, cap=MAX_BACKOFF), 5, {"retry_after": 2.5}, 2.5),
    (Backoff(FIRST_BACKOFF, cap=MAX_BACKOFF), 1, {"retry_after": 600.0}, 600.0),
    (Backoff(FIRST_BACKOFF, cap=MAX_BACKOFF), 3, {"retry_after": 0.0}, 4.0),
    (Backoff(FIRST_BACKOFF, cap=MAX_BACKOFF), 3, {"retry_after": None}, 4.0),
    # NOTIFY resends: 1, 2, 4... s up to MAX_PAUSE
    (RESEND, 1, {}, 1.0),
    (RESEND, 5, {}, 16.0),
    (RESEND, 6, {}, 30.0),
    # another factor
    (Backoff(0.5, factor=3.0), 3, {}, 4.5),
    # jitter only shortens, by at most its share; without jitter the draw is ignored
    (Backoff(1.0, jitter=0.1), 2, {"random": 0.0}, 2.0),
    (Backoff(1.0, jitter=0.1), 2, {"random": 0.5}, 1.9),
    (Backoff(1.0, cap=4.0, jitter=0.5), 5, {"random": 0.5}, 3.0),
    (Backoff(1.0), 2, {"random": 0.9}, 2.0),
]


@pytest.mark.parametrize(("schedule", "attempt", "options", "seconds"), CASES)
def test_delay(schedule: Backoff, attempt: int, options: dict[str, float], seconds: float) -> None:
    assert schedule.delay(attempt, **options) == pytest.approx(seconds, abs=1e-12)


# The formulas each user wrote before the schedule was shared: the delays must be the
# same floats, not merely close ones.
FORMERLY = [
    ("check retries", Backoff(0.1, cap=2.0), lambda n: min(0.1 * 2 ** (n - 1), 2.0)),
    ("check retries, short timeout", Backoff(0.1, cap=0.3), lambda n: min(0.1 * 2 ** (n - 1), 0.3)),
    ("alert deliveries", RETRY, lambda n: 1.0 * 2 ** (n - 1)),
    ("NOTIFY resends", RESEND, lambda n: min(ANSWER_WAIT * 2 ** (n - 1), MAX_PAUSE)),
]


@pytest.mark.parametrize(("user", "schedule", "formula"), FORMERLY)
def test_delays_are_exactly_the_former_ones(
    user: str, schedule: Backoff, formula: Callable[[int], float]
) -> None:
    assert [schedule.delay(n) for n in range(1, 40)] == [formula(n) for n in range(1, 40)], user


def test_mirror_delays_are_exactly_the_former_doubling() -> None:
    """The mirror worker doubled a running value after each failure, capped."""
    schedule = Backoff(0.01, cap=MAX_BACKOFF)
    backoff, former = 0.01, []
    for _ in range(40):
        former.append(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
    assert [schedule.delay(n) for n in range(1, 41)] == former


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"first": 0.0}, "first wait must be positive"),
        ({"first": 1.0, "factor": 0.5}, "factor 0.5 must be at least 1"),
        ({"first": 1.0, "jitter": 1.0}, r"jitter 1.0 must be in \[0, 1\)"),
        ({"first": 1.0, "jitter": -0.1}, "jitter"),
    ],
)
def test_a_bad_schedule_fails_at_construction(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**options)


def test_uncapped_by_default() -> None:
    assert Backoff(1.0).cap == math.inf
