"""What a reload changes, in words: the short diff that events, logs and the reload
command show ("record app.dyn.example.test A: target charlie added"). Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from dynserver.dns.names import name_text
from dynserver.model import Config, DynamicRecord, ZoneConfig

T = TypeVar("T")
# Values longer than this are shown as "changed" only (rrsets, long lists).
_SHOWN = 60


def describe(old: Config, new: Config) -> list[str]:
    """Every difference between two configs that a reload applies, one line each."""
    out: list[str] = []
    old_zones = {z.name: z for z in old.zones}
    new_zones = {z.name: z for z in new.zones}
    for origin in new_zones.keys() - old_zones.keys():
        out.append(f"zone {_name(origin)} added")
    for origin in old_zones.keys() - new_zones.keys():
        out.append(f"zone {_name(origin)} removed")
    for origin in [o for o in new_zones if o in old_zones]:
        out += _zone(old_zones[origin], new_zones[origin])
    out += _keyed("monitor", {m.name: m for m in old.monitors}, {m.name: m for m in new.monitors}, _fields)
    if (old.server.rrl, old.server.cookie_secret) != (new.server.rrl, new.server.cookie_secret):
        out.append("[server.rrl] or cookie_secret: changed (applies at the next start)")
    if old.server.checks_in_flight != new.server.checks_in_flight:
        out.append(
            f"[server] checks_in_flight: {old.server.checks_in_flight} -> {new.server.checks_in_flight} "
            "(applies at the next start)"
        )
    for section in ("server", "notify", "web", "locations", "keys", "mirrors"):
        before, after = getattr(old, section), getattr(new, section)
        if before != after:
            out.append(f"[{_section(section)}] changed")
    if old.demo != new.demo:
        out.append("[demo] changed (applies at the next start)")
    if old.database != new.database:
        out.append("database: changed (applies at the next start)")
    if old.history_hours != new.history_hours:
        out.append(f"history_hours: {old.history_hours} -> {new.history_hours}")
    return out


def _zone(old: ZoneConfig, new: ZoneConfig) -> list[str]:
    out = []
    zone = _name(new.name)
    if old.rrsets != new.rrsets:
        out.append(f"zone {zone}: static records changed")
    if old.transfer != new.transfer:
        out.append(f"zone {zone}: transfer settings changed")
    old_records = {_record_key(r): r for r in old.records}
    new_records = {_record_key(r): r for r in new.records}
    out += _keyed("record", old_records, new_records, _record)
    return out


def _record(label: str, old: DynamicRecord, new: DynamicRecord) -> list[str]:
    out = _fields(label, old, new, skip={"targets"})
    old_targets = {t.name: t for t in old.targets}
    new_targets = {t.name: t for t in new.targets}
    return out + _keyed(f"{label}: target", old_targets, new_targets, _fields)


def _keyed(
    kind: str,
    old: Mapping[str, T],
    new: Mapping[str, T],
    changed: Callable[[str, T, T], list[str]],
) -> list[str]:
    """Added, removed, and (through ``changed``) changed items, labelled 'KIND KEY'."""
    out = [f"{kind} {key} added" for key in new if key not in old]
    out += [f"{kind} {key} removed" for key in old if key not in new]
    for key in new:
        if key in old and old[key] != new[key]:
            out += changed(f"{kind} {key}", old[key], new[key])
    return out


def _fields(label: str, old: Any, new: Any, skip: Iterable[str] = ()) -> list[str]:
    """'monitor web: interval 10.0 -> 5.0' per changed field of two dataclasses."""
    out = []
    for field in dataclasses.fields(old):
        if field.name in skip or not field.compare:  # derived (a record's by_name)
            continue
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before != after:
            out.append(f"{label}: {field.name} {_shown(before)} -> {_shown(after)}")
    return out


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], bytes):
        value = name_text(value)  # a domain name
    text = "none" if value is None else str(value)
    return text if len(text) <= _SHOWN else "(changed)"


def _record_key(record: DynamicRecord) -> str:
    return f"{_name(record.name)} {record.type}"


def _name(name: tuple[bytes, ...]) -> str:
    return name_text(name) or "."


def _section(name: str) -> str:
    return {"notify": "notifications"}.get(name, name)
