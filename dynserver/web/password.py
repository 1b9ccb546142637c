"""Admin password hashing: ``scrypt$n$r$p$salt$digest`` (hex), self-describing.

scrypt is in the standard library and memory-hard, so a leaked config does not give the
password away cheaply; the parameters travel with the hash so they can be raised later
without breaking existing hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A new hash for ``password`` with a fresh 16-byte salt."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches ``hashed``; a malformed hash matches nothing."""
    try:
        scheme, n, r, p, salt, digest = hashed.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=128 * int(r) * int(n) * 2 + 1024 * 1024,
        )
    except (ValueError, OverflowError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)
