"""Load and validate the TOML config and the master files it names.

Every error names the file, the line and the key, and says what was expected, before
anything is served. Paths in the config are relative to the config file.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
import re
import time
import tomllib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynserver.demo import DemoBackend
from dynserver.dns import wire
from dynserver.dns.masterfile import build_rrsets, read_master_file, read_text
from dynserver.dns.zone import RRset, SoaFields, make_rrset, soa_rrset
from dynserver.errors import ConfigError
from dynserver.health import http
from dynserver.health.probes import parse_expected_codes
from dynserver.model import (
    CLOUDFLARE_API,
    DEFAULT_RESOLVERS,
    Config,
    DynamicRecord,
    Listener,
    MirrorConfig,
    MirrorRecord,
    Monitor,
    NotifyConfig,
    Secondary,
    Secret,
    ServerConfig,
    Target,
    TransferConfig,
    TsigKey,
    WebConfig,
    ZoneConfig,
)

__all__ = ["Config", "load", "parse_listener", "parse_name"]
from dynserver.types import Name
from dynserver.update.limits import LimitPolicy

T = TypeVar("T")
IN = dns.rdataclass.IN
KeyPath = tuple[str, ...]

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
}
_ZONE_FILE_KEYS = {"file", "records", "transfer"}
_ZONE_GENERATED_KEYS = {
    "nameservers",
    "hostmaster",
    "glue",
    "ttl",
    "refresh",
    "retry",
    "expire",
    "negative_ttl",
    "records",
    "transfer",
}
_TOP_KEYS = {"server", "zones", "monitors", "notifications", "demo", "keys", "mirrors", "web"}


def load(path: str | Path) -> Config:
    """Read, validate and return the configuration, or raise ConfigError."""
    path = Path(path)
    shown = str(path)
    try:
        text = read_text(path, shown, "TOML file")
    except OSError as error:
        raise ConfigError(
            f"cannot read config: {error.strerror}; expected a readable TOML file", path=shown
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column \d+\)", str(error))
        line = int(match.group(1)) if match else 0
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise ConfigError(
            f"not valid TOML: {message}; expected TOML syntax (https://toml.io), "
            'e.g. dns = ["127.0.0.1:53"] or [zones."example.com"]',
            path=shown,
            line=line,
        ) from None
    reader = _Reader(shown, text)
    reader.unknown(data, (), _TOP_KEYS)
    server = _server(reader, data.get("server", {}))
    monitors = _monitors(reader, data.get("monitors", {}))
    mirrors = _mirrors(reader, data.get("mirrors", {}), path.parent, data.get("keys", {}))
    zones = _zones(reader, data.get("zones", {}), path.parent, {m.name: m for m in monitors}, mirrors)
    keys = _keys(reader, data.get("keys", {}), path.parent, zones)
    zones = _transfers(reader, data.get("zones", {}), zones, keys)
    server_table = data.get("server", {})
    database_text = reader.get(server_table, ("server",), "database", str, "dynserver.db", "a file name")
    return Config(
        path=path,
        server=server,
        zones=zones,
        monitors=monitors,
        database=(path.parent / database_text) if database_text else None,
        history_hours=reader.number(server_table, ("server",), "history_hours", 48, 1, 24 * 366, float),
        notify=_notifications(reader, data.get("notifications", {})),
        demo=_demo(reader, data.get("demo", {})),
        keys=keys,
        mirrors=tuple(mirrors.mirrors.values()),
        web=_web(reader, data.get("web", {})),
    )


class _Reader:
    """Typed access to TOML values that turns mistakes into located ConfigErrors."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = _locate_keys(text)

    def error(self, key_path: KeyPath, message: str) -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line(key_path), key=_dotted(key_path))

    def line(self, key_path: KeyPath) -> int:
        for end in range(len(key_path), 0, -1):
            line = self.lines.get(key_path[:end])
            if line:
                return line
        return 0

    def table(self, value: Any, key_path: KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key_path, f"expected a table, got {_kind(value)}")
        return value

    def unknown(self, table: dict[str, Any], key_path: KeyPath, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                choices = ", ".join(sorted(allowed))
                raise self.error((*key_path, key), f"unknown key; expected one of: {choices}")

    def get(
        self,
        table: dict[str, Any],
        key_path: KeyPath,
        key: str,
        kind: type[T] | tuple[type, ...],
        default: T,
        what: str,
    ) -> T:
        if key not in table:
            return default
        value = table[key]
        # bool is an int in Python; a number key must not accept true/false.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error((*key_path, key), f"expected {what}, got {_kind(value)}")
        if not isinstance(value, kind):
            raise self.error((*key_path, key), f"expected {what}, got {_kind(value)}")
        return value  # type: ignore[return-value]

    def number(
        self,
        table: dict[str, Any],
        key_path: KeyPath,
        key: str,
        default: float,
        low: float,
        high: float,
        cast: Callable[[Any], T],
    ) -> T:
        value = self.get(table, key_path, key, (int, float), default, f"a number from {low} to {high}")
        if not low <= value <= high:
            raise self.error((*key_path, key), f"expected a number from {low} to {high}, got {value}")
        if cast is int and value != int(value):
            raise self.error((*key_path, key), f"expected a whole number from {low} to {high}, got {value}")
        return cast(value)


def _server(reader: _Reader, raw: Any) -> ServerConfig:
    key_path: KeyPath = ("server",)
    table = reader.table(raw, key_path)
    reader.unknown(table, key_path, _SERVER_KEYS)
    dns_raw = table.get("dns", ["127.0.0.1:5353"])
    if isinstance(dns_raw, str):
        dns_raw = [dns_raw]
    if not isinstance(dns_raw, list) or not dns_raw:
        raise reader.error((*key_path, "dns"), 'expected a list of "host:port" strings')
    listeners = tuple(_listener(reader, (*key_path, "dns"), item) for item in dns_raw)
    http_raw = table.get("http", "")
    http = None if http_raw == "" else _listener(reader, (*key_path, "http"), http_raw)
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
    )


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


