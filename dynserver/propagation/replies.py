"""Reading parsed DNS replies: names, values, TTLs, serials and rcodes as propagation
compares and shows them (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dynserver.dns.names import fqdn


def text(name: dns.name.Name | str) -> str:
    """Absolute, lower case, no final dot (the root is ""): dns.names.fqdn, which takes a
    dnspython Name here too (in its own presentation form, escapes as dnspython writes them)."""
    return fqdn(name if isinstance(name, str) else name.to_text())


def absolute_name(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


def value_text(rdata: Any) -> str:
    """One record's value as we compare and show it: addresses in canonical form, names
    lower case with their final dot, anything else in presentation form."""
    if rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(ipaddress.ip_address(rdata.address))
    if rdata.rdtype == dns.rdatatype.CNAME:
        return str(rdata.target.to_text().lower())
    return str(rdata.to_text())


def sorted_values(values: Iterable[str]) -> tuple[str, ...]:
    def key(value: str) -> tuple[int, Any]:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return (2, value)
        return (address.version, int(address))

    return tuple(sorted(set(values), key=key))


def find_rrset(
    section: Sequence[dns.rrset.RRset], name: dns.name.Name, rdtype: int
) -> dns.rrset.RRset | None:
    return next((r for r in section if r.name == name and r.rdtype == rdtype), None)


def answer_values(message: dns.message.Message, qname: str, qtype: str) -> tuple[tuple[str, ...], int | None]:
    """The values (and TTL) ``message`` gives for ``qname``/``qtype``; a CNAME where an
    address was asked shows as ``CNAME target.``, so it never looks like the right answer."""
    name = absolute_name(qname)
    rdtype = dns.rdatatype.from_text(qtype)
    found = find_rrset(message.answer, name, rdtype)
    if found is not None:
        return sorted_values(value_text(rd) for rd in found), found.ttl
    if rdtype != dns.rdatatype.CNAME:
        alias = find_rrset(message.answer, name, dns.rdatatype.CNAME)
        if alias is not None:
            return tuple(f"CNAME {value_text(rd)}" for rd in alias), alias.ttl
    return (), None


def soa_serial(message: dns.message.Message, zone: str) -> int | None:
    found = find_rrset(message.answer, absolute_name(zone), dns.rdatatype.SOA)
    return int(found[0].serial) if found is not None and len(found) else None


def rcode_text(message: dns.message.Message) -> str:
    return str(dns.rcode.to_text(message.rcode()))
