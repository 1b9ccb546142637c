"""Where a zone's DNSSEC keys live: BIND key files in ``key_directory``, or the database.

Either way a key is the two texts of BIND's files (dynserver/dnssec/keys.py), so keys
kept in the database can be written out for ``dnssec-signzone`` as they are, and a key
directory written by ``dnssec-keygen`` is read as it is. ``load_keys`` and ``save_key``
pick the backend from the zone's config; the command line (``dynserver dnssec ...``) and
the runtime both use them. Private key files are written 0600, never logged.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dynserver.dns import wire
from dynserver.dnssec.keys import (
    Key,
    KeyFileError,
    key_basename,
    key_file_text,
    parse_key_files,
    private_file_text,
)
from dynserver.model import ZoneConfig
from dynserver.store.db import Store
from dynserver.types import Name


class DirectoryKeys:
    """BIND key files in one directory (``dnssec-keygen -K DIR`` writes the same)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, zone: Name) -> list[Key]:
        if not self.path.is_dir():
            return []
        prefix = f"K{wire.name_to_text(zone)}+"
        found = []
        for key_path in sorted(self.path.glob(f"{glob_escape(prefix)}*.key")):
            private_path = key_path.with_suffix(".private")
            if not private_path.exists():
                continue  # a public key alone (a key of someone else's): not ours to sign with
            try:
                key = parse_key_files(key_path.read_text(), private_path.read_text(), str(key_path))
            except OSError as error:
                raise KeyFileError(f"{key_path}: {error.strerror}") from None
            if key.zone == zone:
                found.append(key)
        return found

    def save(self, key: Key) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        base = key_basename(key)
        _write(self.path / f"{base}.key", key_file_text(key), 0o644)
        _write(self.path / f"{base}.private", private_file_text(key), 0o600)

    def delete(self, key: Key) -> None:
        base = key_basename(key)
        for suffix in (".key", ".private"):
            (self.path / f"{base}{suffix}").unlink(missing_ok=True)


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _write(path: Path, text: str, mode: int) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


async def load_keys(zone: ZoneConfig, store: Store | None) -> list[Key]:
    """The keys of a signed zone, from its key_directory or the database."""
    assert zone.dnssec is not None
    if zone.dnssec.key_directory is not None:
        return DirectoryKeys(zone.dnssec.key_directory).load(zone.name)
    if store is None:
        return []
    text = wire.name_to_text(zone.name)
    return [parse_key_files(k, p, f"database key of {text}") for k, p in await store.dnssec_keys(text)]


async def save_key(zone: ZoneConfig, store: Store | None, key: Key) -> None:
    """Add a key to a signed zone, or replace it (same tag and algorithm: new times)."""
    assert zone.dnssec is not None
    if zone.dnssec.key_directory is not None:
        DirectoryKeys(zone.dnssec.key_directory).save(key)
        return
    if store is None:
        raise KeyFileError(f"{wire.name_to_text(zone.name)}: no key_directory and no database for the keys")
    text = wire.name_to_text(zone.name)
    await store.save_dnssec_key(text, key.tag, key.algorithm, key_file_text(key), private_file_text(key))


async def delete_key(zone: ZoneConfig, store: Store | None, key: Key) -> None:
    """Remove a key for good (after a rollover, once it is no longer published)."""
    assert zone.dnssec is not None
    if zone.dnssec.key_directory is not None:
        DirectoryKeys(zone.dnssec.key_directory).delete(key)
    elif store is not None:
        await store.delete_dnssec_key(wire.name_to_text(zone.name), key.tag, key.algorithm)
