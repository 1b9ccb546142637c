"""[monitors.NAME] conditions on a result (issue 17): invert, max_response_time and
expected_json land on the Monitor, and each mistake names the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import Monitor

BASE = """\
[monitors.web]
type = "http"
port = 18080
timeout = 0.5
# conditions

[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]
type = "A"
monitor = "web"
targets = [{ name = "a", value = "127.0.0.21" }]
"""


def load(tmp_path: Path, conditions: str, base: str = BASE) -> config.Config:
    path = tmp_path / "dynserver.toml"
    path.write_text(base.replace("# conditions", conditions))
    return config.load(path)


def monitor(tmp_path: Path, conditions: str) -> Monitor:
    (web,) = load(tmp_path, conditions).monitors
    return web


def test_none_of_them_by_default(tmp_path: Path) -> None:
    web = monitor(tmp_path, "")
    assert (web.invert, web.max_response_time, web.expected_json) == (False, None, None)


def test_each_lands_on_the_monitor(tmp_path: Path) -> None:
    web = monitor(tmp_path, "invert = true\nmax_response_time = 0.3\nexpected_json = '$.queue < 100'")
    assert web.invert is True
    assert web.max_response_time == 0.3
    assert web.expected_json is not None
    condition = web.expected_json
    assert (condition.path, condition.operator, condition.literal) == ("$.queue", "<", 100)


def test_expected_json_works_on_https(tmp_path: Path) -> None:
    (web,) = load(tmp_path, 'expected_json = "$.ok == true"', BASE.replace('"http"', '"https"')).monitors
    assert web.expected_json is not None and web.expected_json.literal is True


# (the lines in place of "# conditions", the key of the error, a fragment of the message)
MISTAKES = [
    ('invert = "yes"', "monitors.web.invert", "true or false"),
    ("max_response_time = 0.5", "monitors.web.max_response_time", "less than the timeout (0.5 s)"),
    ("max_response_time = 2", "monitors.web.max_response_time", "less than the timeout"),
    ("max_response_time = 0", "monitors.web.max_response_time", "a number from"),
    ('max_response_time = "fast"', "monitors.web.max_response_time", "a number from"),
    ("expected_json = 1", "monitors.web.expected_json", "a condition such as"),
    ("expected_json = '$.status = \"ok\"'", "monitors.web.expected_json", "OP one of == != <= >= < >"),
    ("expected_json = '$.a.. == 1'", "monitors.web.expected_json", "bad JSON path '$.a..'"),
    ("expected_json = 'status == 1'", "monitors.web.expected_json", "a JSON path starting with $"),
    ("expected_json = '$.status == ok'", "monitors.web.expected_json", "a JSON string, number, true"),
    ("expected_json = '$.healthy > true'", "monitors.web.expected_json", "a number or a string after >"),
]


@pytest.mark.parametrize(("conditions", "key", "says"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistakes_name_file_line_and_key(tmp_path: Path, conditions: str, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, conditions)
    error = caught.value
    assert (error.path, error.key, error.line) == (str(tmp_path / "dynserver.toml"), key, 5), str(error)
    assert says in error.message, str(error)
    assert "expected" in error.message, str(error)


def test_expected_json_needs_an_http_monitor(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "expected_json = '$.a == 1'", BASE.replace('"http"', '"tcp"'))
    assert (caught.value.key, caught.value.line) == ("monitors.web.expected_json", 5)
    assert "an http or https monitor" in caught.value.message


def test_certificate_expiry_on_https(tmp_path: Path) -> None:
    https = BASE.replace('"http"', '"https"')
    (web,) = load(tmp_path, "certificate_expiry_days = 14", https).monitors
    assert (web.certificate_expiry_days, web.certificate_expiry_fails) == (14, False)
    (strict,) = load(tmp_path, "certificate_expiry_days = 7\ncertificate_expiry_fails = true", https).monitors
    assert (strict.certificate_expiry_days, strict.certificate_expiry_fails) == (7, True)


@pytest.mark.parametrize(
    ("conditions", "base", "key", "says"),
    [
        ("certificate_expiry_days = 14", BASE, "monitors.web.certificate_expiry_days", "an https monitor"),
        (
            "certificate_expiry_fails = true",
            BASE,
            "monitors.web.certificate_expiry_fails",
            "an https monitor",
        ),
        (
            "certificate_expiry_fails = true",
            BASE.replace('"http"', '"https"'),
            "monitors.web.certificate_expiry_fails",
            "certificate_expiry_days beside it",
        ),
        (
            "certificate_expiry_days = 0",
            BASE.replace('"http"', '"https"'),
            "monitors.web.certificate_expiry_days",
            "a number from",
        ),
    ],
)
def test_certificate_expiry_mistakes(tmp_path: Path, conditions: str, base: str, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, conditions, base)
    assert (caught.value.key, caught.value.line) == (key, 5), str(caught.value)
    assert says in caught.value.message, str(caught.value)
