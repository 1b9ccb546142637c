"""The read model of records and targets, shared by the REST API and the HTML pages, so
both always show the same thing: the API's typed bodies (dynserver.web.schema), and the
same as plain dicts for the pages' templates."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from dynserver import propagation
from dynserver.dns import wire
from dynserver.dns.names import name_text
from dynserver.health.engine import target_key
from dynserver.health.windows import MaintenanceWindow
from dynserver.mirror.worker import MirrorState, MirrorStatus
from dynserver.model import DynamicRecord
from dynserver.runtime import Runtime
from dynserver.types import RecordKey, TargetKey
from dynserver.update.service import Updates
from dynserver.update.targets import record_text
from dynserver.web import schema


def wall_offset() -> float:
    """Engine times are the event loop's clock: this turns them into Unix time."""
    return time.time() - asyncio.get_running_loop().time()


def target_body(runtime: Runtime, updates: Updates, record: DynamicRecord, name: str) -> schema.Target:
    """One target as the API and the pages show it (times are Unix seconds)."""
    configured = record.target(name)
    key = target_key(record, configured)
    state = runtime.target_state(key)
    offset = wall_offset()
    last = state.last_result
    locations, vote = target_vote(runtime, key)
    return schema.Target(
        name=name,
        hostname=updates.targets.hostname(key),
        value=runtime.value(key),
        configured_value=configured.value,
        check_address=configured.check_address,
        value_set_at=runtime.value_set_at(key),
        priority=configured.priority,
        health=state.health,
        observed=state.observed,
        maintenance=state.maintenance,
        since=state.since + offset if state.since else None,
        last_result=None
        if last is None
        else schema.LastResult(ok=last.ok, reason=last.reason, at=last.at + offset, latency=last.latency),
        locations=locations,
        vote=vote,
        maintenance_windows=_windows(record.maintenance_windows + configured.maintenance_windows),
        **_monitors(runtime, key, offset),
        forced=_forced(runtime, key),
    )


def _forced(runtime: Runtime, key: TargetKey) -> schema.Forced | msgspec.UnsetType:
    forcing = runtime.forcing(key)
    if forcing is None:
        return msgspec.UNSET
    state = schema.ForcedState(forcing.state.value)
    return schema.Forced(state, forcing.actor, forcing.at, forcing.until, forcing.reason)


def _monitors(runtime: Runtime, key: TargetKey, offset: float) -> dict[str, Any]:
    """Combined checks: each monitor's own state and how many must be up; nothing (the
    fields stay absent) for a target with one monitor or none."""
    states = runtime.monitor_states(key)
    if not states:
        return {}
    monitors = []
    for name, state in states:
        last = state.last_result
        monitors.append(
            schema.MonitorState(
                monitor=name,
                health=state.observed,
                since=state.since + offset if state.since else None,
                last_result=None
                if last is None
                else schema.LastResult(
                    ok=last.ok, reason=last.reason, at=last.at + offset, latency=last.latency
                ),
            )
        )
    return {"monitors": monitors, "require": runtime.monitors_required(key)}


def _windows(windows: tuple[MaintenanceWindow, ...]) -> list[schema.Window] | msgspec.UnsetType:
    """A target's maintenance windows now; unset (absent) when it has none."""
    if not windows:
        return msgspec.UNSET
    now = time.time()
    out = []
    for window in windows:
        change = window.next_change(now)
        out.append(schema.Window(window.text, window.active(now), None if change == float("inf") else change))
    return out


def target_vote(
    runtime: Runtime, key: TargetKey
) -> tuple[list[schema.TargetLocation] | msgspec.UnsetType, schema.Vote | msgspec.UnsetType]:
    """What each location sees of a target and their vote; both unset (absent from the
    body) without a [locations] table, so bodies stay what they were."""
    if runtime.locations_config() is None:
        return msgspec.UNSET, msgspec.UNSET
    locations = []
    for view in runtime.target_locations(key):
        last = view.last_result
        locations.append(
            schema.TargetLocation(
                name=view.name,
                health=view.health,
                fresh=view.fresh,
                excluded=view.excluded,
                last_result=None
                if last is None
                else schema.LastResult(
                    ok=last.ok, reason=last.reason, at=runtime.wall(last.at), latency=last.latency
                ),
            )
        )
    tally = runtime.target_vote(key)
    vote = schema.Vote(up=tally.up, down=tally.down, fresh=tally.fresh, total=tally.total, need=tally.need)
    return locations, vote


def location_list(runtime: Runtime) -> schema.LocationList:
    """Every location and how it is doing: GET /api/v1/locations and the agents page."""
    settings = runtime.locations_config()
    return schema.LocationList(
        quorum=settings.quorum if settings else None,
        stale_after=settings.stale_after if settings else None,
        locations=[
            schema.Location(
                name=status.name,
                kind=status.kind,
                connected=status.connected,
                version=status.version,
                client=status.client,
                last_contact=status.last_contact,
                results=status.results,
                fresh_targets=status.fresh_targets,
                targets=status.targets,
                excluded=status.excluded,
                canary_ok=status.canary_ok,
            )
            for status in runtime.location_statuses()
        ],
    )


