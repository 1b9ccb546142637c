"""[zones.NAME.dnssec]: sign the zone, with which algorithm, keys kept where, signatures
valid how long (docs/dnssec.md). NSEC3's parameters are RFC 9276's and not configurable."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dynserver.config.reader import KeyPath, Reader
from dynserver.model import DnssecConfig, ZoneConfig

_DNSSEC_KEYS = {"enabled", "algorithm", "key_directory", "signature_validity", "refresh", "inception_offset"}
_DEFAULT = DnssecConfig()
_DAY = 86400


def read_dnssec(
    reader: Reader, raw: Any, zones: tuple[ZoneConfig, ...], folder: Path, database: Path | None
) -> tuple[ZoneConfig, ...]:
    """Each zone's [zones.NAME.dnssec], if any; ``zones`` are in the order of ``raw``."""
    result = []
    for (zone_key, zone_raw), zone in zip(raw.items(), zones, strict=True):
        if "dnssec" not in zone_raw:
            result.append(zone)
            continue
        path: KeyPath = ("zones", zone_key, "dnssec")
        table = reader.table(zone_raw["dnssec"], path)
        reader.unknown(table, path, _DNSSEC_KEYS)
        if not reader.get(table, path, "enabled", bool, False, "true or false"):
            result.append(zone)
            continue
        algorithm = reader.get(table, path, "algorithm", int, _DEFAULT.algorithm, "13 or 15")
        if algorithm not in (13, 15):
            raise reader.error(
                (*path, "algorithm"), f"expected 13 (ECDSAP256SHA256) or 15 (ED25519), got {algorithm}"
            )
        directory_text = reader.get(table, path, "key_directory", str, "", "a directory name")
        directory = (folder / directory_text) if directory_text else None
        if directory is None and database is None:
            raise reader.error(
                (*path, "enabled"),
                "the keys need a home: set key_directory, or keep [server] database set",
            )
        validity = reader.number(
            table, path, "signature_validity", _DEFAULT.signature_validity, 3600, 366 * _DAY, float
        )
        refresh = reader.number(table, path, "refresh", _DEFAULT.refresh, 600, 365 * _DAY, float)
        if refresh >= validity:
            raise reader.error(
                (*path, "refresh"),
                f"expected less than signature_validity ({validity:g} s): signatures are renewed "
                "when this much validity remains",
            )
        offset = reader.number(table, path, "inception_offset", _DEFAULT.inception_offset, 0, 7 * _DAY, float)
        config = DnssecConfig(
            algorithm=algorithm,
            key_directory=directory,
            signature_validity=validity,
            refresh=refresh,
            inception_offset=offset,
        )
        result.append(dataclasses.replace(zone, dnssec=config))
    return tuple(result)
