"""Load the config: read the TOML file, then each section in the order their references need."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dynserver.config.demo import read_demo
from dynserver.config.dnssec import read_dnssec
from dynserver.config.keys import read_keys
from dynserver.config.locations import read_locations
from dynserver.config.mirrors import read_mirrors
from dynserver.config.monitors import read_monitors
from dynserver.config.notifications import read_notifications
from dynserver.config.reader import Reader, parse_document, read_document
from dynserver.config.server import read_server
from dynserver.config.transfer import read_transfers
from dynserver.config.web import read_web
from dynserver.config.zones import read_zones
from dynserver.model import Config

_TOP_KEYS = {"server", "zones", "monitors", "notifications", "demo", "keys", "mirrors", "web", "locations"}


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the configuration, or raise ConfigError.

    ``environ`` (default: the process environment) is where api_token_env names are looked
    up and where ENV_HASH and ENV_TOKEN override [web]: the one place dynserver reads
    configuration from the environment.
    """
    path = Path(path)
    data, reader = read_document(path)
    return _build(path, data, reader, environ)


def load_text(text: str, path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """``load`` of ``text`` as if it were the file at ``path``: master files relative to
    it, errors naming it and the line in ``text``. An edit is validated by this before it
    is written, so a written file is one ``load`` accepts."""
    path = Path(path)
    data, reader = parse_document(text, str(path))
    return _build(path, data, reader, environ)


def _build(path: Path, data: dict[str, Any], reader: Reader, environ: Mapping[str, str] | None) -> Config:
    environ = os.environ if environ is None else environ
    reader.unknown(data, (), _TOP_KEYS)
    server = read_server(reader, data.get("server", {}))
    monitors = read_monitors(reader, data.get("monitors", {}))
    mirrors = read_mirrors(reader, data.get("mirrors", {}), path.parent, data.get("keys", {}), environ)
    zones = read_zones(reader, data.get("zones", {}), path.parent, {m.name: m for m in monitors}, mirrors)
    keys = read_keys(reader, data.get("keys", {}), path.parent, zones)
    zones = read_transfers(reader, data.get("zones", {}), zones, keys)
    server_table = data.get("server", {})
    database_text = reader.get(server_table, ("server",), "database", str, "dynserver.db", "a file name")
    database = (path.parent / database_text) if database_text else None
    zones = read_dnssec(reader, data.get("zones", {}), zones, path.parent, database)
    return Config(
        path=path,
        server=server,
        zones=zones,
        monitors=monitors,
        database=database,
        history_hours=reader.number(server_table, ("server",), "history_hours", 48, 1, 24 * 366, float),
        notify=read_notifications(reader, data.get("notifications", {})),
        demo=read_demo(reader, data.get("demo", {})),
        keys=keys,
        mirrors=tuple(mirrors.mirrors.values()),
        web=read_web(reader, data.get("web", {}), environ),
        locations=read_locations(reader, data.get("locations")),
    )
