"""Edits of the config file that keep it as it is written (tomlkit's round trip: comments,
order and layout), validated exactly as a start-up load is, and written atomically.

The operations are pure: the file's text in, the new text out. A caller holds ``lock``
while it reads, compares its ETag, validates, writes and reloads, so edits never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, InlineTable, Item, Table

from dynserver.config.loader import load_text
from dynserver.config.reader import KeyPath, dotted, parse_name
from dynserver.errors import ConfigError
from dynserver.model import Config
from dynserver.types import Name

Definition = dict[str, Any]
"""A record, target or monitor as the API carries it: its TOML keys, plain JSON values."""

_BOM = "\ufeff"
_LABEL_RE = re.compile(rb"[A-Za-z0-9_*-]{1,63}")
_STALE = 60.0  # seconds: a temporary file this old was left by a write that was killed


@dataclass(frozen=True)
class Document:
    """The config file as read or written."""

    text: str
    """Its text (UTF-8 decoded)."""
    etag: str
    """A strong ETag: the quoted SHA-256 (hex) of its bytes."""


def etag_of(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


class Editor:
    """The config file at ``path``: read, edited as text and written back whole."""

    def __init__(self, path: str | Path, environ: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self.environ = environ
        self.lock = asyncio.Lock()

    # -- the file ---------------------------------------------------------------------

    def read(self) -> Document:
        """The file now; OSError is the caller's, bytes that are not UTF-8 a ConfigError."""
        data = self.path.read_bytes()
        try:
            return Document(data.decode("utf-8"), etag_of(data))
        except UnicodeDecodeError as error:
            raise ConfigError(
                "not UTF-8 text; expected a UTF-8 (or ASCII) TOML file",
                path=str(self.path),
                line=data[: error.start].count(b"\n") + 1,
                key="encoding",
            ) from None

    def writable(self) -> str | None:
        """None when an edit can be written, else why not (editing is refused, nothing else)."""
        # A link is followed: the file it names is replaced and the link stays a link.
        target = self.path.resolve()
        if not target.is_file():
            return f"the config file {target} is not a regular file"
        if not os.access(target, os.W_OK):
            return f"the config file {target} is read-only for this process (uid {os.geteuid()})"
        if not os.access(target.parent, os.W_OK | os.X_OK):
            return (
                f"the folder {target.parent} is read-only for this process (uid {os.geteuid()}); "
                "an edit writes a temporary file there and renames it over the config file"
            )
        if str(target) in _mount_points():
            return (
                f"the config file {target} is a mount point (a file bind-mounted into a container?); "
                "an edit renames a new file over it, which a mount point refuses: mount its folder instead"
            )
        links = target.stat().st_nlink
        if links > 1:
            return f"the config file {target} has {links} hard links; an edit would replace it and break them"
        return None

    def validate(self, text: str) -> Config:
        """The config ``text`` gives, validated as a start-up load is, or a ConfigError."""
        return load_text(text, self.path, self.environ)

    def write(self, text: str) -> Document:
        """Replace the file with ``text`` atomically, keeping its mode (and owner if allowed).

        A temporary file in the same folder is written and fsynced, renamed over the file,
        and the folder fsynced: after a crash the file is the old text or the new, whole.
        OSError is the caller's; the temporary file is removed then.
        """
        target = self.path.resolve()
        data = text.encode("utf-8")
        before = target.stat()
        _remove_stale(target, time.time())
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fchmod(file.fileno(), stat.S_IMODE(before.st_mode))
                with contextlib.suppress(PermissionError):  # only root gives a file away
                    os.fchown(file.fileno(), before.st_uid, before.st_gid)
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return Document(text, etag_of(data))

    def commit(self, text: str) -> tuple[Config, Document]:
        """Validate ``text`` and write it: a ConfigError writes nothing. The Config is the
        one to reload (``runtime.reload(config, ...)``), the Document gives the new ETag."""
        config = self.validate(text)
        return config, self.write(text)

    async def save(self, text: str) -> tuple[Config, Document]:
        """``commit`` in a thread: master files read and an fsync must not stall the loop
        that answers DNS."""
        return await asyncio.to_thread(self.commit, text)

    # -- definitions, as the API shows them ---------------------------------------------

    def record(self, text: str, fqdn: str) -> Definition | None:
        """The dynamic record ``fqdn`` as written (targets included), or None."""
        doc = _parse(text)
        try:
            place = self._place(doc, fqdn)
        except ConfigError:
            return None
        return None if place.record is None else _plain(place.record)

    def target(self, text: str, fqdn: str, name: str) -> Definition | None:
        record = self.record(text, fqdn)
        targets = record.get("targets") if record else None
        index = _index(targets, name) if isinstance(targets, list) else None
        return None if index is None or targets is None else dict(targets[index])

    def monitor(self, text: str, name: str) -> Definition | None:
        monitors = _parse(text).get("monitors")
        found = monitors.get(name) if isinstance(monitors, dict) else None
        return _plain(found) if isinstance(found, dict) else None

    # -- operations: text in, new text out ------------------------------------------------

    def put_record(self, text: str, fqdn: str, definition: Mapping[str, Any]) -> str:
        """Create the record ``fqdn`` in the zone it belongs to, or replace its keys."""
        doc = _parse(text)
        place = self._place(doc, fqdn)
        key_path = place.key_path
        fields = self._clean(definition, key_path)
        if place.record is None:
            return self._insert(doc, text, key_path, fields, key_path[:2], None)
        _update(place.records, place.label, fields, targets=True)
        return _dump(text, doc)

    def delete_record(self, text: str, fqdn: str) -> str:
        doc = _parse(text)
        place = self._place(doc, fqdn)
        if place.record is None:
            raise self._error(place.key_path, f"no dynamic record {fqdn}")
        return _remove(text, doc, place.records, place.label, place.key_path)

    def put_target(self, text: str, fqdn: str, name: str, definition: Mapping[str, Any]) -> str:
        """Add the target ``name`` to the record ``fqdn``, or replace it (its line only)."""
        doc = _parse(text)
        place = self._existing(doc, fqdn)
        given = self._clean(definition, (*place.key_path, "targets"))
        # The name first, as the example configs write it; a different one renames the target.
        fields = {"name": given.get("name", name)} | given
        record = _plain(place.record)
        targets = list(record.get("targets") or [])
        index = _index(targets, name)
        if index is None:
            targets.append(fields)
        else:
            targets[index] = fields
        _update(place.records, place.label, {**record, "targets": targets}, targets=True)
        return _dump(text, doc)

    def delete_target(self, text: str, fqdn: str, name: str) -> str:
        doc = _parse(text)
        place = self._existing(doc, fqdn)
        record = _plain(place.record)
        targets = list(record.get("targets") or [])
        index = _index(targets, name)
        if index is None:
            raise self._error((*place.key_path, "targets"), f"no target {name!r} in {fqdn}")
        del targets[index]
        _update(place.records, place.label, {**record, "targets": targets}, targets=True)
        return _dump(text, doc)

    def put_monitor(self, text: str, name: str, definition: Mapping[str, Any]) -> str:
        """Create the monitor ``name`` (after the last one), or replace its keys."""
        doc = _parse(text)
        key_path = ("monitors", name)
        fields = self._clean(definition, key_path)
        monitors = doc.get("monitors")
        if isinstance(monitors, dict) and name in monitors:
            _update(monitors, name, fields, targets=False)
            return _dump(text, doc)
        return self._insert(doc, text, key_path, fields, ("monitors",), ("zones",))

    def delete_monitor(self, text: str, name: str) -> str:
        doc = _parse(text)
        monitors = doc.get("monitors")
        if not isinstance(monitors, dict) or name not in monitors:
            raise self._error(("monitors", name), f"no monitor named {name!r}")
        return _remove(text, doc, monitors, name, ("monitors", name))

    # -- helpers ----------------------------------------------------------------------------

    def _error(self, key_path: KeyPath, message: str) -> ConfigError:
        return ConfigError(message, path=str(self.path), key=dotted(key_path))

    def _place(self, doc: tomlkit.TOMLDocument, fqdn: str) -> _Place:
        """Where the record ``fqdn`` is, or would be: the deepest zone that holds the name."""
        try:
            name = _lower(parse_name(fqdn))
        except Exception:
            raise self._error(
                ("name",), f"{fqdn!r} is not a domain name; expected e.g. app.example.com"
            ) from None
        zones = doc.get("zones")
        best: tuple[str, Name] | None = None
        for zone_key in zones if isinstance(zones, dict) else ():
            origin = _name_or_none(zone_key)
            if origin is not None and _under(name, origin) and (best is None or len(origin) > len(best[1])):
                best = (zone_key, origin)
        if best is None or not isinstance(zones, dict) or not isinstance(zones[best[0]], dict):
            known = ", ".join(zones) if isinstance(zones, dict) else "none defined"
            raise self._error(("zones",), f"no zone holds {fqdn}; expected a name in one of: {known}")
        zone_key, origin = best
        records = zones[zone_key].get("records")
        if not isinstance(records, dict):
            records = tomlkit.table()
        for label in records:
            found = origin if label == "@" else _name_or_none(label)
            if found is not None and (found if label == "@" else found + origin) == name:
                return _Place(zone_key, label, records, records[label])
        relative = name[: len(name) - len(origin)]
        if not all(_LABEL_RE.fullmatch(label) for label in relative):
            raise self._error(("name",), f"{fqdn!r}: expected labels of letters, digits, '-' and '_'")
        return _Place(zone_key, b".".join(relative).decode("ascii") or "@", records, None)

    def _existing(self, doc: tomlkit.TOMLDocument, fqdn: str) -> _Place:
        place = self._place(doc, fqdn)
        if not isinstance(place.record, dict):
            raise self._error(place.key_path, f"no dynamic record {fqdn}; expected it created first")
        return place

    def _clean(self, definition: Any, key_path: KeyPath) -> Definition:
        """Plain TOML values of a definition; a None value is a key left out."""
        if not isinstance(definition, Mapping):
            raise self._error(key_path, "expected an object of keys and values")
        return {
            str(key): self._value(value, (*key_path, str(key)))
            for key, value in definition.items()
            if value is not None
        }

    def _value(self, value: Any, key_path: KeyPath) -> Any:
        if isinstance(value, Mapping):
            return self._clean(value, key_path)
        if isinstance(value, list):
            if any(item is None for item in value):
                raise self._error(key_path, "null in a list; TOML has no null")
            return [self._value(item, key_path) for item in value]
        if isinstance(value, bool | int | float | str):
            return value
        raise self._error(
            key_path, f"expected a string, number, boolean, list or table, got {type(value).__name__}"
        )

    def _insert(
        self,
        doc: tomlkit.TOMLDocument,
        text: str,
        key_path: KeyPath,
        fields: Definition,
        after: KeyPath,
        before: KeyPath | None,
    ) -> str:
        """A new table ``key_path``: written after the last table under ``after`` (else before
        the first under ``before``, else at the end), in the layout of the example configs."""
        parent: Any = doc
        depth = 0
        while depth < len(key_path) - 1 and isinstance(parent, dict) and not isinstance(parent, InlineTable):
            parent = parent.get(key_path[depth])
            depth += 1
        if isinstance(parent, InlineTable):  # a [header] cannot extend an inline table: a key can
            value: Any = fields
            for key in reversed(key_path[depth + 1 :]):
                value = {key: value}
            parent[key_path[depth]] = _item(_inline(value))
            return _dump(text, doc)
        newline = "\r\n" if "\r\n" in text else "\n"  # the file's line ends
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += newline
        sections = _sections(lines)
        under = [s for s in sections if s.path[: len(after)] == after]
        ahead = [s for s in sections if before and s.path[: len(before)] == before]
        block = _table_text(key_path, fields)
        if under:
            at, new = under[-1].content_end, "\n" + block
        elif ahead:
            at, new = ahead[0].lead, block + "\n"
        else:
            at, new = len(lines), ("\n" if lines and lines[-1].strip() else "") + block
        return "".join([*lines[:at], new.replace("\n", newline), *lines[at:]])


