"""Conditions on one result (issue 17): the `$.path OP literal` condition as a table of
bodies and verdicts, the slow reason and the inverted outcome. Pure: no sockets here."""

from __future__ import annotations

import pytest

from dynserver.health.conditions import expiry_reason, inverted, parse_json_condition, slow_reason

BODY = b"""{"status": "ok", "queue": 42, "healthy": true, "version": "1.1", "ratio": 0.5,
"owner": null, "items": [{"name": "a", "up": true}, {"name": "b", "up": false}]}"""

# (condition, body, ok, reason)
CASES = [
    ('$.status == "ok"', BODY, True, 'json $.status == "ok"'),
    ('$.status == "down"', BODY, False, 'json $.status is "ok", expected == "down"'),
    ("$.queue < 100", BODY, True, "json $.queue < 100"),
    ("$.queue <= 42", BODY, True, "json $.queue <= 42"),
    ("$.queue > 42", BODY, False, "json $.queue is 42, expected > 42"),
    ("$.queue >= 42", BODY, True, "json $.queue >= 42"),
    ("$.ratio < 0.75", BODY, True, "json $.ratio < 0.75"),
    ("$.healthy == true", BODY, True, "json $.healthy == true"),
    ("$.healthy == false", BODY, False, "json $.healthy is true, expected == false"),
    ('$.version != "1.0"', BODY, True, 'json $.version != "1.0"'),
    ("$.owner == null", BODY, True, "json $.owner == null"),
    ("$.status != null", BODY, True, "json $.status != null"),
    ('$.status<"p"', BODY, True, 'json $.status < "p"'),
    # A filter inside the path keeps its own operator: only the one outside is the split.
    ('$.items[?@.name == "a"].up == true', BODY, True, 'json $.items[?@.name == "a"].up == true'),
    # Every value a path selects must satisfy the comparison.
    ("$.items[*].up == true", BODY, False, "json $.items[*].up is false, expected == true"),
    # What a target sends never raises: each is a failed check with its reason.
    ('$.status == "ok"', b"<html>fine</html>", False, "body is not JSON"),
    ('$.status == "ok"', b"", False, "body is not JSON"),
    ('$.status == "ok"', b"\xff\xfe", False, "body is not JSON"),
    ('$.missing == "ok"', BODY, False, "json $.missing matches nothing"),
    ("$.status < 100", BODY, False, 'json $.status is "ok", not comparable with < 100'),
    ("$.healthy == 1", BODY, False, "json $.healthy is true, not comparable with == 1"),
    ('$.queue == "42"', BODY, False, 'json $.queue is 42, not comparable with == "42"'),
    ("$.owner < 1", BODY, False, "json $.owner is null, not comparable with < 1"),
]


@pytest.mark.parametrize(("text", "body", "ok", "reason"), CASES, ids=[f"{c[0]} {c[2]}" for c in CASES])
def test_a_condition_on_a_body_gives_a_verdict_and_a_reason(
    text: str, body: bytes, ok: bool, reason: str
) -> None:
    assert parse_json_condition(text).evaluate(body) == (ok, reason)


# (condition, a fragment of the error)
MISTAKES = [
    ("$.status", "expected `$.path OP value`"),
    ('$.status = "ok"', "expected `$.path OP value`"),
    ('$.status =~ "ok"', "expected `$.path OP value`"),
    ('== "ok"', "expected `$.path OP value`"),
    ("$.status ==", "expected `$.path OP value`"),
    ('status == "ok"', "expected a JSON path starting with $"),
    ('$.[ == "ok"', "expected `$.path OP value`"),
    ('$.a.. == "ok"', "bad JSON path '$.a..'"),
    ('$.foo bar == "ok"', "bad JSON path '$.foo bar': unexpected token"),
    ('$[?@.a ==] == "ok"', "bad JSON path"),
    ("$.status == ok", "expected a JSON string, number"),
    ("$.status == 'ok'", "expected a JSON string, number"),
    ('$.status == ["ok"]', "expected a JSON string, number"),
    ('$.status == {"a": 1}', "expected a JSON string, number"),
    ("$.queue < NaN", "expected a JSON string, number"),
    ("$.healthy < true", "expected a number or a string after <"),
    ("$.owner >= null", "expected a number or a string after >="),
]


@pytest.mark.parametrize(("text", "says"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_bad_condition_is_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_json_condition(text)
    assert says in str(caught.value)


def test_slow_reason_carries_the_measured_time() -> None:
    assert slow_reason(0.4123, 0.3) == "slow: 0.412 s > 0.300 s"
    assert slow_reason(0.3, 0.3) is None
    assert slow_reason(0.01, 0.3) is None


def test_inverted_flips_the_outcome_and_says_so() -> None:
    assert inverted(True, "status 200") == (False, "inverted: status 200")
    assert inverted(False, "timeout") == (True, "inverted: timeout")


def test_one_condition_read_twice_is_equal_and_hashable() -> None:
    """Monitors are compared and hashed (reloads, grouping checks): the compiled path is not."""
    first, second = parse_json_condition("$.queue < 100"), parse_json_condition("$.queue < 100")
    assert first == second and hash(first) == hash(second)
    assert first != parse_json_condition("$.queue < 101")


def test_expiry_reason() -> None:
    day = 86400.0
    assert expiry_reason(100 * day, 0, 14) is None
    assert expiry_reason(14 * day, 0, 14) is None  # exactly the limit: not yet
    assert expiry_reason(2.94 * day, 0, 14) == "certificate expires in 2.9 days (under 14)"
    assert expiry_reason(0, 1.5 * day, 14) == "certificate expired 1.5 days ago"