def _listener(reader: _Reader, key_path: KeyPath, value: Any) -> Listener:
    if not isinstance(value, str):
        raise reader.error(key_path, f'expected a "host:port" string, got {_kind(value)}')
    try:
        return parse_listener(value)
    except ValueError as error:
        raise reader.error(key_path, f"{value!r}: {error}") from None


def parse_name(text: str) -> Name:
    """A domain name in presentation form (trailing dot optional) -> label tuple."""
    name = dns.name.from_text(text.strip().rstrip(".") + ".")
    return tuple(label.lower() for label in name.labels[:-1])


def _zones(
    reader: _Reader, raw: Any, folder: Path, monitors: dict[str, Monitor], mirrors: _Mirrors | None = None
) -> tuple[ZoneConfig, ...]:
    zones_table = reader.table(raw, ("zones",))
    if not zones_table:
        raise reader.error(("zones",), 'no zones; expected at least one [zones."example.com"] table')
    seen: dict[Name, str] = {}
    result = []
    for zone_key, zone_raw in zones_table.items():
        key_path: KeyPath = ("zones", zone_key)
        try:
            origin = parse_name(zone_key)
        except Exception as error:
            detail = str(error).rstrip(".")
            raise reader.error(
                key_path, f"not a valid zone name ({detail}); expected e.g. dyn.example.com"
            ) from None
        if origin in seen:
            raise reader.error(
                key_path,
                f'duplicate zone: the same zone as [zones."{seen[origin]}"] (names ignore case and '
                "the final dot); expected each zone once",
            )
        seen[origin] = zone_key
        table = reader.table(zone_raw, key_path)
        if "file" in table:
            for key in table:
                if key in _ZONE_GENERATED_KEYS - _ZONE_FILE_KEYS:
                    raise reader.error(
                        (*key_path, key),
                        'only for a zone without "file" (its SOA and NS come from the master file); '
                        f"expected one of: {', '.join(sorted(_ZONE_FILE_KEYS))}",
                    )
            reader.unknown(table, key_path, _ZONE_FILE_KEYS)
            file_name = reader.get(table, key_path, "file", str, "", "a file name")
            file_path = folder / file_name
            if not file_name or not file_path.is_file():
                raise reader.error(
                    (*key_path, "file"),
                    f"no master file {str(file_path)!r}; expected the path of an RFC 1035 master "
                    "file, relative to the config file",
                )
            shown = str(Path(reader.path).parent / file_name)
            records = read_master_file(file_path, origin, display_path=shown)
            rrsets = build_rrsets(records, origin, shown)
        else:
            reader.unknown(table, key_path, _ZONE_GENERATED_KEYS)
            file_path = None
            rrsets = _generated(reader, table, key_path, origin)
        dynamic = _records(reader, table.get("records", {}), key_path, origin, monitors, rrsets, mirrors)
        result.append(ZoneConfig(name=origin, file=file_path, rrsets=tuple(rrsets), records=dynamic))
    return tuple(result)