@dataclass(frozen=True)
class _Place:
    zone: str
    """The zone's key as written."""
    label: str
    """The record's key as written, or the one a new record gets."""
    records: Any
    """The zone's records table (a new empty one when it has none)."""
    record: Any
    """The record's table, or None."""

    @property
    def key_path(self) -> KeyPath:
        return ("zones", self.zone, "records", self.label)


def _mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[str]:
    """Where something is mounted (Linux; elsewhere nothing is known): the fifth field of
    each line, with its octal escapes (a space is \\040) undone."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return set()
    fields = [line.split(" ") for line in lines]
    unescape = re.compile(r"\\([0-7]{3})")
    return {unescape.sub(lambda m: chr(int(m.group(1), 8)), f[4]) for f in fields if len(f) > 4}


def _remove_stale(target: Path, now: float) -> None:
    """Temporary files of writes killed before their rename: never read, only untidy."""
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - stale.lstat().st_mtime > _STALE:
                stale.unlink()


# -- reading and writing TOML text ------------------------------------------------------


def _parse(text: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text.removeprefix(_BOM))
    except TOMLKitError as error:
        raise ConfigError(f"not valid TOML: {error}; expected TOML syntax (https://toml.io)") from None


def _dump(text: str, doc: tomlkit.TOMLDocument) -> str:
    return (_BOM if text.startswith(_BOM) else "") + doc.as_string()


def _plain(value: Any) -> Any:
    return value.unwrap() if isinstance(value, Item) else value


def _lower(name: Name) -> Name:
    return tuple(label.lower() for label in name)


def _name_or_none(text: str) -> Name | None:
    try:
        return _lower(parse_name(text))
    except Exception:
        return None


def _under(name: Name, origin: Name) -> bool:
    return len(name) >= len(origin) and name[len(name) - len(origin) :] == origin


def _index(targets: list[Any], name: str) -> int | None:
    """Target names are DNS labels: compared without case, as the loader does."""
    for index, target in enumerate(targets):
        if isinstance(target, dict) and str(target.get("name", "")).lower() == name.lower():
            return index
    return None


def _key(key: str) -> str:
    return tomlkit.key(key).as_string()


def _inline(value: Any) -> str:
    """A value as TOML text, tables inline and with the spaces the example configs use."""
    if isinstance(value, dict):
        pairs = ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items())
        return f"{{ {pairs} }}" if pairs else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    text: str = tomlkit.item(value).as_string()
    return text


def _targets_text(targets: list[Any], indent: str = "  ") -> str:
    """A record's targets one a line, as every example config writes them."""
    return "[\n" + "".join(f"{indent}{_inline(target)},\n" for target in targets) + "]"


