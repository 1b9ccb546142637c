"""[keys.NAME]: TSIG keys, each allowed to update the targets it names and, with
``acme``, the ACME DNS-01 challenges of the names it lists."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from dynserver.config.reader import KeyPath, Reader
from dynserver.dns.names import name_text
from dynserver.model import TsigKey, ZoneConfig
from dynserver.update import acme

_ALGORITHMS = {"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"}


def written_name(text: str) -> str:
    """A key name or a key's scope as the config compares them: lower case, no final dot.
    Not dns.names.fqdn (nor scopes.split): those also strip surrounding space (and a
    record's final dot, ``app.example./bravo``), so they would accept a key reference or
    a scope that the config has always refused."""
    return text.rstrip(".").lower()


def read_keys(reader: Reader, raw: Any, folder: Path, zones: tuple[ZoneConfig, ...]) -> tuple[TsigKey, ...]:
    """[keys.NAME]: TSIG keys, each allowed to update the targets it names."""
    table = reader.table(raw, ("keys",))
    targets = {f"{name_text(r.name)}/{t.name}" for z in zones for r in z.records for t in r.targets}
    records = {name_text(r.name) for z in zones for r in z.records}
    origins = [name_text(z.name) for z in zones]
    result = []
    for name, key_raw in table.items():
        path: KeyPath = ("keys", name)
        k = reader.table(key_raw, path)
        reader.unknown(k, path, {"algorithm", "secret", "secret_file", "update", "acme", "acme_max_age"})
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
            record, _, target = written_name(scope).partition("/")
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
                name=written_name(name),
                algorithm=algorithm,
                secret=secret,
                update=tuple(written_name(s) if s != "*" else s for s in scopes),
                acme=_acme_scopes(reader, k, path, origins),
                acme_max_age=reader.number(k, path, "acme_max_age", acme.MAX_AGE, 60, 7 * 86400, float),
            )
        )
    return tuple(result)


def _acme_scopes(reader: Reader, k: dict[str, Any], path: KeyPath, origins: list[str]) -> tuple[str, ...]:
    """``acme = ["dyn.example.test"]``: names in a served zone whose challenges the key may
    add and delete (each covers the names under it too). No wildcard: a key for every
    name of every zone is exactly what scoping it is meant to avoid."""
    names = reader.get(k, path, "acme", list, [], 'a list of names like ["dyn.example.test"]')
    result = []
    for raw in names:
        try:
            result.append(acme.check_scope(raw if isinstance(raw, str) else repr(raw), origins))
        except acme.InvalidChallenge as error:
            raise reader.error((*path, "acme"), str(error)) from None
    return tuple(dict.fromkeys(result))