def _generated(reader: _Reader, table: dict[str, Any], key_path: KeyPath, origin: Name) -> list[RRset]:
    """SOA and NS (plus glue) for a zone that has no master file.

    Keys: nameservers (required; the first is the SOA MNAME), hostmaster (default
    hostmaster.<zone>; "admin@example.com" works), ttl (of SOA, NS and glue; 3600),
    refresh (3600), retry (600), expire (1209600), negative_ttl (the SOA MINIMUM; 60) and
    glue = { "ns1.<zone>" = ["192.0.2.53", "2001:db8::53"] }, required for every
    nameserver inside the zone and allowed for no other. Everything is checked before
    anything is built.
    """
    ns_path = (*key_path, "nameservers")
    raw_ns = table.get("nameservers")
    if not isinstance(raw_ns, list) or not raw_ns or not all(isinstance(n, str) for n in raw_ns):
        raise reader.error(
            ns_path,
            'a zone without "file" needs its name servers; expected nameservers = '
            '["ns1.example.com", ...] (the host names its NS records list)',
        )
    nameservers = [_host_name(reader, ns_path, text) for text in raw_ns]
    zone_text = wire.name_to_text(origin)
    hostmaster_text = reader.get(table, key_path, "hostmaster", str, f"hostmaster.{zone_text}", "a mailbox")
    # admin@example.com -> admin.example.com; a dot in the local part is escaped
    # (first.last@example.com -> first\.last.example.com, RFC 1035 8).
    local, at, domain = hostmaster_text.rpartition("@")
    mailbox = local.replace(".", "\\.") + "." + domain if at else hostmaster_text
    hostmaster = _host_name(reader, (*key_path, "hostmaster"), mailbox)
    ttl = reader.number(table, key_path, "ttl", 3600, 1, 2**31 - 1, int)
    fields = SoaFields(
        mname=nameservers[0],
        rname=hostmaster,
        serial=int(time.time()),  # a fresh zone starts at the current time (RFC 1912 2.2)
        refresh=reader.number(table, key_path, "refresh", 3600, 1, 2**31 - 1, int),
        retry=reader.number(table, key_path, "retry", 600, 1, 2**31 - 1, int),
        expire=reader.number(table, key_path, "expire", 1209600, 1, 2**31 - 1, int),
        minimum=reader.number(table, key_path, "negative_ttl", 60, 0, 86400, int),
    )
    in_zone = [ns for ns in nameservers if ns[len(ns) - len(origin) :] == origin]
    glue_table = reader.table(table.get("glue", {}), (*key_path, "glue"))
    glue: dict[Name, dict[int, list[dns.rdata.Rdata]]] = {}
    for host_text, addresses in glue_table.items():
        glue_path = (*key_path, "glue", host_text)
        host = _host_name(reader, glue_path, host_text)
        if host not in in_zone:
            raise reader.error(
                glue_path,
                f"glue for a host that is not a nameserver inside this zone; expected glue only for "
                f"nameservers ending in {zone_text} (others are found through their own zones)",
            )
        if not isinstance(addresses, list) or not addresses:
            raise reader.error(
                glue_path, f'expected a list of addresses, e.g. ["192.0.2.53"], got {_kind(addresses)}'
            )
        by_type = glue.setdefault(host, {})
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address if isinstance(address, str) else "")
            except ValueError:
                raise reader.error(
                    glue_path, f"{address!r} is not an IP address; expected e.g. 192.0.2.53 or 2001:db8::53"
                ) from None
            rtype = dns.rdatatype.A if ip.version == 4 else dns.rdatatype.AAAA
            by_type.setdefault(int(rtype), []).append(dns.rdata.from_text(IN, rtype, str(ip)))
    for ns in in_zone:
        if ns not in glue:
            raise reader.error(
                ns_path,
                f"nameserver {wire.name_to_text(ns)} is inside the zone but has no address; expected "
                f'glue = {{ "{wire.name_to_text(ns)}" = ["192.0.2.53"] }}',
            )
    # No origin: names stay absolute, as the master file reader keeps them (relativize=False).
    ns_rdatas = [dns.rdata.from_text(IN, dns.rdatatype.NS, wire.name_to_text(ns)) for ns in nameservers]
    rrsets = [soa_rrset(origin, ttl, fields), make_rrset(origin, wire.TYPE_NS, ttl, ns_rdatas)]
    for host, by_type in glue.items():
        rrsets.extend(make_rrset(host, rtype, ttl, rdatas) for rtype, rdatas in by_type.items())
    return rrsets


def _host_name(reader: _Reader, key_path: KeyPath, text: str) -> Name:
    try:
        return parse_name(text)
    except Exception as error:
        detail = str(error).rstrip(".")
        raise reader.error(
            key_path, f"{text!r} is not a host name ({detail}); expected e.g. ns1.example.com"
        ) from None


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _dotted(key_path: KeyPath) -> str:
    return ".".join(k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else f'"{k}"' for k in key_path)


# -- where each key is written: TOML parsers do not keep positions -------------------

_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEYS = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_KEYS})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN_RE = re.compile(rf"^\s*({_KEYS})\s*=")


def _split_keys(text: str) -> KeyPath:
    parts = re.findall(_KEY_PART, text)
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in parts)


def _locate_keys(text: str) -> dict[KeyPath, int]:
    """Map each table header and key to the line it is first written on."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            table = _split_keys(header.group(1))
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN_RE.match(line)
        if assign:
            lines.setdefault((*table, *_split_keys(assign.group(1))), number)
    return lines


# -- monitors, dynamic records, notifications, demo (health checks and failover) -----

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
_RECORD_KEYS = {"type", "monitor", "ttl", "targets", "policy", "fallback", "min_up", "pending_ttl", "mirror"}
_TARGET_KEYS = {"name", "value", "priority", "maintenance", "host", "port", "path"}
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def _monitors(reader: _Reader, raw: Any) -> tuple[Monitor, ...]:
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
        _http_valid(reader, (*path, "path"), http.path_problem(url_path))
        _http_valid(reader, (*path, "method"), http.method_problem(method))
        if user_agent is not None:
            _http_valid(reader, (*path, "user_agent"), http.header_problem("User-Agent", user_agent))
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


def _headers(reader: _Reader, raw: Any, path: KeyPath) -> tuple[tuple[str, str], ...]:
    """Cloudflare's shape: header = { Host = ["example.com"] } (a plain string works too)."""
    table = reader.table(raw, path)
    headers = []
    for name, value in table.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise reader.error((*path, name), 'expected a string or a list of strings, e.g. ["example.com"]')
        for v in values:
            _http_valid(reader, (*path, name), http.header_problem(name, v))
        headers += [(name, v) for v in values]
    return tuple(headers)


def _http_valid(reader: _Reader, where: KeyPath, problem: str | None) -> None:
    """Reject what a check could not send as HTTP/1.1 (a line break in a header...)."""
    if problem is not None:
        raise reader.error(where, problem)