def _item(text: str) -> Item:
    # The Item itself (``item``, not ``[]``: indexing unwraps a boolean to a plain bool),
    # with its line end, as a key of a table needs.
    value = tomlkit.parse(f"x = {text}\n").item("x")
    assert isinstance(value, Item)
    return value


def _table_text(key_path: KeyPath, fields: Definition) -> str:
    lines = ["[" + ".".join(_key(k) for k in key_path) + "]"]
    for key, value in sorted(fields.items(), key=lambda pair: pair[0] == "targets"):
        lines.append(f"{_key(key)} = {_value_text(key, value)}")
    return "\n".join(lines) + "\n"


def _value_text(key: str, value: Any) -> str:
    if key == "targets" and isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
        return _targets_text(value)
    return _inline(value)


def _ordered(new: Definition, old: Any) -> Definition:
    """The new keys in the order already written, then the others: a smaller diff."""
    written = [key for key in old if key in new] if isinstance(old, dict) else []
    return {key: new[key] for key in [*written, *(key for key in new if key not in written)]}


def _update(parent: Any, key: str | int, fields: Definition, *, targets: bool) -> None:
    """Replace the table ``parent[key]`` by ``fields``, touching only the keys that change."""
    current = parent[key]
    if not isinstance(current, Table):  # an inline table is one line: written again
        merged = _ordered(fields, current)
        if _inline(merged) != _inline(_plain(current)):
            parent[key] = _item(_inline(merged))
        return
    for old in [k for k in current if k not in fields]:
        del current[old]
    for name, value in fields.items():
        if name in current and _inline(_plain(current[name])) == _inline(value):
            continue
        if targets and name == "targets" and name in current and _merge_targets(current[name], value):
            continue
        current[name] = _item(_value_text(name, value) if targets else _inline(value))


