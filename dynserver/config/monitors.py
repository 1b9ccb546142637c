"""[monitors.NAME]: reusable health-check definitions (option names follow Cloudflare's)."""

from __future__ import annotations

from typing import Any

from dynserver.config.reader import KeyPath, Reader, alternatives
from dynserver.health import http
from dynserver.health.conditions import JsonCondition, parse_json_condition
from dynserver.health.probes import parse_expected_codes
from dynserver.model import Heartbeat, Monitor, MonitorType

# Every key's default is the model's: Monitor is the one place they are written.
_DEFAULT = Monitor(name="", type=MonitorType.HTTP)
_ONE_OF_TYPES = "one of: " + ", ".join(sorted(MonitorType))
_MONITOR_KEYS = {
    "type",
    "port",
    "path",
    "interval",
    "timeout",
    "retries",
    "consecutive_up",
    "consecutive_down",
    "failback_delay",
    "method",
    "header",
    "expected_codes",
    "expected_body",
    "unexpected_body",
    "follow_redirects",
    "allow_insecure",
    "max_response_bytes",
    "user_agent",
    "send",
    "expect",
    "query_name",
    "query_type",
    "expected_rcode",
    "expected_data",
    "expected_json",
    "max_response_time",
    "invert",
    "quorum",
    "certificate_expiry_days",
    "certificate_expiry_fails",
    "heartbeat",
}
# A push monitor probes nothing: only the keys of its timing and what a heartbeat is.
_PUSH_KEYS = {"type", "interval", "consecutive_up", "consecutive_down", "failback_delay", "heartbeat"}


def read_monitors(reader: Reader, raw: Any) -> tuple[Monitor, ...]:
    table = reader.table(raw, ("monitors",))
    result = []
    for name, monitor_raw in table.items():
        path: KeyPath = ("monitors", name)
        m = reader.table(monitor_raw, path)
        reader.unknown(m, path, _MONITOR_KEYS)
        kind = reader.choice(m, path, "type", MonitorType, None, _ONE_OF_TYPES)
        heartbeat = reader.choice(m, path, "heartbeat", Heartbeat, Heartbeat.PUSH, alternatives(Heartbeat))
        if kind is MonitorType.PUSH:
            for key in m:
                if key not in _PUSH_KEYS:
                    raise reader.error(
                        (*path, key),
                        f"a push monitor probes nothing; expected only: {', '.join(sorted(_PUSH_KEYS))}",
                    )
        elif "heartbeat" in m:
            raise reader.error((*path, "heartbeat"), f'expected a monitor of type = "push", got {kind}')
        interval = reader.number(m, path, "interval", _DEFAULT.interval, 0.1, 86400, float)
        timeout = reader.number(m, path, "timeout", min(_DEFAULT.timeout, interval), 0.05, 600, float)
        if timeout > interval:
            raise reader.error(
                (*path, "timeout"), f"expected at most the interval ({interval} s), got {timeout}"
            )
        port = m.get("port")
        if port is not None:
            port = reader.number(m, path, "port", 0, 1, 65535, int)
        elif kind is MonitorType.TCP:
            raise reader.error((*path, "port"), "a tcp monitor needs a port")
        codes = _expected_codes(reader, m, path)
        query_name = reader.get(m, path, "query_name", str, _DEFAULT.query_name, "a domain name")
        if kind is MonitorType.DNS and not query_name:
            raise reader.error((*path, "query_name"), "a dns monitor needs query_name (the name to ask)")
        text = "a string"
        url_path = reader.get(m, path, "path", str, _DEFAULT.path, "a URL path")
        method = reader.get(m, path, "method", str, _DEFAULT.method, "an HTTP method").upper()
        user_agent = reader.get(m, path, "user_agent", str, _DEFAULT.user_agent, text)
        http_valid(reader, (*path, "path"), http.path_problem(url_path))
        http_valid(reader, (*path, "method"), http.method_problem(method))
        if user_agent is not None:
            http_valid(reader, (*path, "user_agent"), http.header_problem("User-Agent", user_agent))
        max_response_time = _max_response_time(reader, m, path, timeout)
        expected_json = _expected_json(reader, m, path, kind)
        expiry_days, expiry_fails = _certificate_expiry(reader, m, path, kind)
        result.append(
            Monitor(
                name=name,
                type=kind,
                port=port,
                path=url_path,
                interval=interval,
                timeout=timeout,
                retries=reader.number(m, path, "retries", _DEFAULT.retries, 0, 10, int),
                consecutive_up=reader.number(
                    m, path, "consecutive_up", _DEFAULT.consecutive_up, 1, 1000, int
                ),
                consecutive_down=reader.number(
                    m, path, "consecutive_down", _DEFAULT.consecutive_down, 1, 1000, int
                ),
                failback_delay=reader.number(
                    m, path, "failback_delay", _DEFAULT.failback_delay, 0, 86400 * 7, float
                ),
                method=method,
                header=_headers(reader, m.get("header", {}), (*path, "header")),
                expected_codes=codes,
                expected_body=reader.get(m, path, "expected_body", str, _DEFAULT.expected_body, text),
                unexpected_body=reader.get(m, path, "unexpected_body", str, _DEFAULT.unexpected_body, text),
                follow_redirects=reader.get(
                    m, path, "follow_redirects", bool, _DEFAULT.follow_redirects, "true or false"
                ),
                allow_insecure=reader.get(
                    m, path, "allow_insecure", bool, _DEFAULT.allow_insecure, "true or false"
                ),
                max_response_bytes=reader.number(
                    m, path, "max_response_bytes", _DEFAULT.max_response_bytes, 1, 1 << 30, int
                ),
                user_agent=user_agent,
                send=reader.get(m, path, "send", str, _DEFAULT.send, text),
                expect=reader.get(m, path, "expect", str, _DEFAULT.expect, text),
                query_name=query_name,
                query_type=reader.get(
                    m, path, "query_type", str, _DEFAULT.query_type, "a record type"
                ).upper(),
                expected_rcode=reader.get(
                    m, path, "expected_rcode", str, _DEFAULT.expected_rcode, "an rcode"
                ).upper(),
                expected_data=reader.get(m, path, "expected_data", str, _DEFAULT.expected_data, text),
                expected_json=expected_json,
                max_response_time=max_response_time,
                invert=reader.get(m, path, "invert", bool, _DEFAULT.invert, "true or false"),
                quorum=reader.number(m, path, "quorum", 1, 1, 100, int) if "quorum" in m else None,
                certificate_expiry_days=expiry_days,
                certificate_expiry_fails=expiry_fails,
                heartbeat=heartbeat,
            )
        )
    return tuple(result)