def _records(
    reader: _Reader,
    raw: Any,
    zone_path: KeyPath,
    origin: Name,
    monitors: dict[str, Monitor],
    static: list[RRset],
    mirrors: _Mirrors | None = None,
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
        if kind not in ("A", "AAAA", "CNAME"):
            raise reader.error((*path, "type"), "expected A, AAAA or CNAME")
        if kind == "CNAME" and name == origin:
            raise reader.error((*path, "type"), "a CNAME cannot be at the zone apex (it has SOA and NS)")
        monitor = reader.get(r, path, "monitor", str, None, "a monitor name")
        if monitor is not None and monitor not in monitors:
            known = ", ".join(sorted(monitors)) or "none defined"
            raise reader.error((*path, "monitor"), f"no monitor named {monitor!r}; expected one of: {known}")
        policy = reader.get(r, path, "policy", str, "failover", "failover or check-only")
        if policy not in ("failover", "check-only"):
            raise reader.error((*path, "policy"), "expected failover or check-only")
        fallback = reader.get(r, path, "fallback", str, "preferred", "preferred, all or none")
        if fallback not in ("preferred", "all", "none"):
            raise reader.error((*path, "fallback"), "expected preferred, all or none")
        ttl = reader.number(r, path, "ttl", 60, 0, 2**31 - 1, int)
        pending_ttl = r.get("pending_ttl")
        if pending_ttl is not None:
            pending_ttl = reader.number(r, path, "pending_ttl", 0, 0, 2**31 - 1, int)
        targets = _targets(reader, r.get("targets"), (*path, "targets"), kind)
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
                monitor=monitor,
                policy=policy,
                fallback=fallback,
                min_up=reader.number(r, path, "min_up", 1, 1, 1000, int),
                pending_ttl=pending_ttl,
                mirror=_mirror_records(reader, r, path, kind, ttl, mirrors or _Mirrors()),
            )
        )
    return tuple(result)


def _targets(reader: _Reader, raw: Any, path: KeyPath, kind: str) -> tuple[Target, ...]:
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
        port = item.get("port")
        if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
            raise reader.error(path, f"target {name!r}: port must be 1-65535")
        for key in ("host", "path"):
            if key in item and not isinstance(item[key], str):
                raise reader.error(path, f"target {name!r}: {key} must be a string")
        if "host" in item:
            problem = http.header_problem("Host", item["host"])
            _http_valid(reader, path, problem and f"target {name!r}: {problem}")
        if "path" in item:
            problem = http.path_problem(item["path"])
            _http_valid(reader, path, problem and f"target {name!r}: {problem}")
        maintenance = item.get("maintenance", False)
        if not isinstance(maintenance, bool):
            raise reader.error(path, f"target {name!r}: maintenance must be true or false")
        targets.append(
            Target(
                name=name.lower(),
                value=value,
                priority=priority,
                maintenance=maintenance,
                host=item.get("host"),
                port=port,
                path=item.get("path"),
            )
        )
    return tuple(targets)


def _target_value(reader: _Reader, path: KeyPath, name: str, value: Any, kind: str) -> str:
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


def _notifications(reader: _Reader, raw: Any) -> NotifyConfig:
    path: KeyPath = ("notifications",)
    table = reader.table(raw, path)
    reader.unknown(table, path, {"apprise", "on_failure", "on_recovery"})
    lists = {}
    for key in ("apprise", "on_failure", "on_recovery"):
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and "://" in v for v in value):
            raise reader.error((*path, key), 'expected a list of URLs, e.g. ["https://hooks.example.com/x"]')
        lists[key] = tuple(value)
    return NotifyConfig(**lists)


def _web(reader: _Reader, raw: Any) -> WebConfig:
    """[web]: the admin password hash, public read-only pages, the resolvers to compare,
    how long the propagation page waits for each server, and the /metrics token."""
    path: KeyPath = ("web",)
    table = reader.table(raw, path)
    keys = {"admin_password_hash", "public", "resolvers", "propagation_timeout", "metrics_token", "limits"}
    reader.unknown(table, path, keys)
    hashed = reader.get(table, path, "admin_password_hash", str, "", "a hash from `dynserver hash-password`")
    if hashed and not hashed.startswith("scrypt$"):
        raise reader.error((*path, "admin_password_hash"), "expected a hash from `dynserver hash-password`")
    resolvers = table.get("resolvers", list(DEFAULT_RESOLVERS))
    if not isinstance(resolvers, list) or not all(isinstance(r, str) for r in resolvers):
        raise reader.error(
            (*path, "resolvers"), 'expected a list of addresses, e.g. ["1.1.1.1", "9.9.9.9:53"]'
        )
    for text in resolvers:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
        try:
            ipaddress.ip_address(host)
            if port and not 0 < int(port) < 65536:
                raise ValueError(port)
        except ValueError:
            raise reader.error(
                (*path, "resolvers"), f"{text!r}: expected an IP address, optionally :port"
            ) from None
    token = reader.get(table, path, "metrics_token", str, "", "a random string")
    if token and (len(token) < 16 or not token.isprintable() or " " in token):
        raise reader.error(
            (*path, "metrics_token"),
            "expected at least 16 printable characters without spaces, e.g. from `openssl rand -hex 32`",
        )
    return WebConfig(
        admin_password_hash=hashed or None,
        public=reader.get(table, path, "public", bool, False, "true or false"),
        resolvers=tuple(resolvers),
        propagation_timeout=reader.number(table, path, "propagation_timeout", 1.5, 0.1, 10, float),
        metrics_token=token or None,
        limits=_limits(reader, table.get("limits", {}), (*path, "limits")),
    )


