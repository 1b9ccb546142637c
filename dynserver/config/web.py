"""[web] and [web.limits]: the admin login, public pages, propagation resolvers, the
/metrics token and the rate limits."""

from __future__ import annotations

import ipaddress
from typing import Any

from dynserver.config.reader import KeyPath, Reader
from dynserver.model import DEFAULT_RESOLVERS, WebConfig
from dynserver.update.limits import LimitPolicy


def read_web(reader: Reader, raw: Any) -> WebConfig:
    """[web]: the admin password hash, public read-only pages, the resolvers to compare,
    how long the propagation page waits for each server, and the /metrics token."""
    path: KeyPath = ("web",)
    table = reader.table(raw, path)
    keys = {"admin_password_hash", "public", "resolvers", "propagation_timeout", "metrics_token", "limits"}
    reader.unknown(table, path, keys)
    hashed = reader.get(table, path, "admin_password_hash", str, "", "a hash from `dynserver hash-password`")
    if hashed and not hashed.startswith("scrypt$"):
        raise reader.error((*path, "admin_password_hash"), "expected a hash from `dynserver hash-password`")
    resolvers = table.get("resolvers", list(DEFAULT_RESOLVERS))
    if not isinstance(resolvers, list) or not all(isinstance(r, str) for r in resolvers):
        raise reader.error(
            (*path, "resolvers"), 'expected a list of addresses, e.g. ["1.1.1.1", "9.9.9.9:53"]'
        )
    for text in resolvers:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
        try:
            ipaddress.ip_address(host)
            if port and not 0 < int(port) < 65536:
                raise ValueError(port)
        except ValueError:
            raise reader.error(
                (*path, "resolvers"), f"{text!r}: expected an IP address, optionally :port"
            ) from None
    token = reader.get(table, path, "metrics_token", str, "", "a random string")
    if token and (len(token) < 16 or not token.isprintable() or " " in token):
        raise reader.error(
            (*path, "metrics_token"),
            "expected at least 16 printable characters without spaces, e.g. from `openssl rand -hex 32`",
        )
    return WebConfig(
        admin_password_hash=hashed or None,
        public=reader.get(table, path, "public", bool, False, "true or false"),
        resolvers=tuple(resolvers),
        propagation_timeout=reader.number(table, path, "propagation_timeout", 1.5, 0.1, 10, float),
        metrics_token=token or None,
        limits=_limits(reader, table.get("limits", {}), (*path, "limits")),
    )


def _limits(reader: Reader, raw: Any, path: KeyPath) -> LimitPolicy:
    """[web.limits]: the rate limits and lockout of dyndns2, the API and the login."""
    table = reader.table(raw, path)
    default = LimitPolicy()
    keys = {"burst", "rate", "client_failures", "credential_failures", "failure_window", "lockout"}
    reader.unknown(table, path, keys)
    policy = LimitPolicy(
        burst=reader.number(table, path, "burst", default.burst, 1, 100_000, int),
        rate=reader.number(table, path, "rate", default.rate, 0.001, 10_000, float),
        client_failures=reader.number(
            table, path, "client_failures", default.client_failures, 1, 10_000, int
        ),
        credential_failures=reader.number(
            table, path, "credential_failures", default.credential_failures, 1, 100_000, int
        ),
        failure_window=reader.number(table, path, "failure_window", default.failure_window, 1, 86_400, float),
        lockout=reader.number(table, path, "lockout", default.lockout, 1, 86_400, float),
    )
    if policy.credential_failures <= policy.client_failures:
        raise reader.error(
            (*path, "credential_failures"),
            f"expected more than client_failures ({policy.client_failures}), got "
            f"{policy.credential_failures}: otherwise one client guessing wrong locks the credential's "
            "owner out before it locks itself out",
        )
    return policy
