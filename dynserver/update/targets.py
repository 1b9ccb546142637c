"""How updates name a target, and what value each target accepts.

A target is named ``<target>.<record>.<zone>`` by dyndns2 clients (``bravo.app.dyn.example.test``)
and ``<record>/<target>`` by credentials and the REST API (``app.dyn.example.test/bravo``).
Both come down to the engine's TargetKey here, in one place. Pure: built from the
configured records, no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from dynserver.config import parse_name
from dynserver.dns import wire
from dynserver.dns.names import fqdn, name_text
from dynserver.errors import RequestError
from dynserver.health.engine import target_key
from dynserver.model import DynamicRecord
from dynserver.types import TargetKey
from dynserver.update import scopes

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def record_text(record: DynamicRecord) -> str:
    return name_text(record.name)


class InvalidValue(RequestError, ValueError):
    """The value does not fit the record type; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Targets:
    """Every configured target, found by hostname or by record + target name."""

    records: dict[str, DynamicRecord]  # by record FQDN
    hostnames: dict[str, TargetKey]  # "bravo.app.dyn.example.test" -> key

    @classmethod
    def build(cls, records: Iterable[DynamicRecord]) -> Targets:
        by_name: dict[str, DynamicRecord] = {}
        hostnames: dict[str, TargetKey] = {}
        for record in records:
            name = record_text(record)
            by_name[name] = record
            for target in record.targets:
                # The first record wins if a hostname is ambiguous (a record named
                # "bravo.app" next to target bravo of "app"): config order is stable.
                hostnames.setdefault(f"{target.name}.{name}", target_key(record, target))
        return cls(by_name, hostnames)

    def record(self, name: str) -> DynamicRecord | None:
        return self.records.get(fqdn(name))

    def by_hostname(self, hostname: str) -> TargetKey | None:
        return self.hostnames.get(fqdn(hostname))

    def by_ref(self, record_name: str, target_name: str) -> TargetKey | None:
        record = self.record(record_name)
        if record is None:
            return None
        wanted = target_name.strip().lower()
        target = record.by_name.get(wanted)
        return None if target is None else target_key(record, target)

    def check_scope(self, scope: str) -> str:
        """A credential scope, normalised: ``RECORD/TARGET`` or ``RECORD/*``; ValueError
        names what is known when the record or target does not exist."""
        parts = scopes.split(scope)
        if parts is None:
            raise ValueError(
                f"{scope!r}: expected RECORD/TARGET, e.g. app.dyn.example.test/bravo (or RECORD/*)"
            )
        record_name, target_name = parts
        record = self.record(record_name)
        if record is None:
            known = ", ".join(sorted(self.records)) or "none"
            raise ValueError(f"{scope!r}: no dynamic record {record_name!r}; known: {known}")
        if target_name != "*" and self.by_ref(record_name, target_name) is None:
            known = ", ".join(t.name for t in record.targets)
            raise ValueError(f"{scope!r}: {record_name} has no target {target_name!r}; known: {known}")
        return f"{record_name}/{target_name}"

    def hostname(self, key: TargetKey) -> str:
        return f"{key[2]}.{name_text(key[0])}"


def parse_value(record_type: str, text: str) -> str:
    """A target value in its canonical form for the record type, or InvalidValue."""
    text = text.strip()
    if not text:
        raise InvalidValue("the value is empty; expected an IP address or, for CNAME, a host name")
    if record_type == "CNAME":
        try:
            return wire.name_to_text(parse_name(text))
        except Exception:
            raise InvalidValue(f"{text!r} is not a host name") from None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidValue(f"{text!r} is not an IP address") from None
    expected = 4 if record_type == "A" else 6
    if address.version != expected:
        raise InvalidValue(f"{text!r} is not an IPv{expected} address (record type {record_type})")
    return str(address)
