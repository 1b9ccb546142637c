"""Load and validate the TOML config and the master files it names.

Every error names the file, the line and the key, and says what was expected, before
anything is served. Paths in the config are relative to the config file.
"""

from __future__ import annotations

import ipaddress
import re
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dns.name

from dynserver.dns import wire
from dynserver.dns.masterfile import build_rrsets, read_master_file
from dynserver.dns.zone import RRset, SoaFields, rrset_from_texts, soa_rrset
from dynserver.errors import ConfigError
from dynserver.model import Config, Listener, ServerConfig, ZoneConfig

__all__ = ["Config", "load", "parse_listener", "parse_name"]
from dynserver.types import Name

T = TypeVar("T")
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
}
_ZONE_FILE_KEYS = {"file"}
_ZONE_GENERATED_KEYS = {
    "nameservers",
    "hostmaster",
    "glue",
    "ttl",
    "refresh",
    "retry",
    "expire",
    "negative_ttl",
}
_TOP_KEYS = {"server", "zones"}


def load(path: str | Path) -> Config:
    """Read, validate and return the configuration, or raise ConfigError."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config: {error.strerror}", path=shown) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column \d+\)", str(error))
        line = int(match.group(1)) if match else 0
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise ConfigError(f"not valid TOML: {message}", path=shown, line=line) from None
    reader = _Reader(shown, text)
    reader.unknown(data, (), _TOP_KEYS)
    server = _server(reader, data.get("server", {}))
    zones = _zones(reader, data.get("zones", {}), path.parent)
    return Config(path=path, server=server, zones=zones)


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
    http_raw = table.get("http")
    http = _listener(reader, (*key_path, "http"), http_raw) if http_raw else None
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
        raise ValueError(f"port {port} is out of range 0-65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"{host!r} is not an IP address") from None
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


def _zones(reader: _Reader, raw: Any, folder: Path) -> tuple[ZoneConfig, ...]:
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
            raise reader.error(key_path, f"not a valid zone name: {error}") from None
        if origin in seen:
            raise reader.error(key_path, f"duplicate zone: the same zone as [zones.{seen[origin]!r}]")
        seen[origin] = zone_key
        table = reader.table(zone_raw, key_path)
        if "file" in table:
            reader.unknown(table, key_path, _ZONE_FILE_KEYS)
            file_name = reader.get(table, key_path, "file", str, "", "a file name")
            file_path = folder / file_name
            shown = str(Path(reader.path).parent / file_name)
            records = read_master_file(file_path, origin, display_path=shown)
            rrsets = build_rrsets(records, origin, shown)
            result.append(ZoneConfig(name=origin, file=file_path, rrsets=tuple(rrsets)))
        else:
            reader.unknown(table, key_path, _ZONE_GENERATED_KEYS)
            rrsets = _generated(reader, table, key_path, origin)
            result.append(ZoneConfig(name=origin, file=None, rrsets=tuple(rrsets)))
    return tuple(result)


def _generated(reader: _Reader, table: dict[str, Any], key_path: KeyPath, origin: Name) -> list[RRset]:
    """SOA and NS (plus glue) for a zone that has no master file."""
    raw_ns = table.get("nameservers")
    if not isinstance(raw_ns, list) or not raw_ns or not all(isinstance(n, str) for n in raw_ns):
        raise reader.error(
            (*key_path, "nameservers"),
            'a zone without "file" needs nameservers = ["ns1.example.com", ...] '
            "(the host names its NS records list)",
        )
    nameservers = []
    for text in raw_ns:
        try:
            nameservers.append(parse_name(text))
        except Exception as error:
            raise reader.error((*key_path, "nameservers"), f"{text!r} is not a host name: {error}") from None
    zone_text = wire.name_to_text(origin)
    hostmaster_text = reader.get(table, key_path, "hostmaster", str, f"hostmaster.{zone_text}", "a mailbox")
    hostmaster = parse_name(hostmaster_text.replace("@", ".", 1))
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
    rrsets = [
        soa_rrset(origin, ttl, fields),
        rrset_from_texts(origin, wire.TYPE_NS, ttl, [wire.name_to_text(ns) for ns in nameservers]),
    ]
    glue = reader.table(table.get("glue", {}), (*key_path, "glue"))
    in_zone = [ns for ns in nameservers if ns[len(ns) - len(origin) :] == origin]
    for host_text, addresses in glue.items():
        glue_path = (*key_path, "glue", host_text)
        host = parse_name(host_text)
        if host not in in_zone:
            raise reader.error(glue_path, "glue is only for nameservers inside this zone")
        if not isinstance(addresses, list) or not addresses:
            raise reader.error(glue_path, 'expected a list of addresses, e.g. ["192.0.2.53"]')
        by_type: dict[int, list[str]] = {}
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise reader.error(glue_path, f"{address!r} is not an IP address") from None
            by_type.setdefault(wire.TYPE_A if ip.version == 4 else wire.TYPE_AAAA, []).append(str(ip))
        rrsets.extend(rrset_from_texts(host, rtype, ttl, texts) for rtype, texts in by_type.items())
    for ns in in_zone:
        if wire.name_to_text(ns) not in {wire.name_to_text(parse_name(h)) for h in glue}:
            raise reader.error(
                (*key_path, "nameservers"),
                f"nameserver {wire.name_to_text(ns)} is inside the zone; expected its addresses "
                f'in glue = {{ "{wire.name_to_text(ns)}" = ["192.0.2.53"] }}',
            )
    return rrsets


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
