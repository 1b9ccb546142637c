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
from dynserver.mirror.worker import MirrorState
from dynserver.propagation import PropagationStatus
from dynserver.propagation.body import CnameCheck, Seconds
from dynserver.propagation.body import Report as PropagationReport
from dynserver.types import RecordType

# Times are Unix seconds; durations are Seconds, as in the propagation report.
UnixTime = Annotated[float, Meta(description="Unix time.")]
# The store's kinds of event: a stored column, open to kinds a later version adds.
_EVENT_KINDS = "health, answer, maintenance, update, check, auth, credential, mirror, notify, system."


class ErrorCode(enum.StrEnum):
    """A short code for what went wrong; the HTTP status says how bad."""

    BAD_REQUEST = "bad_request"  #: 400: the request cannot be read (not JSON, a bad parameter)
    UNAUTHORIZED = "unauthorized"  #: 401: no Bearer token, or not the secret of any credential
    FORBIDDEN = "forbidden"  #: 403: the credential may not do this
    NOT_FOUND = "not_found"  #: 404: no such path, record or target
    METHOD_NOT_ALLOWED = "method_not_allowed"  #: 405: the path has no such method
    CONFLICT = "conflict"  #: 409: the request contradicts the resource
    INVALID = "invalid"  #: 422: readable, but not a valid value
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
    monitor: str | None
    policy: Policy
    fallback: Fallback
    answer: Answer
    targets: list[Target]


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


class Checking(ResponseBody, frozen=True):
    checking: Annotated[list[str], Meta(description="The targets being checked.")]


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


# Every body the API answers or accepts, for the document and its tests.
RESPONSES: Final = (
    Error,
    ZoneList,
    RecordList,
    Record,
    Target,
    UpdateResult,
    MaintenanceResult,
    Checking,
    EventList,
    Propagation,
)
REQUESTS: Final = (ValueUpdate, Maintenance)