def _expected_codes(reader: Reader, m: dict[str, Any], path: KeyPath) -> tuple[tuple[int, int], ...]:
    """Cloudflare's shape: "2xx", "200-299", 200 or a list of them."""
    codes_raw = m.get("expected_codes")
    if codes_raw is None:
        return _DEFAULT.expected_codes
    if isinstance(codes_raw, int) and not isinstance(codes_raw, bool):
        codes_raw = str(codes_raw)
    elif isinstance(codes_raw, list):
        codes_raw = ",".join(str(c) for c in codes_raw)
    if not isinstance(codes_raw, str):
        raise reader.error((*path, "expected_codes"), 'expected e.g. "2xx", "200" or "200-299"')
    try:
        return parse_expected_codes(codes_raw)
    except ValueError as error:
        raise reader.error((*path, "expected_codes"), str(error)) from None


def _max_response_time(reader: Reader, m: dict[str, Any], path: KeyPath, timeout: float) -> float | None:
    """Seconds; below the timeout, or a slow answer would be a timeout first."""
    if m.get("max_response_time") is None:
        return _DEFAULT.max_response_time
    limit = reader.number(m, path, "max_response_time", 0.0, 0.001, 600, float)
    if limit >= timeout:
        raise reader.error(
            (*path, "max_response_time"), f"expected less than the timeout ({timeout} s), got {limit}"
        )
    return limit


def _certificate_expiry(
    reader: Reader, m: dict[str, Any], path: KeyPath, kind: MonitorType
) -> tuple[float | None, bool]:
    """certificate_expiry_days (and _fails): https only, where there is a certificate."""
    days = m.get("certificate_expiry_days")
    fails = reader.get(m, path, "certificate_expiry_fails", bool, False, "true or false")
    for key in ("certificate_expiry_days", "certificate_expiry_fails"):
        if key in m and kind is not MonitorType.HTTPS:
            raise reader.error(
                (*path, key), f"expected an https monitor (it reads the certificate), got {kind}"
            )
    if days is None:
        if fails:
            raise reader.error(
                (*path, "certificate_expiry_fails"), "expected certificate_expiry_days beside it"
            )
        return None, False
    return reader.number(m, path, "certificate_expiry_days", 14, 0.01, 3650, float), fails


def _expected_json(
    reader: Reader, m: dict[str, Any], path: KeyPath, kind: MonitorType
) -> JsonCondition | None:
    """`$.status == "ok"`: parsed and its path compiled here, so a mistake stops the load."""
    raw = m.get("expected_json")
    if raw is None:
        return _DEFAULT.expected_json
    where = (*path, "expected_json")
    if kind not in (MonitorType.HTTP, MonitorType.HTTPS):
        raise reader.error(where, f"expected an http or https monitor (it reads the body), got {kind}")
    text = reader.get(m, path, "expected_json", str, "", "a condition such as '$.status == \"ok\"'")
    try:
        return parse_json_condition(text)
    except ValueError as error:
        raise reader.error(where, str(error)) from None


def _headers(reader: Reader, raw: Any, path: KeyPath) -> tuple[tuple[str, str], ...]:
    """Cloudflare's shape: header = { Host = ["example.com"] } (a plain string works too)."""
    table = reader.table(raw, path)
    headers = []
    for name, value in table.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise reader.error((*path, name), 'expected a string or a list of strings, e.g. ["example.com"]')
        for v in values:
            http_valid(reader, (*path, name), http.header_problem(name, v))
        headers += [(name, v) for v in values]
    return tuple(headers)


def http_valid(reader: Reader, where: KeyPath, problem: str | None) -> None:
    """Reject what a check could not send as HTTP/1.1 (a line break in a header...)."""
    if problem is not None:
        raise reader.error(where, problem)
