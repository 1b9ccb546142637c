"""[notifications]: where alerts go (apprise URLs, webhooks)."""

from __future__ import annotations

from typing import Any

from dynserver.config.reader import KeyPath, Reader
from dynserver.model import NotifyConfig


def read_notifications(reader: Reader, raw: Any) -> NotifyConfig:
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
