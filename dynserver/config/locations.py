"""[locations]: where checks run from (this server and its agents) and how they vote."""

from __future__ import annotations

import re
from typing import Any

from dynserver.config.reader import KeyPath, Reader
from dynserver.config.server import parse_listener
from dynserver.model import LocationsConfig

_KEYS = {"quorum", "local", "name", "stale_after", "canary"}
_DEFAULT = LocationsConfig()
# A location's name is an agent's name too: shown in pages, metrics labels and events.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_RULE = "1-64 letters, digits and . _ - (starting with a letter or digit), e.g. fra-1"


def read_locations(reader: Reader, raw: Any) -> LocationsConfig | None:
    """None without a [locations] table: the server alone decides, exactly as before."""
    if raw is None:
        return None
    key_path: KeyPath = ("locations",)
    table = reader.table(raw, key_path)
    reader.unknown(table, key_path, _KEYS)
    name = reader.get(table, key_path, "name", str, _DEFAULT.name, "a location name")
    if not NAME_RE.match(name):
        raise reader.error((*key_path, "name"), f"{name!r} is not a location name; expected {NAME_RULE}")
    canary = reader.get(table, key_path, "canary", str, None, 'a "host:port" string')
    if canary is not None:
        try:
            parse_listener(canary)
        except ValueError as error:
            raise reader.error((*key_path, "canary"), f"{canary!r}: {error}") from None
    return LocationsConfig(
        quorum=reader.number(table, key_path, "quorum", _DEFAULT.quorum, 1, 100, int),
        local=reader.get(table, key_path, "local", bool, _DEFAULT.local, "true or false"),
        name=name,
        stale_after=reader.number(table, key_path, "stale_after", _DEFAULT.stale_after, 1, 1000, int),
        canary=canary or None,
    )
