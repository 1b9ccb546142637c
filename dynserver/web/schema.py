"""The JSON bodies of ``/api/v1`` as typed definitions: the handlers build and encode these,
and dynserver.web.openapi derives the document's schemas from them, so the two cannot drift.

msgspec Structs: frozen, with their fields in the order the JSON has them; a field's
description is its ``Meta``. Response bodies forbid unknown fields when decoded, so a test
that decodes what a handler sent proves it sent exactly these fields.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta, Struct

from dynserver.health.policy import Fallback, Policy
from dynserver.health.state import Health
from dynserver.locations.protocol import Accepted, ResultsBatch, StreamMessage
from dynserver.mirror.worker import MirrorState
from dynserver.propagation import PropagationStatus
from dynserver.propagation.body import CnameCheck, Seconds
from dynserver.propagation.body import Report as PropagationReport
from dynserver.types import RecordType

# Times are Unix seconds; durations are Seconds, as in the propagation report.
UnixTime = Annotated[float, Meta(description="Unix time.")]
# The store's kinds of event: a stored column, open to kinds a later version adds.
_EVENT_KINDS = (
    "health, answer, maintenance, update, check, auth, credential, mirror, notify, system, agent, location, "
    "reload (also every edit: actor and changes), acme (DNS-01 challenges added and removed), "
    "certificate (a target's certificate expires soon), rrl (rate limiting of a network started or stopped), "
    "push (a push monitor's token added, replaced or removed), "
    "scheduler (checks fell behind: the machine cannot keep up; or caught up)."
)


class ErrorCode(enum.StrEnum):
    """A short code for what went wrong; the HTTP status says how bad."""

    BAD_REQUEST = "bad_request"  #: 400: the request cannot be read (not JSON, a bad parameter)
    UNAUTHORIZED = "unauthorized"  #: 401: no Bearer token, or not the secret of any credential
    FORBIDDEN = "forbidden"  #: 403: the credential may not do this
    NOT_FOUND = "not_found"  #: 404: no such path, record or target
    METHOD_NOT_ALLOWED = "method_not_allowed"  #: 405: the path has no such method
    CONFLICT = "conflict"  #: 409: the request contradicts the resource (or editing is off)
    PRECONDITION_FAILED = "precondition_failed"  #: 412: If-Match is not the file's ETag now
    PRECONDITION_REQUIRED = "precondition_required"  #: 428: an edit without If-Match
    INVALID = "invalid"  #: 422: readable, but not a valid value
    TOO_LARGE = "too_large"  #: 413: the body is larger than the endpoint takes
    TOO_MANY_REQUESTS = "too_many_requests"  #: 429: rate-limited or locked out
    SERVER_ERROR = "server_error"  #: 500: our fault; try again
    ERROR = "error"  #: another HTTP error starlette raised, with its own status


class ResponseBody(Struct, frozen=True, forbid_unknown_fields=True):
    """A body the API answers (the base of every response Struct)."""


class RequestBody(Struct, frozen=True):
    """A body the API accepts: unknown fields are ignored, as the handlers always have."""


# -- errors --------------------------------------------------------------------------


class Error(ResponseBody, frozen=True):
    """Every error the API answers, with its HTTP status."""

    error: ErrorCode
    detail: Annotated[str, Meta(description="What went wrong and what was expected.")]


# -- zones, records, targets -----------------------------------------------------------


class Zone(ResponseBody, frozen=True):
    name: str
    serial: int
    records: Annotated[list[str], Meta(description="Dynamic records.")]


class ZoneList(ResponseBody, frozen=True):
    zones: list[Zone]


class LastResult(ResponseBody, frozen=True):
    """The target's last check result."""

    ok: bool
    reason: Annotated[str, Meta(description='e.g. "status 200", "timeout", "refused".')]
    at: Annotated[float, Meta(description="Unix time of the check.")]
    latency: Seconds


class TargetLocation(ResponseBody, frozen=True):
    """What one location sees of a target: its own state machine on its own results."""

    name: Annotated[str, Meta(description="The location: this server's ([locations] name) or an agent's.")]
    health: Health
    fresh: Annotated[bool, Meta(description="Its last result is recent enough to vote (stale_after).")]
    excluded: Annotated[bool, Meta(description="Its own connectivity is gone: it does not vote.")]
    last_result: LastResult | None


