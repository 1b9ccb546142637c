"""[zones.NAME.records.NAME]: dynamic records and their targets."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from dynserver.config.mirrors import Mirrors, mirror_records
from dynserver.config.monitors import http_valid
from dynserver.config.reader import KeyPath, Reader, alternatives, parse_name
from dynserver.dns import wire
from dynserver.dns.zone import RRset
from dynserver.health import http
from dynserver.health.windows import MaintenanceWindow, parse_window
from dynserver.model import DynamicRecord, Fallback, Monitor, Order, Policy, Target
from dynserver.types import RECORD_TYPES, Name

_RECORD_KEYS = {
    *("type", "monitor", "ttl", "targets", "policy", "fallback", "min_up", "pending_ttl", "mirror"),
    *("maintenance_windows", "require", "order"),
}
_TARGET_KEYS = {
    *("name", "value", "priority", "weight", "maintenance"),
    *("host", "port", "path"),  # the check's overrides of its monitor
    *("check_address", "check_port"),  # what the check connects to, when not the value
    *("maintenance_windows", "monitor", "require"),  # combined checks: the target's own
}
MAX_WEIGHT = 1000  # a share of first places: 1000 to 1 is already all but always first
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def read_records(
    reader: Reader,
    raw: Any,
    zone_path: KeyPath,
    origin: Name,
    monitors: dict[str, Monitor],
    static: list[RRset],
    mirrors: Mirrors | None = None,
) -> tuple[DynamicRecord, ...]:
    table = reader.table(raw, (*zone_path, "records"))
    static_names = {rrset.name: rrset for rrset in static}
    cuts = {rrset.name for rrset in static if rrset.rtype == wire.TYPE_NS and rrset.name != origin}
    result = []
    for relative, record_raw in table.items():
        path: KeyPath = (*zone_path, "records", relative)
        r = reader.table(record_raw, path)
        reader.unknown(r, path, _RECORD_KEYS)
        try:
            name = origin if relative == "@" else (*parse_name(relative), *origin)
        except Exception as error:
            raise reader.error(path, f"not a valid name: {error}") from None
        if name in static_names:
            raise reader.error(
                path, "this name also has records in the master file; expected it in one place"
            )
        if any(name[len(name) - len(cut) :] == cut for cut in cuts):
            raise reader.error(path, "this name is at or below a delegation in the master file")
        kind = reader.get(r, path, "type", str, "A", "A, AAAA or CNAME").upper()
        if kind not in RECORD_TYPES:
            raise reader.error((*path, "type"), "expected A, AAAA or CNAME")
        if kind == "CNAME" and name == origin:
            raise reader.error((*path, "type"), "a CNAME cannot be at the zone apex (it has SOA and NS)")
        named = _monitor_names(reader, (*path, "monitor"), r.get("monitor"), monitors)
        require = _require(reader, (*path, "require"), r.get("require"), named)
        policy = reader.choice(r, path, "policy", Policy, Policy.FAILOVER, alternatives(Policy))
        fallback = reader.choice(r, path, "fallback", Fallback, Fallback.PREFERRED, alternatives(Fallback))
        order = reader.choice(r, path, "order", Order, Order.ROTATE, alternatives(Order))
        if kind == "CNAME" and "order" in r:
            raise reader.error(
                (*path, "order"), "a CNAME answers one target; expected order on A or AAAA records"
            )
        ttl = reader.number(r, path, "ttl", 60, 0, 2**31 - 1, int)
        pending_ttl = r.get("pending_ttl")
        if pending_ttl is not None:
            pending_ttl = reader.number(r, path, "pending_ttl", 0, 0, 2**31 - 1, int)
        targets = _targets(reader, r.get("targets"), (*path, "targets"), kind, monitors, named)
        for target in targets if kind != "CNAME" else ():
            if (target.name.encode(), *name) in static_names:
                raise reader.error(
                    (*path, "targets"),
                    f"target {target.name!r}: {target.name}.{relative} also has records in the master "
                    "file; that name answers the target's address",
                )
        result.append(
            DynamicRecord(
                zone=origin,
                name=name,
                type=kind,
                ttl=ttl,
                targets=targets,
                monitor=named[0] if named else None,
                monitors=named if len(named) > 1 else (),
                require=require,
                policy=policy,
                fallback=fallback,
                min_up=reader.number(r, path, "min_up", 1, 1, 1000, int),
                order=order,
                pending_ttl=pending_ttl,
                mirror=mirror_records(reader, r, path, kind, ttl, mirrors or Mirrors()),
                maintenance_windows=read_windows(
                    reader, (*path, "maintenance_windows"), r.get("maintenance_windows", [])
                ),
            )
        )
    return tuple(result)


def _monitor_names(
    reader: Reader, where: KeyPath, raw: Any, monitors: dict[str, Monitor], who: str = ""
) -> tuple[str, ...]:
    """monitor = "web" or ["web", "db"] (combined checks): known monitors, each once."""
    if raw is None:
        return ()
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise reader.error(
            where, f'{who}expected a monitor name or a list of them, e.g. "web" or ["web", "db"]'
        )
    known = ", ".join(sorted(monitors)) or "none defined"
    for name in names:
        if name not in monitors:
            raise reader.error(where, f"{who}no monitor named {name!r}; expected one of: {known}")
    if len(set(names)) != len(names):
        raise reader.error(where, f"{who}a monitor is named twice; expected each once")
    return tuple(names)


def _require(reader: Reader, where: KeyPath, raw: Any, names: tuple[str, ...], who: str = "") -> int | None:
    """require = "all" (None), "any" (1) or N (at least N of the monitors named)."""
    if raw is None or raw == "all":
        return None
    if raw == "any":
        return 1
    count = len(names)
    if not names:
        raise reader.error(where, f"{who}require needs monitors to combine; expected a monitor beside it")
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise reader.error(where, f'{who}expected "all", "any" or a whole number from 1 to {count}')
    if not 1 <= raw <= count:
        raise reader.error(
            where, f"{who}expected a whole number from 1 to {count} (the monitors named), got {raw}"
        )
    return raw


def _targets(
    reader: Reader,
    raw: Any,
    path: KeyPath,
    kind: str,
    monitors: dict[str, Monitor] | None = None,
    record_monitors: tuple[str, ...] = (),
) -> tuple[Target, ...]:
    if not isinstance(raw, list) or not raw:
        raise reader.error(
            path, 'expected a list of targets, e.g. [{ name = "charlie", value = "192.0.2.1" }]'
        )
    targets = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise reader.error(path, f"target {index + 1}: expected a table {{ name = ..., value = ... }}")
        for key in item:
            if key not in _TARGET_KEYS:
                raise reader.error(
                    path,
                    f"target {index + 1}: unknown key {key!r}; "
                    f"expected one of: {', '.join(sorted(_TARGET_KEYS))}",
                )
        name = item.get("name")
        if not isinstance(name, str) or not _LABEL_RE.match(name):
            raise reader.error(
                path, f"target {index + 1}: name {name!r} must be a DNS label such as 'charlie'"
            )
        if name.lower() in seen:
            raise reader.error(path, f"target {name!r} appears twice; names must be unique in a record")
        seen.add(name.lower())
        value = item.get("value")
        if value is not None:
            value = _target_value(reader, path, name, value, kind)
        priority = item.get("priority", 1)
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 65535:
            raise reader.error(path, f"target {name!r}: priority must be a whole number 0-65535")
        weight = item.get("weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= MAX_WEIGHT:
            raise reader.error(
                path,
                f"target {name!r}: weight {weight!r} is not a whole number 1-{MAX_WEIGHT}; "
                "expected its share of first places, such as 3",
            )
        if kind == "CNAME" and "weight" in item:
            raise reader.error(
                path, f"target {name!r}: a CNAME answers one target; expected weight on A or AAAA records"
            )
        if "port" in item and "check_port" in item:
            raise reader.error(
                path,
                f"target {name!r}: port and check_port are one setting; expected one of them",
            )
        port_key = "check_port" if "check_port" in item else "port"
        port = item.get(port_key)
        if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
            raise reader.error(path, f"target {name!r}: {port_key} must be 1-65535; expected a port number")
        check_address = item.get("check_address")
        if check_address is not None:
            check_address = _check_address(reader, path, name, check_address)
        for key in ("host", "path"):
            if key in item and not isinstance(item[key], str):
                raise reader.error(path, f"target {name!r}: {key} must be a string")
        if "host" in item:
            problem = http.header_problem("Host", item["host"])
            http_valid(reader, path, problem and f"target {name!r}: {problem}")
        if "path" in item:
            problem = http.path_problem(item["path"])
            http_valid(reader, path, problem and f"target {name!r}: {problem}")
        maintenance = item.get("maintenance", False)
        if not isinstance(maintenance, bool):
            raise reader.error(path, f"target {name!r}: maintenance must be true or false")
        windows = read_windows(reader, path, item.get("maintenance_windows", []), f"target {name!r}: ")
        who = f"target {name!r}: "
        own = (
            _monitor_names(reader, path, item["monitor"], monitors or {}, who) if "monitor" in item else None
        )
        names = own if own is not None else record_monitors
        require = _require(reader, path, item.get("require"), names, who) if "require" in item else None
        targets.append(
            Target(
                name=name.lower(),
                value=value,
                priority=priority,
                weight=weight,
                maintenance=maintenance,
                host=item.get("host"),
                port=port,
                path=item.get("path"),
                check_address=check_address,
                maintenance_windows=windows,
                monitors=own,
                require=require,
            )
        )
    return tuple(targets)


def read_windows(reader: Reader, path: KeyPath, raw: Any, who: str = "") -> tuple[MaintenanceWindow, ...]:
    """maintenance_windows = [...] (health/windows.py), each checked; located at ``path``."""
    if not isinstance(raw, list):
        raise reader.error(
            path,
            f"{who}maintenance_windows must be a list of windows; "
            'expected e.g. [{ cron = "0 2 * * *", duration = 3600 }]',
        )
    windows = []
    for index, item in enumerate(raw):
        try:
            windows.append(parse_window(item))
        except ValueError as error:
            raise reader.error(path, f"{who}maintenance window {index + 1}: {error}") from None
    return tuple(windows)


def _check_address(reader: Reader, path: KeyPath, name: str, value: Any) -> str:
    """The address the probe connects to instead of the value: an IP address of either
    family (a sidecar may answer IPv4 for an AAAA record), for CNAME records too."""
    if not isinstance(value, str):
        raise reader.error(path, f"target {name!r}: check_address must be a string; expected an IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise reader.error(
            path,
            f'target {name!r}: check_address {value!r} is not an IP address; expected one such as "10.0.0.5"',
        ) from None


def _target_value(reader: Reader, path: KeyPath, name: str, value: Any, kind: str) -> str:
    if not isinstance(value, str):
        raise reader.error(path, f"target {name!r}: value must be a string")
    if kind == "CNAME":
        try:
            return wire.name_to_text(parse_name(value))
        except Exception:
            raise reader.error(path, f"target {name!r}: {value!r} is not a host name") from None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise reader.error(path, f"target {name!r}: {value!r} is not an IP address") from None
    if (kind == "A") != (address.version == 4):
        expected = "an IPv4 address" if kind == "A" else "an IPv6 address"
        raise reader.error(path, f"target {name!r}: {value!r} is not {expected} (record type {kind})")
    return str(address)