def _merge_targets(array: Any, targets: Any) -> bool:
    """Change a targets list item by item (matched by name), so the other lines and
    their comments stay as written; False when it is not a list of tables to merge."""
    if not isinstance(array, Array | AoT) or not isinstance(targets, list):
        return False
    if not all(isinstance(item, dict) for item in [*array, *targets]):
        return False
    old = [_plain(item) for item in array]
    used: set[int] = set()
    added = []
    for target in targets:
        index = _index(old, str(target.get("name", "")))
        if index is None or index in used:
            added.append(target)
            continue
        used.add(index)
        if isinstance(array, AoT):
            _update(array, index, target, targets=False)
        elif _inline(_ordered(target, old[index])) != _inline(old[index]):
            array[index] = _item(_inline(_ordered(target, old[index])))
    for index in sorted(set(range(len(old))) - used, reverse=True):
        del array[index]
    for target in added:
        if isinstance(array, AoT):
            array.append(_aot_table(target, array[-1] if len(array) else None))
        elif "\n" in array.as_string():
            indent = re.search(r"\n([ \t]*)[^\s\]]", array.as_string())
            array.add_line(_item(_inline(target)), indent=indent.group(1) if indent else "  ")
        else:
            array.append(_item(_inline(target)))
    return True


def _aot_table(target: Definition, like: Table | None) -> Table:
    """A new [[...]] table, with the blank line after it that the one before it has."""
    table = tomlkit.table()
    for key, value in target.items():
        table[key] = _item(_inline(value))
    body = like.value.body if like is not None else []
    if body and body[-1][0] is None and body[-1][1].as_string().count("\n") > 0:
        table.add(tomlkit.nl())
    return table