class Vote(ResponseBody, frozen=True):
    """How the fresh, non-excluded locations vote on a target's health."""

    up: Annotated[int, Meta(description="Locations that see it up.")]
    down: Annotated[int, Meta(description="Locations that see it down.")]
    fresh: Annotated[int, Meta(description="Fresh, non-excluded locations: the ones that vote.")]
    total: Annotated[int, Meta(description="Every location.")]
    need: Annotated[int, Meta(description="Agreeing votes needed to change state: min(quorum, fresh).")]


class Window(Struct, frozen=True, forbid_unknown_fields=True):
    """A maintenance window as the config wrote it, open now or not."""

    window: str
    active: bool
    next_change: Annotated[float | None, Meta(description="Unix time it next opens or closes (null: never).")]


class MonitorState(Struct, frozen=True, forbid_unknown_fields=True):
    """One monitor of a target that several check (combined checks): its own state."""

    monitor: str
    health: Annotated[Health, Meta(description="What this monitor's checks observe (its own thresholds).")]
    since: Annotated[float | None, Meta(description="Unix time its state last changed.")]
    last_result: LastResult | None


class ForcedState(enum.StrEnum):
    """What an admin may force a target to."""

    UP = "up"  #: answered whatever its checks say (unless in maintenance)
    DOWN = "down"  #: never answered whatever its checks say


class Forced(Struct, frozen=True, forbid_unknown_fields=True):
    """An admin's forced state of a target (gdnsd's admin_state): who, since and until when."""

    state: Annotated[ForcedState, Meta(description="What the target is forced to, over its checks.")]
    actor: Annotated[str, Meta(description="Who forced it: a credential, web:admin, or the CLI.")]
    at: Annotated[float, Meta(description="Unix time it was forced.")]
    until: Annotated[float | None, Meta(description="Unix time it ends by itself (null: until cleared).")]
    reason: str


