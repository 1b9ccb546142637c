"""Reading the TOML file: typed access to its values, and errors that name the file, the line
and the key (TOML parsers do not keep positions, so this module finds them)."""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynserver.dns.names import name_from_dnspython
from dynserver.errors import ConfigError
from dynserver.types import Name

T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)
KeyPath = tuple[str, ...]


def read_document(path: Path) -> tuple[dict[str, Any], Reader]:
    """The config file's tables, and a Reader that locates its keys; or a ConfigError."""
    shown = str(path)
    try:
        text = read_text(path, shown, "TOML file")
    except OSError as error:
        raise ConfigError(
            f"cannot read config: {error.strerror}; expected a readable TOML file", path=shown
        ) from None
    return parse_document(text, shown)


def parse_document(text: str, shown: str) -> tuple[dict[str, Any], Reader]:
    """A config's text (as read_text returns it; a BOM is dropped too) as tables and a
    Reader; invalid TOML is a ConfigError naming the line, as for a file."""
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column \d+\)", str(error))
        line = int(match.group(1)) if match else 0
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise ConfigError(
            f"not valid TOML: {message}; expected TOML syntax (https://toml.io), "
            'e.g. dns = ["127.0.0.1:53"] or [zones."example.com"]',
            path=shown,
            line=line,
        ) from None
    return data, Reader(shown, text)


def read_text(path: Path, shown: str, what: str) -> str:
    """A config or master file as text (UTF-8, a BOM allowed); OSError is the caller's.

    Bytes that are not UTF-8 are a ConfigError naming the line they are on.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"not UTF-8 text; expected a UTF-8 (or ASCII) {what}",
            path=shown,
            line=data[: error.start].count(b"\n") + 1,
            key="encoding",
        ) from None


class Reader:
    """Typed access to TOML values that turns mistakes into located ConfigErrors."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = locate_keys(text)

    def error(self, key_path: KeyPath, message: str) -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line(key_path), key=dotted(key_path))

    def line(self, key_path: KeyPath) -> int:
        for end in range(len(key_path), 0, -1):
            line = self.lines.get(key_path[:end])
            if line:
                return line
        return 0

    def table(self, value: Any, key_path: KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key_path, f"expected a table, got {describe(value)}")
        return value

    def unknown(self, table: dict[str, Any], key_path: KeyPath, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                choices = ", ".join(sorted(allowed))
                raise self.error((*key_path, key), f"unknown key; expected one of: {choices}")

    def get(
        self,
        table: dict[str, Any],
        key_path: KeyPath,
        key: str,
        kind: type[T] | tuple[type, ...],
        default: T,
        what: str,
    ) -> T:
        if key not in table:
            return default
        value = table[key]
        # bool is an int in Python; a number key must not accept true/false.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error((*key_path, key), f"expected {what}, got {describe(value)}")
        if not isinstance(value, kind):
            raise self.error((*key_path, key), f"expected {what}, got {describe(value)}")
        return value  # type: ignore[return-value]

    def choice(
        self,
        table: dict[str, Any],
        key_path: KeyPath,
        key: str,
        options: type[E],
        default: E | None,
        what: str,
    ) -> E:
        """One of an enum's values (None: the key is required); ``what`` names them all."""
        text = self.get(table, key_path, key, str, "" if default is None else default.value, what)
        try:
            return options(text)
        except ValueError:
            raise self.error((*key_path, key), f"expected {what}") from None

    def number(
        self,
        table: dict[str, Any],
        key_path: KeyPath,
        key: str,
        default: float,
        low: float,
        high: float,
        cast: Callable[[Any], T],
    ) -> T:
        value = self.get(table, key_path, key, (int, float), default, f"a number from {low} to {high}")
        if not low <= value <= high:
            raise self.error((*key_path, key), f"expected a number from {low} to {high}, got {value}")
        if cast is int and value != int(value):
            raise self.error((*key_path, key), f"expected a whole number from {low} to {high}, got {value}")
        return cast(value)


def parse_name(text: str) -> Name:
    """A domain name in presentation form (trailing dot optional) -> label tuple."""
    return name_from_dnspython(dns.name.from_text(text.strip().rstrip(".") + "."))


def host_name(reader: Reader, key_path: KeyPath, text: str) -> Name:
    try:
        return parse_name(text)
    except Exception as error:
        detail = str(error).rstrip(".")
        raise reader.error(
            key_path, f"{text!r} is not a host name ({detail}); expected e.g. ns1.example.com"
        ) from None


def alternatives(options: Iterable[str]) -> str:
    """The allowed values as a sentence lists them: "a or b", "a, b or c"."""
    *rest, last = options
    return f"{', '.join(rest)} or {last}" if rest else last


def describe(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def dotted(key_path: KeyPath) -> str:
    return ".".join(k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else f'"{k}"' for k in key_path)


# -- where each key is written: TOML parsers do not keep positions -------------------

_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEYS = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_KEYS})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN_RE = re.compile(rf"^\s*({_KEYS})\s*=")


def _split_keys(text: str) -> KeyPath:
    parts = re.findall(_KEY_PART, text)
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in parts)


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Map each table header and key to the line it is first written on."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            table = _split_keys(header.group(1))
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN_RE.match(line)
        if assign:
            lines.setdefault((*table, *_split_keys(assign.group(1))), number)
    return lines
