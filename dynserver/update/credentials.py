"""Update credentials: one concept for dyndns2 (Basic auth) and the REST API (Bearer).

A credential is a name, a random secret shown once, and a scope: admin (anything) or a
list of targets (``app.dyn.example.test/bravo``, or ``app.dyn.example.test/*``) and of
ACME names (``acme:dyn.example.test``: its challenges and those of the names under it,
dynserver.update.acme). Only a
salted SHA-256 of the secret is stored. The secret is 256 random bits, so a fast hash
is enough: a slow KDF protects guessable passwords, and would only make every update
request slow (and easy to flood). Comparison is constant-time.

Pure: randomness and time are arguments; storage is dynserver.store.db.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from dynserver.store.db import StoredCredential
from dynserver.types import Name, TargetKey
from dynserver.update import acme
from dynserver.update.scopes import in_scope

ACME = "acme:"  # a scope "acme:NAME" may add and delete the ACME challenges of NAME and below
SALT_BYTES = 16
SECRET_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits

# The name is the Basic-auth user name: no colon, nothing a shell or config quotes.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{name!r} is not a credential name; expected 1-64 letters, digits and . _ @ + - "
            "(starting with a letter or digit), e.g. bravo-backup"
        )
    return name


def acme_scope(scope: str, origins: Iterable[str]) -> str:
    """An ``acme:NAME`` scope normalised (NAME in a served zone), or ValueError that says
    what is expected; `dynserver credential add --target acme:NAME` checks with it."""
    return ACME + acme.check_scope(scope.removeprefix(ACME), list(origins))


def digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("utf-8", "surrogateescape")).digest()


def create(
    name: str,
    *,
    admin: bool,
    targets: Sequence[str],
    now: float,
    token: Callable[[int], str] = secrets.token_urlsafe,
    salt: Callable[[int], bytes] = secrets.token_bytes,
) -> tuple[StoredCredential, str]:
    """A new credential and its secret. The secret leaves this function once, to be
    shown to the operator; what is stored can only verify it."""
    if admin == bool(targets):
        raise ValueError("a credential is either admin or scoped to targets, not both nor neither")
    secret = token(SECRET_BYTES)
    salt_bytes = salt(SALT_BYTES)
    stored = StoredCredential(
        name=check_name(name),
        salt=salt_bytes,
        digest=digest(salt_bytes, secret),
        admin=admin,
        targets=tuple(dict.fromkeys(targets)),
        created=now,
    )
    return stored, secret


def verify(credential: StoredCredential, secret: str) -> bool:
    return hmac.compare_digest(digest(credential.salt, secret), credential.digest)


def find_by_secret(credentials: Iterable[StoredCredential], secret: str) -> StoredCredential | None:
    """The credential a Bearer token belongs to. Every credential is hashed and compared
    (no early exit), so the time taken does not tell which one matched or how far."""
    found = None
    for credential in credentials:
        if verify(credential, secret) and found is None:
            found = credential
    return found


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an authenticated request acts as: what events record and scopes allow."""

    name: str
    admin: bool
    targets: tuple[str, ...]

    @classmethod
    def of(cls, credential: StoredCredential) -> Principal:
        return cls(credential.name, credential.admin, credential.targets)

    def may_update(self, key: TargetKey) -> bool:
        return self.admin or in_scope(self.targets, key)

    def may_challenge(self, name: Name) -> bool:
        """Whether it may add and delete TXT records at ``name`` (_acme-challenge.<name>)."""
        names = [scope.removeprefix(ACME) for scope in self.targets if scope.startswith(ACME)]
        return acme.is_challenge(name) and (self.admin or acme.in_scope(names, name))

    @property
    def scope(self) -> str:
        return "admin" if self.admin else ", ".join(self.targets)
