"""The agent protocol: round trips of every message and check, and errors that name the field."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from dynserver.health.conditions import parse_json_condition
from dynserver.health.probes import Check
from dynserver.locations import protocol
from dynserver.model import Monitor, MonitorType
from dynserver.types import CheckKey

MONITOR = Monitor(
    name="web",
    type=MonitorType.HTTPS,
    port=8443,
    path="/health",
    interval=5.0,
    timeout=1.5,
    retries=2,
    header=(("X-Probe", "1"),),
    expected_codes=((200, 204),),
    expected_body="ok",
    expected_json=parse_json_condition('$.status == "ok"'),
    max_response_time=1.0,
    invert=True,
)
CHECK = Check(monitor=MONITOR, address="127.0.0.9", port=8443, path="/health", headers=(("Host", "a.test"),))


def test_check_round_trips_through_json() -> None:
    spec = protocol.spec("0123456789abcdef", CHECK, 5.0)
    line = protocol.encode_message(protocol.Checks(generation=7, checks=[spec]))
    message = protocol.decode_message(line)
    assert isinstance(message, protocol.Checks)
    assert message.generation == 7
    decoded = protocol.decode_check(message.checks[0].check)
    assert decoded == CHECK
    assert decoded.monitor.expected_json is not None
    assert decoded.monitor.expected_json.evaluate(b'{"status": "ok"}') == (True, 'json $.status == "ok"')


def test_every_monitor_option_travels() -> None:
    """The wire form is built from Monitor's own fields: none is left behind."""
    wire = msgspec.json.decode(msgspec.json.encode(protocol.encode_check(CHECK)))
    assert set(wire["monitor"]) == {f.name for f in dataclasses.fields(Monitor)}
    assert wire["monitor"]["expected_json"] == '$.status == "ok"'
    plain = dataclasses.replace(CHECK, monitor=dataclasses.replace(MONITOR, expected_json=None))
    assert protocol.decode_check(protocol.encode_check(plain)) == plain


@pytest.mark.parametrize(
    "message",
    [
        protocol.Hello(
            agent="paris",
            session="s1",
            version="1.0",
            heartbeat=15.0,
            canary="127.0.0.1:9",
            generation=1,
            checks=[protocol.spec("0123456789abcdef", CHECK, 5.0)],
        ),
        protocol.Checks(generation=2, checks=[]),
        protocol.Ping(),
    ],
)
def test_stream_messages_round_trip(message: protocol.StreamMessage) -> None:
    line = protocol.encode_message(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode_message(line) == message


def test_the_type_field_tags_messages() -> None:
    assert msgspec.json.decode(protocol.encode_message(protocol.Ping())) == {"type": "ping"}


@pytest.mark.parametrize(
    ("line", "names"),
    [
        (b'{"type":"checks","generation":"x","checks":[]}', "$.generation"),
        (b'{"type":"party"}', "$.type"),
        (b"not json", "malformed"),
        (b'{"type":"checks","generation":1,"checks":[{"id":"a","interval":1,"check":{}}]}', "monitor"),
    ],
)
def test_a_bad_stream_line_names_its_field(line: bytes, names: str) -> None:
    with pytest.raises(protocol.ProtocolError, match=names.replace("$", r"\$").replace(".", r"\.")):
        protocol.decode_message(line)


def test_a_bad_json_condition_names_its_field() -> None:
    wire = msgspec.json.decode(msgspec.json.encode(protocol.encode_check(CHECK)))
    wire["monitor"]["expected_json"] = "status is ok"
    message = protocol.decode_message(
        msgspec.json.encode(
            {"type": "checks", "generation": 1, "checks": [{"id": "a", "interval": 1, "check": wire}]}
        )
    )
    assert isinstance(message, protocol.Checks)
    with pytest.raises(protocol.ProtocolError, match=r"check\.monitor\.expected_json"):
        protocol.decode_check(message.checks[0].check)


def test_check_id_is_stable_and_distinct() -> None:
    key = CheckKey(monitor="web", address="127.0.0.9", port=None, host=None, path=None)
    assert protocol.check_id(key) == protocol.check_id(CheckKey("web", "127.0.0.9", None, None, None))
    assert len(protocol.check_id(key)) == 16
    int(protocol.check_id(key), 16)
    others = [
        dataclasses.replace(key, monitor="api"),
        dataclasses.replace(key, address="127.0.0.10"),
        dataclasses.replace(key, port=80),
        dataclasses.replace(key, host="a.test"),
        dataclasses.replace(key, path="/"),
    ]
    assert len({protocol.check_id(k) for k in [key, *others]}) == 6


def test_results_round_trip() -> None:
    batch = protocol.ResultsBatch(
        session="s1",
        results=[protocol.ResultItem(check="0123456789abcdef", seq=1, ok=False, reason="timeout")],
        canary=protocol.CanaryResult(ok=True, reason="connected"),
    )
    assert protocol.decode_results(msgspec.json.encode(batch)) == batch


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"session":"s","results":[{"check":"a","seq":1,"ok":true,"reason":"x","latency":"1"}]}', "lat"),
        (b'{"session":"s","results":[{"check":"a","seq":-1,"ok":true,"reason":"x"}]}', "seq"),
        (b'{"session":"s","results":[{"check":"a","seq":1,"ok":true,"reason":"x","at":5}]}', "at"),
        (b'{"results":[]}', "session"),
        (
            b'{"session":"s","results":[{"check":"a","seq":1,"ok":true,"reason":"' + b"x" * 201 + b'"}]}',
            "reason",
        ),
    ],
)
def test_a_bad_results_body_names_its_field(body: bytes, names: str) -> None:
    with pytest.raises(protocol.ProtocolError, match=names):
        protocol.decode_results(body)


def test_reason_is_clipped_to_what_the_protocol_carries() -> None:
    assert protocol.clip_reason("timeout") == "timeout"
    clipped = protocol.clip_reason("x" * 500)
    assert len(clipped) == protocol.MAX_REASON


@pytest.mark.parametrize(
    ("latency", "clamped"),
    [(None, None), (0.5, 0.5), (-3.0, 0.0), (99.0, 2.0), (float("inf"), 2.0), (float("nan"), None)],
)
def test_latency_is_clamped_to_the_timeout(latency: float | None, clamped: float | None) -> None:
    assert protocol.clamp_latency(latency, 2.0) == clamped


@pytest.mark.parametrize(
    ("user_agent", "version"),
    [
        ("dynserver-agent/1.4.0", "1.4.0"),
        ("dynserver-agent/1.4.0 python-httpx/0.27", "1.4.0"),
        ("curl/8.0", None),
        ("dynserver-agent/", None),
        (None, None),
    ],
)
def test_the_agent_version_comes_from_its_user_agent(user_agent: str | None, version: str | None) -> None:
    assert protocol.agent_version(user_agent) == version