def _limits(reader: _Reader, raw: Any, path: KeyPath) -> LimitPolicy:
    """[web.limits]: the rate limits and lockout of dyndns2, the API and the login."""
    table = reader.table(raw, path)
    default = LimitPolicy()
    keys = {"burst", "rate", "client_failures", "credential_failures", "failure_window", "lockout"}
    reader.unknown(table, path, keys)
    policy = LimitPolicy(
        burst=reader.number(table, path, "burst", default.burst, 1, 100_000, int),
        rate=reader.number(table, path, "rate", default.rate, 0.001, 10_000, float),
        client_failures=reader.number(
            table, path, "client_failures", default.client_failures, 1, 10_000, int
        ),
        credential_failures=reader.number(
            table, path, "credential_failures", default.credential_failures, 1, 100_000, int
        ),
        failure_window=reader.number(table, path, "failure_window", default.failure_window, 1, 86_400, float),
        lockout=reader.number(table, path, "lockout", default.lockout, 1, 86_400, float),
    )
    if policy.credential_failures <= policy.client_failures:
        raise reader.error(
            (*path, "credential_failures"),
            f"expected more than client_failures ({policy.client_failures}), got "
            f"{policy.credential_failures}: otherwise one client guessing wrong locks the credential's "
            "owner out before it locks itself out",
        )
    return policy


def _demo(reader: _Reader, raw: Any) -> tuple[DemoBackend, ...]:
    path: KeyPath = ("demo",)
    table = reader.table(raw, path)
    reader.unknown(table, path, {"backends", "cycle"})
    cycle = reader.number(table, path, "cycle", 60, 1, 86400, float)
    backends = []
    for index, item in enumerate(table.get("backends", [])):
        if not isinstance(item, dict) or "address" not in item:
            raise reader.error(
                (*path, "backends"), f'backend {index + 1}: expected {{ address = "host:port" }}'
            )
        try:
            listener = parse_listener(str(item["address"]))
        except ValueError as error:
            raise reader.error((*path, "backends"), f"backend {index + 1}: {error}") from None
        outage = item.get("outage")
        if outage is not None and not (
            isinstance(outage, list) and len(outage) == 2 and all(isinstance(x, int | float) for x in outage)
        ):
            raise reader.error((*path, "backends"), f"backend {index + 1}: outage is [start, end] seconds")
        window = (float(outage[0]), float(outage[1])) if outage else None
        backends.append(DemoBackend(listener.host, listener.port, window, cycle))
    return tuple(backends)


_TRANSFER_KEYS = {"secondaries", "allow", "allow_keys", "journal"}
_SECONDARY_KEYS = {"address", "key"}


def _transfers(
    reader: _Reader, raw: Any, zones: tuple[ZoneConfig, ...], keys: tuple[TsigKey, ...]
) -> tuple[ZoneConfig, ...]:
    """[zones.NAME.transfer]: the secondaries told of changes, and who may transfer the zone.

    Read after [keys], whose names the secondaries and allow_keys refer to; ``zones`` are
    in the order of the tables they were read from."""
    known = {key.name for key in keys}
    result = []
    for (zone_key, zone_raw), zone in zip(raw.items(), zones, strict=True):
        if "transfer" not in zone_raw:
            result.append(zone)
            continue
        path: KeyPath = ("zones", zone_key, "transfer")
        table = reader.table(zone_raw["transfer"], path)
        reader.unknown(table, path, _TRANSFER_KEYS)
        allow = []
        for text in _strings(reader, table, (*path, "allow"), '["192.0.2.0/24", "2001:db8::53"]'):
            try:
                allow.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise reader.error(
                    (*path, "allow"),
                    f'{text!r} is not an address or network; expected e.g. "192.0.2.0/24" or "2001:db8::53"',
                ) from None
        allow_keys = []
        for text in _strings(reader, table, (*path, "allow_keys"), '["xfr"]'):
            allow_keys.append(_known_key(reader, (*path, "allow_keys"), text, known))
        transfer = TransferConfig(
            secondaries=_secondaries(reader, table.get("secondaries", []), (*path, "secondaries"), known),
            allow=tuple(allow),
            allow_keys=tuple(allow_keys),
            journal=reader.number(table, path, "journal", 1000, 0, 100_000, int),
        )
        result.append(dataclasses.replace(zone, transfer=transfer))
    return tuple(result)