def _remove(text: str, doc: tomlkit.TOMLDocument, parent: Any, key: str, key_path: KeyPath) -> str:
    """Remove a table: its [header] sections with the comment lines just above them, or,
    when it has no header of its own, its key."""
    lines = text.splitlines(keepends=True)
    mine = [s for s in _sections(lines) if s.path[: len(key_path)] == key_path]
    if not mine:
        del parent[key]
        return _dump(text, doc)
    at_end = mine[-1].end == len(lines)
    for section in reversed(mine):
        del lines[section.lead : section.after]
    while at_end and len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # no blank lines left at the end of the file
    return "".join(lines)


# -- where the [tables] are: tomlkit keeps no positions ---------------------------------


@dataclass(frozen=True)
class _Section:
    path: KeyPath
    lead: int
    """The first of the comment lines just above the header (the header when none)."""
    content_end: int
    """After its last line that is neither blank nor a comment."""
    end: int
    """Where the next section's lead starts (or the end of the text)."""
    after: int
    """After the blank lines that follow its content: a comment after a blank line is
    about what follows, and stays when the section is removed."""


_HEADER_RE = re.compile(r"^[ \t]*\[\[?(?P<keys>[^\[\]]*(?:\"[^\"]*\"[^\[\]]*)*)\]\]?[ \t]*(?:#.*)?$")
_NOTHING_RE = re.compile(r"^[ \t]*(?:#.*)?$")


def _sections(lines: list[str]) -> list[_Section]:
    headers: list[tuple[int, KeyPath]] = []
    for number, line in enumerate(lines):
        match = _HEADER_RE.match(line.rstrip("\r\n"))
        path = _header_path(match.group("keys")) if match else None
        if path:
            headers.append((number, path))
    leads = []
    for index, (number, _) in enumerate(headers):
        floor = headers[index - 1][0] + 1 if index else 0
        lead = number
        while lead > floor and lines[lead - 1].lstrip().startswith("#"):
            lead -= 1
        leads.append(lead)
    sections = []
    for index, (number, path) in enumerate(headers):
        end = leads[index + 1] if index + 1 < len(headers) else len(lines)
        content_end = end
        while content_end > number + 1 and _NOTHING_RE.match(lines[content_end - 1].rstrip("\r\n")):
            content_end -= 1
        after = content_end
        while after < end and not lines[after].strip():
            after += 1
        sections.append(_Section(path, leads[index], content_end, end, after))
    return sections


def _header_path(keys: str) -> KeyPath | None:
    """The key path of a [header]'s keys, read by tomlkit itself (quotes, escapes, dots)."""
    try:
        value: Any = tomlkit.parse(f"{keys} = 0").unwrap()
    except TOMLKitError:
        return None  # a line of an array, not a header
    path: list[str] = []
    while isinstance(value, dict) and len(value) == 1:
        key, value = next(iter(value.items()))
        path.append(key)
    return tuple(path) if value == 0 else None
