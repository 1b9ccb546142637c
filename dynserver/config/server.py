"""[server]: the DNS and HTTP listeners, CHAOS answers, the TCP limits, the control socket and
the user a process started as root becomes."""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
from typing import Any

from dynserver.config.reader import KeyPath, Reader, describe
from dynserver.model import Listener, RrlConfig, ServerConfig

_SERVER_KEYS = {
    "dns",
    "http",
    "chaos_version",
    "chaos_hostname",
    "tcp_idle_timeout",
    "tcp_message_timeout",
    "tcp_max_connections",
    "tcp_max_connections_per_client",
    "database",
    "history_hours",
    "control",
    "user",
    "rrl",
    "cookie_secret",
    "checks_in_flight",
}
_RRL_KEYS = {"enabled", "rate", "slip", "window", "exempt"}


def read_server(reader: Reader, raw: Any) -> ServerConfig:
    key_path: KeyPath = ("server",)
    table = reader.table(raw, key_path)
    reader.unknown(table, key_path, _SERVER_KEYS)
    dns_raw = table.get("dns", ["127.0.0.1:5353"])
    if isinstance(dns_raw, str):
        dns_raw = [dns_raw]
    if not isinstance(dns_raw, list) or not dns_raw:
        raise reader.error((*key_path, "dns"), 'expected a list of "host:port" strings')
    listeners = tuple(read_listener(reader, (*key_path, "dns"), item) for item in dns_raw)
    http_raw = table.get("http", "")
    http = None if http_raw == "" else read_listener(reader, (*key_path, "http"), http_raw)
    text = "a string"
    return ServerConfig(
        dns=listeners,
        http=http,
        chaos_version=reader.get(table, key_path, "chaos_version", str, None, text) or None,
        chaos_hostname=reader.get(table, key_path, "chaos_hostname", str, None, text) or None,
        tcp_idle_timeout=reader.number(table, key_path, "tcp_idle_timeout", 10.0, 0.1, 3600, float),
        tcp_message_timeout=reader.number(table, key_path, "tcp_message_timeout", 5.0, 0.1, 600, float),
        tcp_max_connections=reader.number(table, key_path, "tcp_max_connections", 1024, 1, 100_000, int),
        tcp_max_connections_per_client=reader.number(
            table, key_path, "tcp_max_connections_per_client", 64, 1, 100_000, int
        ),
        control=reader.get(table, key_path, "control", str, None, 'a file name ("" for none)'),
        checks_in_flight=reader.number(table, key_path, "checks_in_flight", 256, 1, 10_000, int),
        user=_read_user(reader, table, key_path),
        rrl=_read_rrl(reader, table.get("rrl", {}), (*key_path, "rrl")),
        cookie_secret=_read_cookie_secret(reader, table, key_path),
    )


def _read_rrl(reader: Reader, raw: Any, key_path: KeyPath) -> RrlConfig:
    """[server.rrl]: response rate limiting (docs/configuration.md)."""
    table = reader.table(raw, key_path)
    reader.unknown(table, key_path, _RRL_KEYS)
    exempt_raw = table.get("exempt", [])
    if not isinstance(exempt_raw, list) or not all(isinstance(item, str) for item in exempt_raw):
        raise reader.error((*key_path, "exempt"), 'expected a list of networks ("192.0.2.0/24")')
    exempt = []
    for item in exempt_raw:
        try:
            exempt.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise reader.error((*key_path, "exempt"), f"{item!r} is not a network") from None
    return RrlConfig(
        enabled=reader.get(table, key_path, "enabled", bool, True, "true or false"),
        rate=reader.number(table, key_path, "rate", 200, 1, 10_000_000, int),
        slip=reader.number(table, key_path, "slip", 2, 0, 100, int),
        window=reader.number(table, key_path, "window", 1.0, 0.1, 60, float),
        exempt=tuple(exempt),
    )


def _read_cookie_secret(reader: Reader, table: dict[str, Any], key_path: KeyPath) -> bytes | None:
    """[server] cookie_secret: 32 hex digits (16 bytes, RFC 9018), or none (random)."""
    text = reader.get(table, key_path, "cookie_secret", str, None, "32 hexadecimal digits")
    if not text:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise reader.error((*key_path, "cookie_secret"), "expected 32 hexadecimal digits (16 bytes)")
    return bytes.fromhex(text)


def _read_user(reader: Reader, table: dict[str, Any], key_path: KeyPath) -> str | None:
    """[server] user, checked against this system's users when it will be used: only a
    process started as root changes user, and a config checked elsewhere (in CI, on a
    laptop) need not name a user that exists there."""
    user = reader.get(table, key_path, "user", str, None, "a user name") or None
    if user is not None and os.geteuid() == 0:
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise reader.error(
                (*key_path, "user"),
                f"no user {user!r} on this system; create it (useradd --system --no-create-home "
                f"--shell /usr/sbin/nologin {user}) or name an existing one",
            ) from None
    return user


def parse_listener(value: str) -> Listener:
    """'127.0.0.1:5353' or '[::1]:5353' -> Listener; ValueError with the reason."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if not match:
        raise ValueError('expected "host:port", e.g. "127.0.0.1:5353" or "[::1]:5353"')
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range; expected a port from 0 to 65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"{host!r} is not an IP address; expected e.g. 127.0.0.1 or [::1]") from None
    return Listener(host=host, port=port)


def read_listener(reader: Reader, key_path: KeyPath, value: Any) -> Listener:
    if not isinstance(value, str):
        raise reader.error(key_path, f'expected a "host:port" string, got {describe(value)}')
    try:
        return parse_listener(value)
    except ValueError as error:
        raise reader.error(key_path, f"{value!r}: {error}") from None
