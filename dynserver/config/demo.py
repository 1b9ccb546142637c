"""[demo]: local backends with scheduled outages (make run)."""

from __future__ import annotations

from typing import Any

from dynserver.config.reader import KeyPath, Reader
from dynserver.config.server import parse_listener
from dynserver.model import DemoBackend


def read_demo(reader: Reader, raw: Any) -> tuple[DemoBackend, ...]:
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
