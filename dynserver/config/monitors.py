"""[monitors.NAME]: reusable health-check definitions (option names follow Cloudflare's)."""

from __future__ import annotations

from typing import Any

from dynserver.config.reader import KeyPath, Reader
from dynserver.health import http
from dynserver.health.probes import parse_expected_codes
from dynserver.model import Monitor

_MONITOR_TYPES = {"http", "https", "tcp", "dns", "icmp"}
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
}


def read_monitors(reader: Reader, raw: Any) -> tuple[Monitor, ...]:
    table = reader.table(raw, ("monitors",))
    result = []
    for name, monitor_raw in table.items():
        path: KeyPath = ("monitors", name)
        m = reader.table(monitor_raw, path)
        reader.unknown(m, path, _MONITOR_KEYS)
        kind = reader.get(m, path, "type", str, "", "one of: " + ", ".join(sorted(_MONITOR_TYPES)))
        if kind not in _MONITOR_TYPES:
            raise reader.error((*path, "type"), f"expected one of: {', '.join(sorted(_MONITOR_TYPES))}")
        interval = reader.number(m, path, "interval", 10.0, 0.1, 86400, float)
        timeout = reader.number(m, path, "timeout", min(2.0, interval), 0.05, 600, float)
        if timeout > interval:
            raise reader.error(
                (*path, "timeout"), f"expected at most the interval ({interval} s), got {timeout}"
            )
        port = m.get("port")
        if port is not None:
            port = reader.number(m, path, "port", 0, 1, 65535, int)
        elif kind == "tcp":
            raise reader.error((*path, "port"), "a tcp monitor needs a port")
        codes_raw = m.get("expected_codes", "2xx,3xx")
        if isinstance(codes_raw, int) and not isinstance(codes_raw, bool):
            codes_raw = str(codes_raw)
        elif isinstance(codes_raw, list):
            codes_raw = ",".join(str(c) for c in codes_raw)
        if not isinstance(codes_raw, str):
            raise reader.error((*path, "expected_codes"), 'expected e.g. "2xx", "200" or "200-299"')
        try:
            codes = parse_expected_codes(codes_raw)
        except ValueError as error:
            raise reader.error((*path, "expected_codes"), str(error)) from None
        query_name = reader.get(m, path, "query_name", str, None, "a domain name")
        if kind == "dns" and not query_name:
            raise reader.error((*path, "query_name"), "a dns monitor needs query_name (the name to ask)")
        text = "a string"
        url_path = reader.get(m, path, "path", str, "/", "a URL path")
        method = reader.get(m, path, "method", str, "GET", "an HTTP method").upper()
        user_agent = reader.get(m, path, "user_agent", str, None, text)
        http_valid(reader, (*path, "path"), http.path_problem(url_path))
        http_valid(reader, (*path, "method"), http.method_problem(method))
        if user_agent is not None:
            http_valid(reader, (*path, "user_agent"), http.header_problem("User-Agent", user_agent))
        result.append(
            Monitor(
                name=name,
                type=kind,
                port=port,
                path=url_path,
                interval=interval,
                timeout=timeout,
                retries=reader.number(m, path, "retries", 0, 0, 10, int),
                consecutive_up=reader.number(m, path, "consecutive_up", 1, 1, 1000, int),
                consecutive_down=reader.number(m, path, "consecutive_down", 1, 1, 1000, int),
                failback_delay=reader.number(m, path, "failback_delay", 0, 0, 86400 * 7, float),
                method=method,
                header=_headers(reader, m.get("header", {}), (*path, "header")),
                expected_codes=codes,
                expected_body=reader.get(m, path, "expected_body", str, None, text),
                unexpected_body=reader.get(m, path, "unexpected_body", str, None, text),
                follow_redirects=reader.get(m, path, "follow_redirects", bool, False, "true or false"),
                allow_insecure=reader.get(m, path, "allow_insecure", bool, False, "true or false"),
                max_response_bytes=reader.number(m, path, "max_response_bytes", 1 << 20, 1, 1 << 30, int),
                user_agent=user_agent,
                send=reader.get(m, path, "send", str, None, text),
                expect=reader.get(m, path, "expect", str, None, text),
                query_name=query_name,
                query_type=reader.get(m, path, "query_type", str, "A", "a record type").upper(),
                expected_rcode=reader.get(m, path, "expected_rcode", str, "NOERROR", "an rcode").upper(),
                expected_data=reader.get(m, path, "expected_data", str, None, text),
            )
        )
    return tuple(result)


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