def location_view(runtime: Runtime) -> dict[str, Any]:
    """location_list as the agents page's template reads it."""
    view: dict[str, Any] = msgspec.to_builtins(location_list(runtime))
    return view


def record_body(runtime: Runtime, updates: Updates, record: DynamicRecord) -> schema.Record:
    """A record, its answer and why, and its targets: shared by the API and the pages."""
    key: RecordKey = (record.name, record.type)
    decision = runtime.decision(key)
    return schema.Record(
        name=record_text(record),
        zone=name_text(record.zone),
        type=record.type,
        ttl=record.ttl,
        monitor=record.monitor,
        monitors=list(record.monitors) if record.monitors else msgspec.UNSET,
        policy=record.policy,
        fallback=record.fallback,
        answer=schema.Answer(
            values=list(decision.values),
            targets=list(decision.targets),
            reason=decision.reason,
            priority=decision.priority,
            ttl=runtime.ttl(key),
        ),
        targets=[target_body(runtime, updates, record, t.name) for t in record.targets],
    )


def record_view(runtime: Runtime, updates: Updates, record: DynamicRecord) -> dict[str, Any]:
    """record_body as the pages' templates read it."""
    view: dict[str, Any] = msgspec.to_builtins(record_body(runtime, updates, record))
    return view


# -- propagation ---------------------------------------------------------------------

# A mirror's state as the propagation page marks it (any other: error).
MIRROR_STATUS = {
    MirrorState.OK: propagation.PropagationStatus.IN_SYNC,
    MirrorState.PENDING: propagation.PropagationStatus.STALE,
}


def checker(runtime: Runtime) -> propagation.Checker:
    """The propagation checks of the web: each query waits [web] propagation_timeout as
    it is at the time of the query, so a reload changes it without a restart."""

    async def ask(where: propagation.Endpoint, qname: str, qtype: str, recursion: bool) -> propagation.Reply:
        timeout = runtime.web_settings().propagation_timeout
        return await propagation.dns_asker(timeout)(where, qname, qtype, recursion)

    return propagation.Checker(ask=ask)


def propagation_plan(runtime: Runtime, record: DynamicRecord) -> propagation.Plan:
    web = runtime.web_settings()
    zone = runtime.zone_config(record.zone)
    snapshot = runtime.current_snapshot()
    return propagation.make_plan(snapshot, zone, record, web.resolvers, web.propagation_timeout)


def mirror_body(status: MirrorStatus) -> schema.PropagationMirror:
    """One mirrored name: what the provider last had and said (the worker's memory)."""
    return schema.PropagationMirror(
        mirror=status.mirror,
        kind=status.kind,
        name=status.name,
        type=status.type,
        status=MIRROR_STATUS.get(status.state, propagation.PropagationStatus.ERROR),
        state=status.state,
        desired=list(status.desired),
        provider=list(status.provider) if status.provider is not None else None,
        records=[dict(r) for r in status.records],
        last_reply=status.last_reply,
        last_error=status.last_error,
        last_attempt=status.last_attempt,
        last_ok=status.last_ok,
    )


async def propagation_body(
    runtime: Runtime, checker: propagation.Checker, record: DynamicRecord, hostname: str | None = None
) -> schema.Propagation:
    """The propagation of a record, as the API and the page show it. Raises
    propagation.Busy when the check budget is spent and nothing is cached."""
    plan = propagation_plan(runtime, record)

    def current() -> propagation.Expected:
        return propagation.expected_from(runtime.current_snapshot(), record.zone, plan.name, plan.type)

    async def chain() -> propagation.CnameCheck | None:
        if hostname is None:
            return None
        resolver = plan.resolvers[0] if plan.resolvers else None
        try:
            found = await checker.chain(hostname, propagation.chain_type(record.type), resolver)
        except propagation.Busy as busy:
            found = propagation.Chain(hostname, resolver, error=str(busy))
        return propagation.cname_check_body(found, plan.name)

    (report, age), checked = await asyncio.gather(checker.report(plan, current), chain())
    name = wire.name_to_text(record.name)
    mirrors = [mirror_body(s) for s in runtime.mirror_status() if s.record == name]
    # The report's fields are propagation's own (its Struct, which Propagation extends).
    fields = msgspec.structs.asdict(propagation.report_body(report))
    return schema.Propagation(**fields, age=round(age, 3), mirrors=mirrors, cname_check=checked)


async def propagation_view(
    runtime: Runtime, checker: propagation.Checker, record: DynamicRecord, hostname: str | None = None
) -> dict[str, Any]:
    """propagation_body as the pages read it (the page's template and its script)."""
    view: dict[str, Any] = msgspec.to_builtins(await propagation_body(runtime, checker, record, hostname))
    return view
