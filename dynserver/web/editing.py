"""Edits of the config file from the API and the dashboard: a definition as the file has
it, and one change at a time: If-Match, the operation, validation as at start-up, an
atomic write, the reload; the new ETag once the change is live.

The config file stays the one source of truth: a definition is read from the file (not
from the running config), and its ETag is the whole file's, so any change to the file
(by hand, or by another admin) makes an older ETag fail with 412.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dynserver.config.edit import Definition, Document, Editor
from dynserver.dns.names import fqdn
from dynserver.errors import ConfigError, RequestError
from dynserver.runtime import Runtime
from dynserver.web.schema import ErrorCode

log = logging.getLogger("dynserver.web")


class EditRefused(RequestError):
    """An edit (or a read of a definition) that cannot be done: its HTTP status, code,
    what went wrong, and the config key it is about (a form shows the message there)."""

    def __init__(self, status: int, error: ErrorCode, detail: str, key: str = "", reason: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.key = key  # the config key (dotted), when the error is about one
        self.reason = reason or detail  # what is wrong, without the file, line and key


@dataclass(frozen=True, slots=True)
class Applied:
    """An edit that is written and live."""

    document: Document  # the file as written: its text and new ETag
    created: bool  # the definition did not exist before (201)
    changes: tuple[str, ...]  # the reload's short diff


# A change of the file's text: the new text, and whether it created the definition.
Operation = Callable[[str], tuple[str, bool]]


class Editing:
    """Definitions of records, targets and monitors, read from and written to the config
    file of a runtime (Runtime.config_path) by dynserver.config.edit.Editor. The API and
    the pages share one, so its lock orders their edits."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.editor = Editor(runtime.config_path())

    def writable(self) -> str | None:
        """None when edits can be written, else why not (the pages say it)."""
        return self.editor.writable()

    def document(self) -> Document:
        try:
            return self.editor.read()
        except (OSError, ConfigError) as error:
            log.error("event=edit_failed step=read error=%r", str(error))
            raise EditRefused(
                500, ErrorCode.SERVER_ERROR, f"the config file cannot be read: {error}"
            ) from None

    # -- reads ----------------------------------------------------------------------
    # Each from the file as it is now, or from ``document`` (the text an edit wrote).

    def record(self, name: str, document: Document | None = None) -> tuple[Definition, str]:
        """A dynamic record's definition (with its targets) and the file's ETag."""
        document = document or self.document()
        found = self.editor.record(document.text, name)
        if found is None:
            raise EditRefused(
                404, ErrorCode.NOT_FOUND, f"the config file has no dynamic record {fqdn(name)!r}"
            )
        return found, document.etag

    def target(self, name: str, target: str, document: Document | None = None) -> tuple[Definition, str]:
        document = document or self.document()
        found = self.editor.target(document.text, name, target)
        if found is None:
            self.record(name, document)  # 404 for the record first
            raise EditRefused(
                404, ErrorCode.NOT_FOUND, f"{fqdn(name)} has no target {target!r} in the config file"
            )
        return found, document.etag

    def monitor(self, name: str, document: Document | None = None) -> tuple[Definition, str]:
        document = document or self.document()
        found = self.editor.monitor(document.text, name)
        if found is None:
            raise EditRefused(404, ErrorCode.NOT_FOUND, f"no monitor {name!r} in the config file")
        return found, document.etag

    def monitors(self) -> list[str]:
        """The monitors' names in the file (a form offers them)."""
        try:
            found = tomllib.loads(self.document().text).get("monitors", {})
        except tomllib.TOMLDecodeError:  # edited by hand into something else: no offer
            return []
        return list(found) if isinstance(found, dict) else []

    # -- changes --------------------------------------------------------------------

    async def put_record(self, name: str, fields: Definition, **by: Any) -> Applied:
        def operation(text: str) -> tuple[str, bool]:
            return self.editor.put_record(text, name, fields), self.editor.record(text, name) is None

        return await self.change(operation, **by)

    async def delete_record(self, name: str, **by: Any) -> Applied:
        def operation(text: str) -> tuple[str, bool]:
            self.record(name, Document(text, ""))
            return self.editor.delete_record(text, name), False

        return await self.change(operation, **by)

    async def put_target(self, name: str, target: str, fields: Definition, **by: Any) -> Applied:
        given = fields.get("name", target)
        if not isinstance(given, str) or given.lower() != target.lower():
            detail = f"the body names target {given!r} but the URL names {target!r}"
            raise EditRefused(409, ErrorCode.CONFLICT, detail, "name")

        def operation(text: str) -> tuple[str, bool]:
            self.record(name, Document(text, ""))
            created = self.editor.target(text, name, target) is None
            return self.editor.put_target(text, name, target, fields), created

        return await self.change(operation, **by)

    async def delete_target(self, name: str, target: str, **by: Any) -> Applied:
        def operation(text: str) -> tuple[str, bool]:
            self.target(name, target, Document(text, ""))
            return self.editor.delete_target(text, name, target), False

        return await self.change(operation, **by)

    async def put_monitor(self, name: str, fields: Definition, **by: Any) -> Applied:
        def operation(text: str) -> tuple[str, bool]:
            return self.editor.put_monitor(text, name, fields), self.editor.monitor(text, name) is None

        return await self.change(operation, **by)

    async def delete_monitor(self, name: str, **by: Any) -> Applied:
        def operation(text: str) -> tuple[str, bool]:
            self.monitor(name, Document(text, ""))
            return self.editor.delete_monitor(text, name), False

        return await self.change(operation, **by)

    async def change(self, operation: Operation, *, if_match: str | None, actor: str, via: str) -> Applied:
        """One edit, start to live: under the editor's lock (edits never interleave),
        the file as it is now must still be the one the client read (If-Match), the
        new text must load as at start-up, then it is written atomically and reloaded."""
        if if_match is None:
            detail = "send If-Match with the ETag of a GET, so no other change is silently lost"
            raise EditRefused(428, ErrorCode.PRECONDITION_REQUIRED, detail)
        async with self.editor.lock:
            why = self.editor.writable()
            if why is not None:
                raise EditRefused(409, ErrorCode.CONFLICT, f"editing is off: {why}")
            document = self.document()
            if not matches(if_match, document.etag):
                detail = (
                    f"the config file changed since it was read (its ETag is now {document.etag}); "
                    "read it again and repeat the change"
                )
                raise EditRefused(412, ErrorCode.PRECONDITION_FAILED, detail)
            try:
                text, created = operation(document.text)
                _, written = await self.editor.save(text)  # validated, then written
            except ConfigError as error:
                raise EditRefused(422, ErrorCode.INVALID, str(error), error.key, error.message) from None
            except OSError as error:
                log.error("event=edit_failed step=write error=%r", str(error))
                detail = f"the config file could not be written ({error}); nothing changed"
                raise EditRefused(500, ErrorCode.SERVER_ERROR, detail) from None
            # The runtime reads the file just written rather than being handed the Config:
            # Runtime.reload puts serve's --dns/--http/--database overrides on a config it
            # reads, not on one it is handed (which dropped a --http listener).
            outcome = await self.runtime.reload(actor=actor, via=via)
            if not outcome.ok:  # a master file changed meanwhile: the file is written, not live
                detail = "written, but the reload failed: " + "; ".join(outcome.errors)
                raise EditRefused(500, ErrorCode.SERVER_ERROR, detail)
            return Applied(document=written, created=created, changes=outcome.changes)


