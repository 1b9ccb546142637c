"""Every error dynserver raises on purpose derives from DynserverError.

Whose mistake it is decides the branch (as h11 splits "yours" from "the peer's"): the
operator's (config), a client's request we refuse, or the other side of a conversation
we started or answered (a packet, a checked target, a provider). A class that carries
the specifics of its module lives there and derives from a base defined here:

DynserverError                      dynserver/errors.py
├── ConfigError                     dynserver/errors.py: bad configuration or master file
│   │                               (file, line, key); nothing is served until it is fixed
│   └── KeyFileError                dynserver/dnssec/keys.py: a DNSSEC key file (or stored
│                                   key) that cannot be read: which one and why
├── RequestError                    dynserver/errors.py: a request we refuse; says why
│   ├── ApiError                    dynserver/web/api.py: answered as JSON with a status
│   ├── InvalidValue                dynserver/update/targets.py: a value that does not fit
│   │                               the record type (also a ValueError)
│   ├── Busy                        dynserver/propagation: too many checks now; retry_after
│   ├── EditRefused                 dynserver/web/editing.py: an edit of the config refused
│   │                               (status, code, the key it is about)
│   ├── InvalidChallenge            dynserver/update/acme.py: not an ACME challenge's name or
│   │                               value (also a ValueError)
│   ├── AgentRefused                dynserver/locations/hub.py: an agent's request refused
│   │                               (status, code; answered as the API's JSON errors)
│   └── RolloverError               dynserver/dnssec/rollover.py: a key roll step asked for
│                                   at the wrong time (says what to do instead)
└── PeerError                       dynserver/errors.py: the other side's mistake or failure
    ├── WireError                   dynserver/dns/wire.py: a malformed DNS message
    │                               (answered FORMERR, or dropped)
    ├── ProbeFailure                dynserver/health/http.py: a checked target's response
    │                               fails the check ("too large ...")
    ├── MirrorError                 dynserver/mirror/base.py: a provider sync failed
    │                               (permanent or not, retry_after)
    ├── ProtocolError               dynserver/locations/protocol.py: an agent's or the
    │                               server's message that breaks the protocol (a ValueError)
    └── Ended                       dynserver/locations/agent.py: the agent's stream ended
        └── Refused                 (the server refused the token: revoked?)

tests/test_errors.py walks the package and holds every exception class to this tree.
"""

from __future__ import annotations


class DynserverError(Exception):
    """Base of all dynserver errors."""


class ConfigError(DynserverError):
    """A configuration problem the user must fix before anything is served."""

    def __init__(self, message: str, *, path: str = "", line: int = 0, key: str = "") -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        where = path
        if line:
            where += f":{line}"
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join([*parts, message]))


class RequestError(DynserverError):
    """A request dynserver refuses (API, update, propagation check): the message says
    why, and the transport turns it into the status or code its clients understand."""


class PeerError(DynserverError):
    """The other side broke the protocol or failed: a client's malformed packet, a
    checked target's bad response, a provider's refusal. Never dynserver's own bug."""
