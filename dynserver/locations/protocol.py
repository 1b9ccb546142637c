"""The agent protocol: the messages between the server and an agent, as msgspec Structs.

Pure: bytes in, typed messages out, and the reverse; the hub (server side) and the agent
speak only through these. A decode error is a ProtocolError that names the bad field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import typing
from typing import Annotated, Any, Final

import msgspec

from dynserver.errors import PeerError
from dynserver.health.conditions import parse_json_condition
from dynserver.health.probes import Check
from dynserver.model import Monitor
from dynserver.types import CheckKey

STREAM_PATH: Final = "/api/v1/agent/stream"
RESULTS_PATH: Final = "/api/v1/agent/results"
STREAM_CONTENT_TYPE: Final = "application/x-ndjson"
# The agent's User-Agent is AGENT_PRODUCT/<version>: the server shows the version.
AGENT_PRODUCT: Final = "dynserver-agent"
HEARTBEAT: Final = 15.0  # seconds between pings; silence for 3 of them: reconnect
MISSED_HEARTBEATS: Final = 3
MAX_BODY: Final = 1 << 20  # a results body larger than this is refused (413)
MAX_REASON: Final = 200  # characters of a result's reason


class ProtocolError(PeerError, ValueError):
    """A message that does not follow the protocol (the peer's mistake: an agent's, or the
    server's as the agent sees it); the text names the field."""


def check_id(key: CheckKey) -> str:
    """A check's identity on the wire: 16 hex characters of the SHA-256 of its fields.
    Stable across restarts and reloads, so an agent's result still names its check."""
    fields = [key.monitor, key.address, key.port, key.host, key.path]
    return hashlib.sha256(msgspec.json.encode(fields)).hexdigest()[:16]


# -- checks on the wire -----------------------------------------------------------------
# The wire forms of Monitor and Check are built from the dataclasses' own fields, so a
# new monitor option travels to agents without a change here. Only expected_json differs:
# it is sent as its text and parsed again by the agent (a compiled path is not data).


def _wire_struct(cls: type[Any], name: str, replaced: dict[str, Any]) -> type[msgspec.Struct]:
    hints = typing.get_type_hints(cls)
    fields: list[tuple[str, Any, Any]] = []
    for field in dataclasses.fields(cls):
        kind = replaced.get(field.name, hints[field.name])
        if field.default is not dataclasses.MISSING:
            fields.append((field.name, kind, field.default))
        elif field.default_factory is not dataclasses.MISSING:
            fields.append((field.name, kind, msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, kind, msgspec.NODEFAULT))
    required = [(n, k) for n, k, d in fields if d is msgspec.NODEFAULT]
    optional = [(n, k, d) for n, k, d in fields if d is not msgspec.NODEFAULT]
    return msgspec.defstruct(name, [*required, *optional], module=__name__, frozen=True)


WireMonitor = _wire_struct(Monitor, "WireMonitor", {"expected_json": str | None})
WireCheck = _wire_struct(Check, "WireCheck", {"monitor": WireMonitor})


def encode_check(check: Check) -> Any:
    """A Check as its wire Struct (WireCheck), ready for msgspec.json.encode."""
    monitor = check.monitor
    values = {f.name: getattr(monitor, f.name) for f in dataclasses.fields(Monitor)}
    values["expected_json"] = None if monitor.expected_json is None else monitor.expected_json.text
    wire_monitor = WireMonitor(**values)
    check_values = {f.name: getattr(check, f.name) for f in dataclasses.fields(Check)}
    check_values["monitor"] = wire_monitor
    return WireCheck(**check_values)


def decode_check(wire: Any) -> Check:
    """A WireCheck back to a Check; ProtocolError names a field the agent cannot use."""
    wire_monitor = wire.monitor
    values = {f.name: getattr(wire_monitor, f.name) for f in dataclasses.fields(Monitor)}
    text = values.pop("expected_json")
    try:
        condition = None if text is None else parse_json_condition(text)
    except ValueError as error:
        raise ProtocolError(f"{error} - at `check.monitor.expected_json`") from None
    try:
        monitor = Monitor(**values, expected_json=condition)
    except (TypeError, ValueError) as error:  # pragma: no cover - the Struct has the same fields
        raise ProtocolError(f"{error} - at `check.monitor`") from None
    check_values = {f.name: getattr(wire, f.name) for f in dataclasses.fields(Check)}
    check_values["monitor"] = monitor
    return Check(**check_values)


# -- server -> agent: the stream (one JSON object per line) ----------------------------


class CheckSpec(msgspec.Struct, frozen=True):
    """One check handed to an agent: run `check` every `interval` seconds, report as `id`."""

    id: str
    interval: float
    check: WireCheck  # type: ignore[valid-type]


class Hello(msgspec.Struct, frozen=True, tag="hello", tag_field="type"):
    """First line of a stream: who the agent is to the server, and every check."""

    agent: str  # the agent's name: its location
    session: str  # random, names this stream in every results batch
    version: str  # the server's version
    heartbeat: float  # seconds between pings
    canary: str | None  # host:port the agent connects to, to tell its own connectivity
    generation: int
    checks: list[CheckSpec]


class Checks(msgspec.Struct, frozen=True, tag="checks", tag_field="type"):
    """The whole set of checks, sent whenever it changes (never a difference)."""

    generation: int
    checks: list[CheckSpec]


class Ping(msgspec.Struct, frozen=True, tag="ping", tag_field="type"):
    """Sent every heartbeat: the agent knows the stream is alive."""


StreamMessage = Hello | Checks | Ping

_stream_decoder = msgspec.json.Decoder(StreamMessage)


def encode_message(message: StreamMessage) -> bytes:
    """One line of the stream, newline included."""
    return msgspec.json.encode(message) + b"\n"


def decode_message(line: bytes | str) -> StreamMessage:
    try:
        message: StreamMessage = _stream_decoder.decode(line)
    except msgspec.DecodeError as error:
        raise ProtocolError(str(error)) from None
    return message


def spec(check_id: str, check: Check, interval: float) -> CheckSpec:
    return CheckSpec(id=check_id, interval=interval, check=encode_check(check))


# -- agent -> server: results ----------------------------------------------------------


class ResultItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One result of one check. The agent's clock is never sent: the server stamps it."""

    check: Annotated[str, msgspec.Meta(max_length=64)]  # a CheckSpec id
    seq: Annotated[int, msgspec.Meta(ge=0)]  # strictly increasing within a session
    ok: bool
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)]
    latency: float | None = None  # seconds; the server clamps it to [0, timeout]


class CanaryResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The agent's own connectivity: did its canary address answer."""

    ok: bool
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)]


class ResultsBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    session: Annotated[str, msgspec.Meta(max_length=64)]
    results: list[ResultItem]
    canary: CanaryResult | None = None


class Accepted(msgspec.Struct, frozen=True):
    accepted: int


_results_decoder = msgspec.json.Decoder(ResultsBatch)


def decode_results(body: bytes) -> ResultsBatch:
    try:
        return _results_decoder.decode(body)
    except msgspec.DecodeError as error:
        raise ProtocolError(str(error)) from None


def clip_reason(reason: str) -> str:
    """A probe's reason cut to what the protocol carries (the agent sends this)."""
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def clamp_latency(latency: float | None, timeout: float) -> float | None:
    """An agent's latency within [0, timeout]: it cannot claim a check took longer than
    it may, nor less than nothing."""
    if latency is None:
        return None
    if math.isnan(latency):
        return None
    return min(max(latency, 0.0), timeout)


def agent_version(user_agent: str | None) -> str | None:
    """The version from `dynserver-agent/<version>`, or None for another client."""
    if not user_agent:
        return None
    product, _, version = user_agent.partition("/")
    if product != AGENT_PRODUCT or not version:
        return None
    return version.split()[0][:32]
