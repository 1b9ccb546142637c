"""The read model of records and targets, shared by the REST API and the HTML pages, so
both always show the same thing."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from dynserver.dns import wire
from dynserver.health.engine import RecordKey, target_key
from dynserver.model import DynamicRecord
from dynserver.update.service import Updates
from dynserver.update.targets import fqdn, record_text

if TYPE_CHECKING:
    from dynserver.app import App


def wall_offset() -> float:
    """Engine times are the event loop's clock: this turns them into Unix time."""
    return time.time() - asyncio.get_running_loop().time()


def target_view(app: App, updates: Updates, record: DynamicRecord, name: str) -> dict[str, Any]:
    """One target as the API and the pages show it (times are Unix seconds)."""
    key = target_key(record, next(t for t in record.targets if t.name == name))
    configured = next(t for t in record.targets if t.name == name)
    state = app.engine.states[key]
    offset = wall_offset()
    last = state.last_result
    return {
        "name": name,
        "hostname": updates.targets.hostname(key),
        "value": app.engine.values[key],
        "configured_value": configured.value,
        "value_set_at": app.value_set_at.get(key),
        "priority": configured.priority,
        "health": state.health.value,
        "observed": state.observed.value,
        "maintenance": state.maintenance,
        "since": state.since + offset if state.since else None,
        "last_result": None
        if last is None
        else {
            "ok": last.ok,
            "reason": last.reason,
            "at": last.at + offset,
            "latency": last.latency,
        },
    }


def record_view(app: App, updates: Updates, record: DynamicRecord) -> dict[str, Any]:
    """A record, its answer and why, and its targets: shared by the API and the pages."""
    key: RecordKey = (record.name, record.type)
    decision = app.engine.decisions[key]
    return {
        "name": record_text(record),
        "zone": fqdn(wire.name_to_text(record.zone)),
        "type": record.type,
        "ttl": record.ttl,
        "monitor": record.monitor,
        "policy": record.policy,
        "fallback": record.fallback,
        "answer": {
            "values": list(decision.values),
            "targets": list(decision.targets),
            "reason": decision.reason,
            "priority": decision.priority,
            "ttl": app.engine.ttl(key),
        },
        "targets": [target_view(app, updates, record, t.name) for t in record.targets],
    }
