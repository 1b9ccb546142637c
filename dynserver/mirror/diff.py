"""The provider diff: the records a provider has for one name and type, and the desired
set, in; the creates, patches and deletes that make them equal, out. Pure: no I/O, no
clock, the same inputs always give the same plan.

Why patches rather than delete + create: a failover from 192.0.2.1 to 192.0.2.2 is one
PATCH of the existing record, so there is never a moment with no record (or two), the
record keeps its id, and what the user set on it (a comment, tags) survives. The same
rule adopts a record the user created by hand: it is reused, never duplicated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dynserver.mirror.base import Desired


@dataclass(frozen=True, slots=True)
class Existing:
    """A record the provider has now (content canonical: see base.canonical)."""

    id: str
    content: str
    ttl: int
    proxied: bool = False
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Create:
    content: str
    ttl: int
    proxied: bool
    comment: str | None = None

    def body(self, name: str, rtype: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": rtype,
            "name": name,
            "content": self.content,
            "ttl": self.ttl,
            "proxied": self.proxied,
        }
        if self.comment is not None:
            body["comment"] = self.comment
        return body


@dataclass(frozen=True, slots=True)
class Patch:
    id: str
    previous: str  # the content before, for the description
    fields: tuple[tuple[str, Any], ...]  # only what changes: content, ttl, proxied, comment

    def body(self) -> dict[str, Any]:
        return dict(self.fields)


@dataclass(frozen=True, slots=True)
class Delete:
    id: str
    content: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Applied in this order (Cloudflare's batch endpoint does the same): deletes first,
    so a CNAME or a duplicate is gone before anything takes its place."""

    deletes: tuple[Delete, ...] = ()
    patches: tuple[Patch, ...] = ()
    creates: tuple[Create, ...] = ()

    @property
    def operations(self) -> int:
        return len(self.deletes) + len(self.patches) + len(self.creates)

    def describe(self) -> tuple[str, ...]:
        """One short line per operation, for events, logs and the dashboard."""
        lines = [f"delete {d.content}" for d in self.deletes]
        for patch in self.patches:
            fields = dict(patch.fields)
            content = fields.pop("content", None)
            extra = " ".join(f"{k}={_show(v)}" for k, v in fields.items())
            if content is not None:
                lines.append(f"patch {patch.previous} -> {content}" + (f" ({extra})" if extra else ""))
            else:
                lines.append(f"patch {patch.previous}: {extra}")
        lines += [f"create {c.content}" for c in self.creates]
        return tuple(lines)


def plan(existing: Sequence[Existing], desired: Desired) -> Plan:
    """What to do so that ``existing`` holds exactly ``desired``.

    Records whose content is wanted are kept (patched only for TTL, proxied or comment);
    records whose content is not wanted are patched to a missing value while there is
    one, then deleted; values still missing are created. A duplicate of a wanted value
    is treated as unwanted. Ties are broken by content, then id, so the plan is stable
    whatever order the provider listed the records in."""
    wanted = list(desired.values)
    kept: dict[str, Existing] = {}
    for value in wanted:
        same = [e for e in existing if e.content == value]
        if same:
            kept[value] = min(same, key=lambda e: (len(_changes(e, desired, None)), e.id))
    kept_ids = {e.id for e in kept.values()}
    unwanted = sorted((e for e in existing if e.id not in kept_ids), key=lambda e: (e.content, e.id))
    missing = [v for v in wanted if v not in kept]

    patches = []
    for value in sorted(kept):
        record = kept[value]
        changes = _changes(record, desired, None)
        if changes:
            patches.append(Patch(record.id, record.content, changes))
    for record, value in zip(unwanted, missing, strict=False):
        patches.append(Patch(record.id, record.content, _changes(record, desired, value)))
    deletes = tuple(Delete(e.id, e.content) for e in unwanted[len(missing) :])
    proxied = bool(desired.proxied)
    creates = tuple(
        Create(value, 1 if proxied else desired.ttl, proxied, desired.comment)
        for value in missing[len(unwanted) :]
    )
    return Plan(deletes=deletes, patches=tuple(patches), creates=creates)


def _changes(record: Existing, desired: Desired, content: str | None) -> tuple[tuple[str, Any], ...]:
    """The fields of ``record`` to change; ``content``: a new value for it as well."""
    fields: list[tuple[str, Any]] = []
    if content is not None and content != record.content:
        fields.append(("content", content))
    proxied = record.proxied if desired.proxied is None else desired.proxied
    if desired.proxied is not None and desired.proxied != record.proxied:
        fields.append(("proxied", desired.proxied))
    # A proxied record's TTL is Cloudflare's (shown as 1, automatic): never fought over.
    if not proxied and record.ttl != desired.ttl:
        fields.append(("ttl", desired.ttl))
    if desired.comment is not None and desired.comment != (record.comment or ""):
        fields.append(("comment", desired.comment))
    return tuple(fields)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)
