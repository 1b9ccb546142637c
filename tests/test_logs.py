"""Structured logs (dynserver.logs): one line per record, logfmt or JSON, with time,
level, logger and event, the message's key=value pairs as fields, and tracebacks folded
into the same line."""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys

import pytest
import uvicorn

from dynserver import logs
from dynserver.logs import JsonFormatter, TextFormatter, fields


def record(message: str, *args: object, level: int = logging.INFO, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("dynserver.test", level, __file__, 1, message, args, exc_info)


def test_event_messages_become_fields_in_order() -> None:
    got = fields(
        record(
            "event=answer_changed record=%s type=%s current=%s reason=%r",
            "app.dyn.example.test.",
            "A",
            "192.0.2.1",
            "priority 1: charlie up",
        )
    )
    assert list(got) == ["time", "level", "logger", "event", "record", "type", "current", "reason"]
    assert got["event"] == "answer_changed" and got["reason"] == "priority 1: charlie up"
    assert (got["level"], got["logger"]) == ("info", "dynserver.test")
    stamp = datetime.datetime.fromisoformat(got["time"])
    assert stamp.tzinfo == datetime.UTC and got["time"].endswith("Z")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got["time"])


def test_text_is_logfmt_and_keeps_quoted_values_quoted() -> None:
    line = TextFormatter().format(
        record("event=target_health target=%s reason=%r note=%r", "charlie", "timeout", 'say "hi"\nthere')
    )
    assert "\n" not in line
    assert line.startswith("time=") and " level=info logger=dynserver.test event=target_health " in line
    # %r values stay quoted (readers match reason="..."), in logfmt's double quotes.
    assert ' target=charlie reason="timeout" note="say \\"hi\\"\\nthere"' in line


def test_free_text_and_library_messages_get_an_event_and_msg() -> None:
    for message, args in (
        ("Started server process", ()),
        ("check %s crashed", ("x",)),
        ("a=1 then words", ()),
    ):
        got = fields(record(message, *args))
        assert got["event"] == "log" and got["msg"] == message.replace("%s", "x")
    line = TextFormatter().format(record("Uvicorn running on %s", "http://127.0.0.1:80"))
    assert line.endswith('event=log msg="Uvicorn running on http://127.0.0.1:80"')


def test_a_traceback_stays_on_the_same_line() -> None:
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record("event=check_crashed check=%r", "web", level=logging.ERROR, exc=True))
        assert "\n" not in line
        assert "ValueError: boom" in line
    parsed = json.loads(JsonFormatter().format(record("event=x", exc=True)))
    assert parsed["exc"].startswith("Traceback") and parsed["exc"].endswith("ValueError: boom\nsecond line")


def test_json_is_one_object_per_line_with_every_field() -> None:
    line = JsonFormatter().format(
        record("event=update via=%s credential=%s time=%s reason=%r", "dyndns2", "bravo", "spoofed", "a b")
    )
    parsed = json.loads(line)
    assert parsed["event"] == "update" and parsed["via"] == "dyndns2" and parsed["reason"] == "a b"
    assert parsed["field.time"] == "spoofed"  # a message cannot overwrite the stamp
    assert datetime.datetime.fromisoformat(parsed["time"]).tzinfo == datetime.UTC


def test_configure_sends_every_logger_through_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        # uvicorn's default config gives its loggers their own handler and format (and
        # stops them propagating): configure() must take them back.
        uvicorn.Config(app=lambda scope, receive, send: None)
        assert logging.getLogger("uvicorn").handlers and not logging.getLogger("uvicorn").propagate
        logs.configure("info", "json")
        logging.getLogger("uvicorn.error").warning("Application startup %s", "failed")
        logging.getLogger("dynserver").info("event=listening proto=dns address=%s", "127.0.0.1:5353")
        logging.getLogger("dynserver").debug("event=hidden")  # below the level
        lines = capsys.readouterr().err.splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["log", "listening"]
        with pytest.raises(ValueError, match="text, json"):
            logs.configure("info", "xml")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
