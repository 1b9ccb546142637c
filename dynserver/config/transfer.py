"""[zones.NAME.transfer]: the secondaries told of changes, and who may transfer the zone."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from dynserver.config.keys import written_name
from dynserver.config.reader import KeyPath, Reader
from dynserver.config.server import parse_listener
from dynserver.model import Secondary, TransferConfig, TsigKey, ZoneConfig

_TRANSFER_KEYS = {"secondaries", "allow", "allow_keys", "journal"}
_SECONDARY_KEYS = {"address", "key"}


def read_transfers(
    reader: Reader, raw: Any, zones: tuple[ZoneConfig, ...], keys: tuple[TsigKey, ...]
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


def _strings(reader: Reader, table: dict[str, Any], key_path: KeyPath, example: str) -> list[str]:
    value = table.get(key_path[-1], [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise reader.error(key_path, f"expected a list of strings, e.g. {example}")
    return value


def _known_key(reader: Reader, key_path: KeyPath, text: str, known: set[str], where: str = "") -> str:
    name = written_name(text)
    if name not in known:
        choices = ", ".join(sorted(known)) or "none defined"
        raise reader.error(key_path, f"{where}no [keys.{name}]; expected one of: {choices}")
    return name


def _secondaries(reader: Reader, raw: Any, key_path: KeyPath, known: set[str]) -> tuple[Secondary, ...]:
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
