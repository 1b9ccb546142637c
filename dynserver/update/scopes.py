"""Scopes: which targets a credential or a TSIG key may update. A scope is written
``RECORD/TARGET`` (``app.dyn.example.test/bravo``), ``RECORD/*`` (every target of the
record) or, for a TSIG key only, ``*`` (anything).

Credentials (dyndns2, the REST API) and TSIG keys (RFC 2136) read and match scopes here,
the one place. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from dynserver.dns.names import fqdn, name_text
from dynserver.types import TargetKey

EVERYTHING = "*"  #: a TSIG key's scope that covers every target (credentials use admin instead)


def ref(key: TargetKey) -> str:
    """``app.dyn.example.test/bravo``: how a scope names one target."""
    return f"{name_text(key[0])}/{key[2]}"


def split(scope: str) -> tuple[str, str] | None:
    """(record, target) of a ``RECORD/TARGET`` or ``RECORD/*`` scope in the text form of
    names (lower case, no final dot); None if the scope is not of that form."""
    record, slash, target = fqdn(scope).partition("/")
    record = fqdn(record)
    if not slash or not record or not target:
        return None
    return record, target


def in_scope(scopes: Iterable[str], key: TargetKey) -> bool:
    """Whether normalised scopes (as ``split`` reads them) cover the target."""
    covering = (EVERYTHING, ref(key), f"{name_text(key[0])}/*")
    return any(scope in covering for scope in scopes)
