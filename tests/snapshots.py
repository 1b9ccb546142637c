"""Build a Snapshot in-process, through the real config loader, and ask it questions.

Tests of the answering core use these instead of sockets: wire bytes go straight into
``Snapshot.answer`` (DESIGN.md: the core is a pure function), and dnspython builds the
queries and reads the replies, so the core is judged by an independent implementation.
"""

from __future__ import annotations

from pathlib import Path

import dns.message

from dynserver import config
from dynserver.dns.snapshot import Snapshot
from dynserver.dns.zone import Zone
from tests.support import write_config


def snapshot_of(loaded: config.Config) -> Snapshot:
    """The static part of what a config serves (its zones and CHAOS answers)."""
    zones = {zone.name: Zone.build(zone.name, zone.rrsets) for zone in loaded.zones}
    chaos = {"version": loaded.server.chaos_version, "hostname": loaded.server.chaos_hostname}
    return Snapshot(zones, chaos={what: text for what, text in chaos.items() if text})


def load_snapshot(folder: Path, zone_files: dict[str, str], extra: str = "") -> Snapshot:
    """Write master files and a config into ``folder`` and build the snapshot it serves."""
    return snapshot_of(config.load(write_config(folder, zone_files, extra)))


def ask(snapshot: Snapshot, query: dns.message.Message | bytes, *, tcp: bool = False) -> dns.message.Message:
    """Answer one query in-process and parse the reply with dnspython (it must parse)."""
    data = query if isinstance(query, bytes) else query.to_wire()
    reply = snapshot.answer(data, tcp)
    assert reply is not None, "the query was dropped"
    return dns.message.from_wire(reply)
