"""[web] and [web.limits]: the admin login, public pages, propagation resolvers, the
/metrics token and the rate limits."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from dynserver.config.reader import KeyPath, Reader
from dynserver.errors import ConfigError
from dynserver.model import DEFAULT_RESOLVERS, WebConfig
from dynserver.update.limits import LimitPolicy

# Environment variables that win over [web] keys, so a container can keep the secret out
# of the config file. Read here only, and checked as the key they replace.
ENV_HASH = "DYNSERVER_ADMIN_PASSWORD_HASH"  # [web] admin_password_hash
ENV_TOKEN = "DYNSERVER_METRICS_TOKEN"  # [web] metrics_token


def read_web(reader: Reader, raw: Any, environ: Mapping[str, str]) -> WebConfig:
    """[web]: the admin password hash, public read-only pages, the resolvers to compare,
    how long the propagation page waits for each server, and the /metrics token; the
    hash and the token from ``environ`` when set there (ENV_HASH, ENV_TOKEN)."""
    path: KeyPath = ("web",)
    table = reader.table(raw, path)
    keys = {"admin_password_hash", "public", "resolvers", "propagation_timeout", "metrics_token", "limits"}
    reader.unknown(table, path, keys)
    hashed = reader.get(table, path, "admin_password_hash", str, "", "a hash from `dynserver hash-password`")
    if hashed and (problem := _hash_problem(hashed)):
        raise reader.error((*path, "admin_password_hash"), problem)
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
    if token and (problem := _token_problem(token)):
        raise reader.error((*path, "metrics_token"), problem)
    hashed = _override(environ, ENV_HASH, _hash_problem, "admin_password_hash") or hashed
    token = _override(environ, ENV_TOKEN, _token_problem, "metrics_token") or token
    return WebConfig(
        admin_password_hash=hashed or None,
        public=reader.get(table, path, "public", bool, False, "true or false"),
        resolvers=tuple(resolvers),
        propagation_timeout=reader.number(table, path, "propagation_timeout", 1.5, 0.1, 10, float),
        metrics_token=token or None,
        limits=_limits(reader, table.get("limits", {}), (*path, "limits")),
    )


def _hash_problem(hashed: str) -> str | None:
    return None if hashed.startswith("scrypt$") else "expected a hash from `dynserver hash-password`"


def _token_problem(token: str) -> str | None:
    if len(token) < 16 or not token.isprintable() or " " in token:
        return "expected at least 16 printable characters without spaces, e.g. from `openssl rand -hex 32`"
    return None


def _override(
    environ: Mapping[str, str], variable: str, problem: Callable[[str], str | None], key: str
) -> str | None:
    """The variable's value when set and not empty, checked as [web] ``key`` is; the error
    names the variable, never its value (a secret)."""
    value = environ.get(variable)
    if not value:
        return None
    message = problem(value)
    if message:
        raise ConfigError(f"{message} (it stands in for [web] {key})", path="environment", key=variable)
    return value


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
