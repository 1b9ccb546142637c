"""Domain names normalised, one way for the whole package: as text (absolute, lower case,
no final dot: ``app.dyn.example.test``), and as a Name from dnspython or dnslib.

The text form is the one scopes, URLs, events, the API and the config write; a name a user
or a peer wrote is brought to it by ``fqdn``. Pure: no I/O.
"""

from __future__ import annotations

import dns.name
from dnslib import DNSLabel

from dynserver.dns import wire
from dynserver.types import Name


def fqdn(text: str) -> str:
    """A name as written (any case, a final dot or not, surrounding space) in its text
    form: lower case, no final dot. The root is ""."""
    return text.strip().rstrip(".").lower()


def name_text(name: Name) -> str:
    """A Name in the text form (RFC 1035 5.1 escapes kept): ``app.dyn.example.test``."""
    return fqdn(wire.name_to_text(name))


def name_from_dnspython(name: dns.name.Name) -> Name:
    """An absolute dnspython name as a Name (labels lower-cased)."""
    return tuple(label.lower() for label in name.labels[:-1])


def name_from_dnslib(label: DNSLabel) -> Name:
    """A dnslib label (an RDATA's target, an owner) as a Name (labels lower-cased)."""
    return tuple(part.lower() for part in label.label)
