"""Structured logs: one line per event, as logfmt (``text``) or JSON (``json``).

Every line has ``time`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger`` and
``event``, then the event's own fields. dynserver's messages are written as
``event=name key=value key='quoted value'`` (values that may hold spaces are formatted
with %r); this formatter reads those pairs back into fields, so ``text`` is clean logfmt
and ``json`` has one key per field. A message that is not in that form (a library's)
becomes ``event=log msg="..."``. A traceback goes into the ``exc`` field of the same
line: no record ever spans two lines, whatever its text holds.

Secrets are kept out at the source: no log call of dynserver passes a password, token
or credential secret (tests/update/test_log_secrets.py checks the update paths).
"""

from __future__ import annotations

import ast
import datetime
import json
import logging
import re
import sys
from typing import Any

FORMATS = ("text", "json")
# key=value pairs: a value is a Python-quoted string ('...' or "...", from %r) or a bare word.
_PAIR = re.compile(r"""([A-Za-z_][A-Za-z0-9_.]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"]*)(?:\s+|$)""")
_BARE = re.compile(r"[^\s\"=\\]+")


class Quoted(str):
    """A value the message quoted (%r): logfmt keeps it quoted, so a reader that looks
    for ``reason="..."`` finds it whatever the text."""

    __slots__ = ()


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record as ordered fields: time, level, logger, event, then the message's own."""
    at = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    out: dict[str, Any] = {
        "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    message = record.getMessage()
    pairs = _pairs(message)
    if pairs is not None and pairs and pairs[0][0] == "event":
        for name, value in pairs:
            out[name if name not in out else f"field.{name}"] = value
    else:
        out["event"] = "log"
        out["msg"] = Quoted(message)
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        out["exc"] = record.exc_text
    if record.stack_info:
        out["stack"] = record.stack_info
    return out


def _pairs(message: str) -> list[tuple[str, str]] | None:
    """``key=value`` pairs if the whole message is made of them, else None."""
    pairs = []
    position = 0
    while position < len(message):
        match = _PAIR.match(message, position)
        if match is None:
            return None
        name, raw = match.group(1), match.group(2)
        if raw[:1] in ("'", '"'):
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                return None
            if not isinstance(value, str):
                return None
            value = Quoted(value)
        else:
            value = raw
        pairs.append((name, value))
        position = match.end()
    return pairs


def logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if text and not isinstance(value, Quoted) and _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quotes, escapes \n, \", \\ and controls


class TextFormatter(logging.Formatter):
    """logfmt: ``time=... level=info logger=dynserver event=answer_changed record=...``."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{name}={logfmt_value(value)}" for name, value in fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(fields(record), ensure_ascii=False, default=str)


def configure(level: str = "info", format: str = "text") -> None:
    """Send every logger (dynserver's, uvicorn's, apprise's...) to stderr in one format."""
    if format not in FORMATS:
        raise ValueError(f"log format {format!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # A library that set up its own handler (uvicorn's default config does) would print
    # in its own format: every logger goes through the root's handler instead.
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per check is noise
    logging.captureWarnings(True)