def matches(if_match: str, etag: str) -> bool:
    """If-Match against the current strong ETag (RFC 9110 13.1.1): one of a list, or
    "*" (any current file); a weak ETag never matches."""
    tags = [tag.strip() for tag in if_match.split(",")]
    return "*" in tags or etag in tags


# -- the dashboard's forms -------------------------------------------------------------

# Form fields whose text is a number in the file; the others are strings as typed.
NUMBERS = frozenset(
    {
        *("priority", "weight", "check_port", "port", "ttl", "min_up", "pending_ttl"),
        *("interval", "timeout", "retries", "consecutive_up", "consecutive_down", "failback_delay"),
    }
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def form_definition(
    form: Mapping[str, str], fields: Iterable[str], base: Mapping[str, Any] | None = None
) -> Definition:
    """``base`` (the definition as the file has it) with a form's fields: a filled field
    sets its key (a number for NUMBERS when it reads as one, else the text, for the
    loader to judge and name), an empty one removes it; keys the form does not show stay."""
    definition = dict(base or {})
    for name in fields:
        text = form.get(name, "").strip()
        if not text:
            definition.pop(name, None)
        elif name in NUMBERS:
            definition[name] = _number(text)
        else:
            definition[name] = text
    return definition


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def field_of(refused: EditRefused, fields: Collection[str]) -> str | None:
    """The form field a refusal is about, so the page shows the message next to it:
    the key's last part, else the field the reason names (quoted values aside: a path
    typed as "/path" must not point at the path field), else the value for a value the
    record type cannot take; None: the message goes above the form."""
    last = refused.key.rpartition(".")[2]
    if last in fields:
        return last
    # "is not a host name" is about the value, not the name field
    text = _QUOTED.sub("", refused.reason).replace("host name", "hostname")
    words = set(re.findall(r"[a-z_]+", text))
    for name in sorted(fields, key=len, reverse=True):
        if name in words:
            return name
    if "value" in fields and ("address" in words or "hostname" in words):
        return "value"
    return None