def _strings(reader: _Reader, table: dict[str, Any], key_path: KeyPath, example: str) -> list[str]:
    value = table.get(key_path[-1], [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise reader.error(key_path, f"expected a list of strings, e.g. {example}")
    return value


def _known_key(reader: _Reader, key_path: KeyPath, text: str, known: set[str], where: str = "") -> str:
    name = text.rstrip(".").lower()
    if name not in known:
        choices = ", ".join(sorted(known)) or "none defined"
        raise reader.error(key_path, f"{where}no [keys.{name}]; expected one of: {choices}")
    return name


def _secondaries(reader: _Reader, raw: Any, key_path: KeyPath, known: set[str]) -> tuple[Secondary, ...]:
    example = '[{ address = "192.0.2.53", key = "xfr" }]'
    if not isinstance(raw, list):
        raise reader.error(key_path, f"expected a list of tables, e.g. {example}")
    result: list[Secondary] = []
    for index, item in enumerate(raw, start=1):
        where = f"secondary {index}"
        if not isinstance(item, dict):
            raise reader.error(key_path, f"{where}: expected a table, e.g. {example}")
        for key in item:
            if key not in _SECONDARY_KEYS:
                choices = ", ".join(sorted(_SECONDARY_KEYS))
                raise reader.error(key_path, f"{where}: unknown key {key!r}; expected one of: {choices}")
        address = item.get("address")
        expected = 'expected its IP address, and port if not 53: "192.0.2.53", "[2001:db8::53]:5353"'
        if not isinstance(address, str):
            raise reader.error(key_path, f"{where}: no address; {expected}")
        try:
            host, port = _host_port(address)
        except ValueError as error:
            raise reader.error(key_path, f"{where}: address {address!r}: {error}; {expected}") from None
        key = item.get("key")
        if key is not None:
            if not isinstance(key, str):
                raise reader.error(key_path, f"{where}: key must be the name of a [keys.NAME]")
            key = _known_key(reader, key_path, key, known, f"{where}: key: ")
        if any((s.host, s.port) == (host, port) for s in result):
            raise reader.error(key_path, f"{where}: {address} is listed twice; expected each secondary once")
        result.append(Secondary(host=host, port=port, key=key))
    return tuple(result)


def _host_port(text: str) -> tuple[str, int]:
    """ "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:53" (53 by default)."""
    value = text.strip()
    try:
        return str(ipaddress.ip_address(value)), 53
    except ValueError:
        pass
    try:
        listener = parse_listener(value)
        host = str(ipaddress.ip_address(listener.host))  # "localhost" is not an address to send to
    except ValueError as error:
        raise ValueError(str(error) if "out of range" in str(error) else "not an IP address") from None
    if listener.port == 0:
        raise ValueError("port 0")
    return host, listener.port


_ALGORITHMS = {"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"}


def _keys(reader: _Reader, raw: Any, folder: Path, zones: tuple[ZoneConfig, ...]) -> tuple[TsigKey, ...]:
    """[keys.NAME]: TSIG keys, each allowed to update the targets it names."""
    table = reader.table(raw, ("keys",))
    targets = {
        f"{wire.name_to_text(r.name).rstrip('.')}/{t.name}"
        for z in zones
        for r in z.records
        for t in r.targets
    }
    records = {wire.name_to_text(r.name).rstrip(".") for z in zones for r in z.records}
    result = []
    for name, key_raw in table.items():
        path: KeyPath = ("keys", name)
        k = reader.table(key_raw, path)
        reader.unknown(k, path, {"algorithm", "secret", "secret_file", "update"})
        algorithm = reader.get(k, path, "algorithm", str, "hmac-sha256", "an HMAC algorithm").lower()
        if algorithm not in _ALGORITHMS:
            raise reader.error((*path, "algorithm"), f"expected one of: {', '.join(sorted(_ALGORITHMS))}")
        if ("secret" in k) == ("secret_file" in k):
            raise reader.error(
                path, "expected exactly one of secret (base64) or secret_file (a file holding it)"
            )
        if "secret_file" in k:
            file_name = reader.get(k, path, "secret_file", str, "", "a file name")
            try:
                text = (folder / file_name).read_text().strip()
            except OSError as error:
                raise reader.error((*path, "secret_file"), f"cannot read: {error.strerror}") from None
        else:
            text = reader.get(k, path, "secret", str, "", "a base64 string")
        try:
            secret = base64.b64decode(text, validate=True)
        except ValueError:
            raise reader.error(path, "the secret is not valid base64 (tsig-keygen prints one)") from None
        if len(secret) < 16:
            raise reader.error(path, "the secret is shorter than 16 bytes; expected e.g. `tsig-keygen NAME`")
        scopes = reader.get(k, path, "update", list, [], 'a list like ["app.dyn.example.test/bravo"]')
        for scope in scopes:
            if not isinstance(scope, str):
                raise reader.error((*path, "update"), "expected strings")
            record, _, target = scope.rstrip(".").lower().partition("/")
            if scope != "*" and not (
                (target == "*" and record in records) or f"{record}/{target}" in targets
            ):
                raise reader.error(
                    (*path, "update"),
                    f"{scope!r} names no target; expected RECORD/TARGET (e.g. app.dyn.example.test/bravo), "
                    "RECORD/* or *",
                )
        result.append(
            TsigKey(
                name=name.rstrip(".").lower(),
                algorithm=algorithm,
                secret=secret,
                update=tuple(s.rstrip(".").lower() if s != "*" else s for s in scopes),
            )
        )
    return tuple(result)


# -- mirrors: Cloudflare and RFC 2136 primaries that receive the answers ---------------

_MIRROR_COMMON_KEYS = {"type", "zone", "reconcile_interval", "timeout"}
_MIRROR_KEYS = {
    # api_token is listed so that writing it gets a pointed error, not "unknown key"
    "cloudflare": _MIRROR_COMMON_KEYS | {"api_token_file", "api_token_env", "api_token", "api_base"},
    "rfc2136": _MIRROR_COMMON_KEYS | {"primary", "key"},
}
_MIRROR_RECORD_KEYS = {"to", "name", "ttl", "proxied", "comment"}
_CLOUDFLARE_ONLY = {"proxied", "comment"}
_ZONE_ID_RE = re.compile(r"[0-9a-f]{32}")
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: anything else breaks the header


@dataclass
class _Mirrors:
    """The parsed [mirrors] tables, and which names records mirror to (each only once)."""

    mirrors: dict[str, MirrorConfig] = field(default_factory=dict)
    seen: dict[tuple[str, str, str], str] = field(default_factory=dict)


def _mirrors(reader: _Reader, raw: Any, folder: Path, keys_raw: Any) -> _Mirrors:
    """[mirrors.NAME]: providers that receive the answers. Parsed before the zones, so a
    record's ``mirror = [{ to = ... }]`` can be checked where it is written; an rfc2136
    mirror's key is checked against the names of [keys] (the keys are parsed later)."""
    table = reader.table(raw, ("mirrors",))
    key_names = {str(k).rstrip(".").lower() for k in keys_raw} if isinstance(keys_raw, dict) else set()
    result = _Mirrors()
    for name, mirror_raw in table.items():
        path: KeyPath = ("mirrors", name)
        m = reader.table(mirror_raw, path)
        kind = reader.get(m, path, "type", str, "", "cloudflare or rfc2136")
        if kind not in _MIRROR_KEYS:
            raise reader.error((*path, "type"), "expected cloudflare or rfc2136")
        reader.unknown(m, path, _MIRROR_KEYS[kind])
        zone_text = reader.get(m, path, "zone", str, "", "a zone name").strip().rstrip(".").lower()
        if not zone_text:
            what = "its name or its 32-character zone id" if kind == "cloudflare" else "its name"
            raise reader.error(path, f'expected zone = "example.com": the zone at the provider ({what})')
        if not (kind == "cloudflare" and _ZONE_ID_RE.fullmatch(zone_text)):
            zone_text = wire.name_to_text(_host_name(reader, (*path, "zone"), zone_text)).rstrip(".")
        common: dict[str, Any] = {
            "name": name,
            "type": kind,
            "zone": zone_text,
            "reconcile_interval": reader.number(m, path, "reconcile_interval", 300, 1, 86400, float),
            "timeout": reader.number(m, path, "timeout", 10, 0.5, 120, float),
        }
        if kind == "cloudflare":
            result.mirrors[name] = MirrorConfig(
                **common, api_token=_api_token(reader, m, path, folder), api_base=_api_base(reader, m, path)
            )
            continue
        primary = reader.get(m, path, "primary", str, "", 'a "host:port" string')
        if not primary:
            raise reader.error(path, 'expected primary = "192.0.2.53:53": the primary that takes the UPDATEs')
        key = reader.get(m, path, "key", str, "", "a key name").rstrip(".").lower()
        if not key:
            raise reader.error(path, 'expected key = "NAME" naming a [keys.NAME]: UPDATEs are signed (TSIG)')
        if key not in key_names:
            known = ", ".join(sorted(key_names)) or "none defined"
            raise reader.error((*path, "key"), f"no [keys.{key}]; expected one of: {known}")
        result.mirrors[name] = MirrorConfig(
            **common, primary=_primary(reader, (*path, "primary"), primary), key=key
        )
    return result


def _api_token(reader: _Reader, m: dict[str, Any], path: KeyPath, folder: Path) -> Secret:
    """The token, from a file or the environment; no message ever includes it."""
    if "api_token" in m:
        raise reader.error(
            (*path, "api_token"),
            "a token does not belong in the config file (configs get shared, pasted and backed "
            'up); expected api_token_file = "cf-token" or api_token_env = "CF_API_TOKEN"',
        )
    if ("api_token_file" in m) == ("api_token_env" in m):
        raise reader.error(
            path,
            "expected exactly one of api_token_file (a file holding the token) or api_token_env "
            "(the environment variable holding it)",
        )
    if "api_token_file" in m:
        where: KeyPath = (*path, "api_token_file")
        file_name = reader.get(m, path, "api_token_file", str, "", "a file name")
        shown = str(Path(reader.path).parent / file_name)
        try:
            text = (folder / file_name).read_text()
        except OSError as error:
            raise reader.error(
                where, f"cannot read {shown!r}: {error.strerror}; expected a file holding the API token"
            ) from None
        except UnicodeDecodeError:
            raise reader.error(
                where, f"{shown!r} is not text; expected a file holding the API token"
            ) from None
    else:
        where = (*path, "api_token_env")
        variable = reader.get(m, path, "api_token_env", str, "", "an environment variable name")
        found = os.environ.get(variable) if variable else None
        if found is None:
            raise reader.error(
                where, f"the environment variable {variable!r} is not set; expected it to hold the API token"
            )
        text = found
    token = text.strip()
    if not token:
        raise reader.error(where, "the API token is empty; expected a Cloudflare API token (Zone.DNS:Edit)")
    if not _TOKEN_RE.fullmatch(token):
        raise reader.error(
            where,
            "the API token contains spaces, line breaks or non-ASCII characters; expected the token "
            "alone (letters, digits, - and _)",
        )
    return Secret(token)


def _api_base(reader: _Reader, m: dict[str, Any], path: KeyPath) -> str:
    text = reader.get(m, path, "api_base", str, CLOUDFLARE_API, "a URL").strip().rstrip("/")
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment or parts.username:
        raise reader.error((*path, "api_base"), f"expected an https:// URL such as {CLOUDFLARE_API}")
    if parts.scheme == "http" and not _loopback(host):
        raise reader.error(
            (*path, "api_base"),
            "http:// would send the token in clear text; expected https:// (http:// is accepted "
            "only for 127.0.0.1, ::1 or localhost, e.g. a local test double)",
        )
    return text


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _primary(reader: _Reader, key_path: KeyPath, text: str) -> Listener:
    """ "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:53" (port 53 by default)."""
    value = text.strip()
    try:
        return Listener(str(ipaddress.ip_address(value)), 53)
    except ValueError:
        pass
    try:
        listener = parse_listener(value)
        ipaddress.ip_address(listener.host)
    except ValueError as error:
        detail = str(error).split(";")[0] if "out of range" in str(error) else "not an IP address"
        raise reader.error(
            key_path, f'{value!r}: {detail}; expected the primary\'s IP address, e.g. "192.0.2.53:53"'
        ) from None
    if listener.port == 0:
        raise reader.error(key_path, f"{value!r}: port 0; expected the port the primary listens on (53)")
    return listener


def _mirror_records(
    reader: _Reader, r: dict[str, Any], path: KeyPath, kind: str, record_ttl: int, mirrors: _Mirrors
) -> tuple[MirrorRecord, ...]:
    """A dynamic record's ``mirror = [{ to = "cf", name = "www.example.com", ... }]``."""
    if "mirror" not in r:
        return ()
    mirror_path: KeyPath = (*path, "mirror")
    raw = r["mirror"]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise reader.error(mirror_path, 'expected a list like [{ to = "cf", name = "www.example.com" }]')
    result = []
    for index, item in enumerate(raw, start=1):
        where = f"mirror {index}"
        if not isinstance(item, dict):
            raise reader.error(
                mirror_path, f'{where}: expected a table {{ to = "cf", name = "www.example.com" }}'
            )
        for key in item:
            if key not in _MIRROR_RECORD_KEYS:
                choices = ", ".join(sorted(_MIRROR_RECORD_KEYS))
                raise reader.error(mirror_path, f"{where}: unknown key {key!r}; expected one of: {choices}")
        to = item.get("to")
        if not isinstance(to, str) or to not in mirrors.mirrors:
            known = ", ".join(sorted(mirrors.mirrors)) or "none defined"
            raise reader.error(
                mirror_path, f"{where}: to = {to!r} names no [mirrors.NAME]; expected one of: {known}"
            )
        mirror = mirrors.mirrors[to]
        name_raw = item.get("name")
        try:
            if not isinstance(name_raw, str) or not name_raw.strip(". "):
                raise ValueError
            name = wire.name_to_text(parse_name(name_raw)).rstrip(".")
        except Exception:
            raise reader.error(
                mirror_path,
                f'{where}: name {name_raw!r}; expected the absolute name at {to}, e.g. "www.example.com"',
            ) from None
        zone = mirror.zone
        if not _ZONE_ID_RE.fullmatch(zone) and name != zone and not name.endswith("." + zone):
            raise reader.error(
                mirror_path,
                f"{where}: {name} is not in the zone {zone} of [mirrors.{to}]; "
                f"expected a name ending in {zone}",
            )
        if kind == "CNAME" and name == zone and mirror.type == "rfc2136":
            raise reader.error(
                mirror_path, f"{where}: a CNAME cannot be at the zone apex {zone} (it has SOA and NS)"
            )
        if mirror.type != "cloudflare":
            for key in _CLOUDFLARE_ONLY & set(item):
                raise reader.error(
                    mirror_path, f"{where}: {key} is a Cloudflare option; [mirrors.{to}] is {mirror.type}"
                )
        ttl = item.get("ttl")
        if mirror.type == "cloudflare":
            if ttl is None:
                ttl = min(max(record_ttl, 60), 86400)  # Cloudflare's lowest TTL is 60 (1 = automatic)
            elif not _whole(ttl) or not (ttl == 1 or 60 <= ttl <= 86400):
                raise reader.error(
                    mirror_path, f"{where}: ttl {ttl!r}; expected 1 (automatic) or 60 to 86400 (Cloudflare)"
                )
        elif ttl is None:
            ttl = record_ttl
        elif not _whole(ttl) or not 0 <= ttl <= 2**31 - 1:
            raise reader.error(mirror_path, f"{where}: ttl {ttl!r}; expected a whole number of seconds")
        proxied = item.get("proxied")
        if proxied is not None and not isinstance(proxied, bool):
            raise reader.error(mirror_path, f"{where}: proxied must be true or false")
        comment = item.get("comment")
        if comment is not None and (not isinstance(comment, str) or not comment or len(comment) > 500):
            raise reader.error(mirror_path, f"{where}: comment must be a string of 1 to 500 characters")
        seen_key = (to, name, kind)
        if seen_key in mirrors.seen:
            raise reader.error(
                mirror_path,
                f"{where}: {name} {kind} at {to} already follows {mirrors.seen[seen_key]}; "
                "expected each mirrored name once (two answers cannot both own it)",
            )
        mirrors.seen[seen_key] = _dotted(path)
        result.append(MirrorRecord(to=to, name=name, ttl=int(ttl), proxied=proxied, comment=comment))
    return tuple(result)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