class Target(ResponseBody, frozen=True):
    name: str
    hostname: Annotated[str, Meta(description="<target>.<record>: answers the value in DNS.")]
    value: Annotated[str | None, Meta(description="The current value (null until the first update).")]
    configured_value: str | None
    check_address: Annotated[
        str | None,
        Meta(description="What the checks connect to instead of the value (null: the value)."),
    ]
    value_set_at: Annotated[float | None, Meta(description="Unix time of the last update, if any.")]
    priority: Annotated[int, Meta(description="Lower is preferred.")]
    health: Health
    observed: Annotated[
        Health,
        Meta(
            description="What checks observe, maintenance aside.",
            extra_json_schema={"not": {"const": Health.MAINTENANCE.value}},
        ),
    ]
    maintenance: bool
    since: Annotated[float | None, Meta(description="Unix time the health last changed.")]
    last_result: LastResult | None
    # Only with a [locations] table: without one the body is what it always was.
    locations: (
        Annotated[
            list[TargetLocation],
            Meta(description="Only with [locations]: what each location sees, in location order."),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    vote: (
        Annotated[Vote, Meta(description="Only with [locations]: the vote that decides health.")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    maintenance_windows: (
        Annotated[
            list[Window],
            Meta(description="Only for a target with maintenance windows (its own and its record's)."),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    monitors: (
        Annotated[
            list[MonitorState],
            Meta(description="Only for a target checked by several monitors: each one's state, in order."),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    forced: (
        Annotated[Forced, Meta(description="Only while an admin forces the target up or down.")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    require: (
        Annotated[int, Meta(description="Only with several monitors: how many must be up.")]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class Answer(ResponseBody, frozen=True):
    values: list[str]
    targets: list[str]
    reason: Annotated[str, Meta(description="Why these values are answered.")]
    priority: Annotated[int | None, Meta(description="The priority group answered.")]
    ttl: int


class Record(ResponseBody, frozen=True):
    name: str
    zone: str
    type: RecordType
    ttl: int
    monitor: Annotated[str | None, Meta(description="The record's monitor (the first, when several).")]
    policy: Policy
    fallback: Fallback
    answer: Answer
    targets: list[Target]
    monitors: (
        Annotated[
            list[str], Meta(description='Only for combined checks (monitor = ["web", "db"]): all of them.')
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class RecordList(ResponseBody, frozen=True):
    records: list[Record]


# -- changes -------------------------------------------------------------------------


class ValueUpdate(RequestBody, frozen=True):
    """The new value: {"value": ...}, or seed 000's {"ip": ..., "name": ...}. An empty
    string means "the address this request comes from"."""

    value: Annotated[str, Meta(examples=["192.0.2.10"])] | msgspec.UnsetType = msgspec.UNSET
    ip: str | msgspec.UnsetType = msgspec.UNSET
    name: Annotated[str, Meta(description="If given, must be the target named in the URL.")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET


# The body of a value update names its value in one of two keys.
ValueUpdateBody = Annotated[
    ValueUpdate, Meta(extra_json_schema={"anyOf": [{"required": ["value"]}, {"required": ["ip"]}]})
]


class UpdateResult(ResponseBody, frozen=True):
    changed: Annotated[bool, Meta(description="False: the target had this value already.")]
    previous: str | None
    target: Target


class Maintenance(RequestBody, frozen=True):
    maintenance: bool


class MaintenanceResult(ResponseBody, frozen=True):
    changed: bool
    target: Target


class Force(RequestBody, frozen=True):
    """Force a target up or down, for a while or until cleared (DELETE clears)."""

    state: Annotated[ForcedState, Meta(examples=["down"])]
    duration: (
        Annotated[
            float,
            Meta(
                gt=0, le=31_622_400, description="Seconds from now, at most a year (absent: until cleared)."
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    reason: Annotated[str, Meta(max_length=200, description="Why: shown with it everywhere.")] = ""


class ForcedResult(ResponseBody, frozen=True):
    changed: Annotated[bool, Meta(description="False: clearing a target that was not forced.")]
    target: Target


class PushResult(ResponseBody, frozen=True):
    """A push monitor's heartbeat, taken (Uptime Kuma answers {"ok": true} too)."""

    ok: Annotated[bool, Meta(description="Always true: a refused heartbeat is an error body.")]
    target: Annotated[str, Meta(description="<target>.<record>: the target it beats for.")]
    monitors: Annotated[list[str], Meta(description="The push monitors that took it.")]
    health: Annotated[Health, Meta(description="The target's health after it.")]


class Checking(ResponseBody, frozen=True):
    checking: Annotated[list[str], Meta(description="The targets being checked.")]


# -- reload and definitions (the config file) --------------------------------------


class Definition(Struct, frozen=True, omit_defaults=True):
    """A definition as the config file has it: the TOML keys of docs/configuration.md as
    JSON, each optional here (the config says which it needs). A PUT sends the same; a
    key the config does not know, or a value it does not take, is a 422 that names it."""


class TargetDefinition(Definition, frozen=True):
    name: Annotated[str, Meta(description="If given in a PUT, the URL's.")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    value: str | msgspec.UnsetType = msgspec.UNSET
    priority: Annotated[int, Meta(description="Lower is preferred.")] | msgspec.UnsetType = msgspec.UNSET
    weight: (
        Annotated[int, Meta(description="Share of first places in a rotating answer (1-1000).")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    maintenance: bool | msgspec.UnsetType = msgspec.UNSET
    check_address: str | msgspec.UnsetType = msgspec.UNSET
    check_port: int | msgspec.UnsetType = msgspec.UNSET
    port: Annotated[int, Meta(description="check_port's older name.")] | msgspec.UnsetType = msgspec.UNSET
    host: str | msgspec.UnsetType = msgspec.UNSET
    path: str | msgspec.UnsetType = msgspec.UNSET
    monitor: str | list[str] | msgspec.UnsetType = msgspec.UNSET
    require: str | int | msgspec.UnsetType = msgspec.UNSET


class RecordDefinition(Definition, frozen=True):
    type: Annotated[str, Meta(examples=["A"])] | msgspec.UnsetType = msgspec.UNSET
    ttl: int | msgspec.UnsetType = msgspec.UNSET
    monitor: str | list[str] | msgspec.UnsetType = msgspec.UNSET
    require: str | int | msgspec.UnsetType = msgspec.UNSET
    policy: str | msgspec.UnsetType = msgspec.UNSET
    fallback: str | msgspec.UnsetType = msgspec.UNSET
    min_up: int | msgspec.UnsetType = msgspec.UNSET
    order: Annotated[str, Meta(examples=["rotate", "fixed"])] | msgspec.UnsetType = msgspec.UNSET
    pending_ttl: int | msgspec.UnsetType = msgspec.UNSET
    mirror: Any | msgspec.UnsetType = msgspec.UNSET
    targets: list[TargetDefinition] | msgspec.UnsetType = msgspec.UNSET


class MonitorDefinition(Definition, frozen=True):
    type: Annotated[str, Meta(examples=["http"])] | msgspec.UnsetType = msgspec.UNSET
    port: int | msgspec.UnsetType = msgspec.UNSET
    path: str | msgspec.UnsetType = msgspec.UNSET
    interval: float | msgspec.UnsetType = msgspec.UNSET
    timeout: float | msgspec.UnsetType = msgspec.UNSET
    retries: int | msgspec.UnsetType = msgspec.UNSET
    consecutive_up: int | msgspec.UnsetType = msgspec.UNSET
    consecutive_down: int | msgspec.UnsetType = msgspec.UNSET
    failback_delay: float | msgspec.UnsetType = msgspec.UNSET
    method: str | msgspec.UnsetType = msgspec.UNSET
    header: dict[str, str | list[str]] | msgspec.UnsetType = msgspec.UNSET
    expected_codes: int | str | list[int | str] | msgspec.UnsetType = msgspec.UNSET
    expected_body: str | msgspec.UnsetType = msgspec.UNSET
    unexpected_body: str | msgspec.UnsetType = msgspec.UNSET
    follow_redirects: bool | msgspec.UnsetType = msgspec.UNSET
    allow_insecure: bool | msgspec.UnsetType = msgspec.UNSET
    max_response_bytes: int | msgspec.UnsetType = msgspec.UNSET
    user_agent: str | msgspec.UnsetType = msgspec.UNSET
    send: str | msgspec.UnsetType = msgspec.UNSET
    expect: str | msgspec.UnsetType = msgspec.UNSET
    query_name: str | msgspec.UnsetType = msgspec.UNSET
    query_type: str | msgspec.UnsetType = msgspec.UNSET
    expected_rcode: str | msgspec.UnsetType = msgspec.UNSET
    expected_data: str | msgspec.UnsetType = msgspec.UNSET
    expected_json: str | msgspec.UnsetType = msgspec.UNSET
    max_response_time: float | msgspec.UnsetType = msgspec.UNSET
    invert: bool | msgspec.UnsetType = msgspec.UNSET
    quorum: int | msgspec.UnsetType = msgspec.UNSET


class Deleted(ResponseBody, frozen=True):
    """A definition removed from the config file, and live."""

    deleted: Annotated[str, Meta(description="What was removed.")]
    changes: Annotated[list[str], Meta(description="What the reload changed, in short.")]


class Reloaded(ResponseBody, frozen=True):
    """The config file is live."""

    ok: bool
    changes: Annotated[
        list[str],
        Meta(description='What changed, in short, e.g. "record app.dyn.example.test: target charlie added".'),
    ]
    duration: Seconds


class ReloadFailed(ResponseBody, frozen=True):
    """The config file does not load: nothing changed, the old config still runs."""

    error: ErrorCode
    detail: Annotated[str, Meta(description="The first error: file:line: key: what was expected.")]
    errors: list[str]


# -- locations -----------------------------------------------------------------------


class Location(ResponseBody, frozen=True):
    """A place checks run from (this server, or an agent) and how it is doing."""

    name: str
    kind: Annotated[str, Meta(description='"local" (this server) or "agent".')]
    connected: Annotated[bool, Meta(description="An agent's stream is open (this server: always).")]
    version: Annotated[str | None, Meta(description="The agent's dynserver version (null: not seen yet).")]
    client: Annotated[str | None, Meta(description="The address the agent connects from.")]
    last_contact: Annotated[float | None, Meta(description="Unix time it was last heard from.")]
    results: Annotated[int, Meta(description="Results received since the server started.")]
    fresh_targets: Annotated[int, Meta(description="Targets whose last result from here is fresh.")]
    targets: Annotated[int, Meta(description="Every target it checks.")]
    excluded: Annotated[
        str | None,
        Meta(description="Why it is excluded from the vote (its own connectivity is gone); null: it votes."),
    ]
    canary_ok: Annotated[bool | None, Meta(description="Its last canary connect (null: no canary).")]


class LocationList(ResponseBody, frozen=True):
    quorum: Annotated[
        int | None,
        Meta(description="[locations] quorum (a monitor may override it); null: no [locations] table."),
    ]
    stale_after: Annotated[
        int | None, Meta(description="Intervals without a result before a location is stale.")
    ]
    locations: Annotated[list[Location], Meta(description="Empty without a [locations] table.")]


# -- events --------------------------------------------------------------------------


class Event(ResponseBody, frozen=True):
    id: int
    at: UnixTime
    kind: Annotated[str, Meta(description=_EVENT_KINDS)]
    record: str | None
    target: str | None
    result: str | None
    reason: str | None
    previous: str | None
    current: str | None
    actor: Annotated[str | None, Meta(description="The credential (or key) that caused it.")]
    detail: dict[str, Any] | None


class EventList(ResponseBody, frozen=True):
    events: list[Event]
    next_before: Annotated[int | None, Meta(description="The next page: pass it as before.")]


# -- propagation ---------------------------------------------------------------------


class PropagationMirror(ResponseBody, frozen=True):
    """A mirrored name: the provider's last known record and last reply."""

    mirror: str
    kind: str
    name: str
    type: str
    status: PropagationStatus
    state: MirrorState
    desired: list[str]
    provider: list[str] | None
    records: list[dict[str, Any]]
    last_reply: str
    last_error: str | None
    last_attempt: UnixTime | None
    last_ok: UnixTime | None


# The report's fields are propagation's own (dynserver.propagation.body); the web adds
# the check's age, the mirrors and the CNAME check.
class Propagation(PropagationReport, ResponseBody, frozen=True):
    """A record's propagation: who already answers what dynserver answers now."""

    age: Annotated[float, Meta(description="Seconds since the check (results are shared briefly).")]
    mirrors: list[PropagationMirror]
    cname_check: Annotated[CnameCheck | None, Meta(description="null: no hostname given.")]


# Every body the API answers or accepts, for the document and its tests. The agent
# endpoints' bodies are the protocol's own (dynserver.locations.protocol): the stream's
# lines (StreamMessage, one of Hello, Checks, Ping), a results batch and its answer.
# -- ACME DNS-01 challenges (dynserver.web.acme) ----------------------------------------


class ChallengeChange(RequestBody, frozen=True):
    """A challenge to add (POST) or delete (DELETE)."""

    fqdn: Annotated[
        str,
        Meta(
            description="_acme-challenge.NAME",
            examples=["_acme-challenge.dyn.example.test"],
            pattern=r"^_acme-challenge(\.[A-Za-z0-9_-]{1,63})+\.?$",
            max_length=250,
        ),
    ]
    value: Annotated[
        str, Meta(description="The challenge's TXT value (base64url).", pattern="^[A-Za-z0-9_-]{1,255}$")
    ]


class ChallengeChanged(ResponseBody, frozen=True):
    """The challenge as it is now."""

    fqdn: str
    value: str
    served: Annotated[bool, Meta(description="Whether the value is served now.")]
    expires: Annotated[float, Meta(description="Unix seconds: removed then unless deleted before.")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET


class Challenge(Struct, frozen=True, forbid_unknown_fields=True):
    fqdn: str
    value: str
    added: float
    expires: float
    by: Annotated[str, Meta(description="tsig:KEY, a credential's name, or system.")]


class ChallengeList(ResponseBody, frozen=True):
    """The ACME challenges served that the credential may change."""

    challenges: list[Challenge]


RESPONSES: Final = (
    Error,
    ZoneList,
    RecordList,
    Record,
    Target,
    UpdateResult,
    MaintenanceResult,
    ForcedResult,
    PushResult,
    Checking,
    EventList,
    Propagation,
    LocationList,
    StreamMessage,
    Accepted,
    RecordDefinition,
    TargetDefinition,
    MonitorDefinition,
    Deleted,
    Reloaded,
    ReloadFailed,
    ChallengeChanged,
    ChallengeList,
)
REQUESTS: Final = (ValueUpdate, Maintenance, Force, ResultsBatch, ChallengeChange)
