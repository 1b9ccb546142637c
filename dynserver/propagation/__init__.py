"""Propagation: who already answers what dynserver answers now.

For one dynamic record this gathers

- the **expected** answer: what our live snapshot answers, and the zone's SOA serial;
- every **authoritative server**: those the parent zone delegates to (NS + glue, found
  through the first configured resolver and then asked of the parent's own servers),
  those of the zone's own NS set, and the configured secondaries; each is asked
  directly (RD=0) for the record and for the zone's SOA;
- every configured **resolver**, asked with recursion (RD=1): its answer and the TTL it
  has left;
- on request, a user's static **hostname** followed through its CNAME chain.

The rules are pure functions over parsed replies (``classify_authoritative``,
``classify_resolver``, ``nameserver_warnings``, ``referral``, ``chain_step``,
``parse_hostname``...), tested without sockets. ``gather`` asks everything concurrently
through an injected ``Ask`` (``dns_asker``: dnspython's asyncquery), each query bounded
by a short timeout, so a dead server is an error row and never a stuck page.
``Checker`` caches results briefly and budgets new work, so a public page cannot be
used to make dynserver spray queries at the world.

One module per job; what the web and the tests use is also reachable as ``propagation.X``:

- ``model``: what is asked and what came back, the rows and the report, their statuses;
- ``body``: the report's JSON as typed definitions (the API document derives from them);
- ``replies``: names, values, TTLs and serials read from parsed replies;
- ``verdicts``: observations, in sync / stale / error and why, the rows, the warnings;
- ``delegation``: the parent's referral and the nameservers' addresses;
- ``chain``: a hostname followed through its CNAME chain;
- ``gathering``: the plan, asking over the network, one whole check;
- ``cache``: ``Checker``, sharing recent checks and budgeting new ones.

``model``, ``body``, ``replies``, ``verdicts`` and ``chain`` are pure: no asyncio, sockets or
database (``chain`` awaits only the ``Ask`` it is given).
"""

from __future__ import annotations

from dynserver.propagation.body import CnameCheck, cname_check_body, report_body
from dynserver.propagation.cache import CACHE_SECONDS, Busy, Checker
from dynserver.propagation.chain import (
    HOSTNAME_PATTERN,
    MAX_HOSTNAME,
    Chain,
    chain_step,
    chain_type,
    follow_chain,
    parse_hostname,
)
from dynserver.propagation.delegation import enclosing_zone, find_delegation, referral
from dynserver.propagation.gathering import dns_asker, expected_from, gather, make_plan
from dynserver.propagation.model import (
    ERROR,
    IN_SYNC,
    STALE,
    Ask,
    Delegation,
    DelegationSource,
    Endpoint,
    Expected,
    Nameserver,
    NameserverSource,
    Observation,
    Plan,
    PropagationStatus,
    Reply,
)
from dynserver.propagation.replies import answer_values
from dynserver.propagation.verdicts import (
    build_rows,
    classify_authoritative,
    classify_resolver,
    nameserver_warnings,
    observe_authoritative,
    observe_resolver,
)

__all__ = [
    "CACHE_SECONDS",
    "ERROR",
    "HOSTNAME_PATTERN",
    "IN_SYNC",
    "MAX_HOSTNAME",
    "STALE",
    "Ask",
    "Busy",
    "Chain",
    "Checker",
    "CnameCheck",
    "Delegation",
    "DelegationSource",
    "Endpoint",
    "Expected",
    "Nameserver",
    "NameserverSource",
    "Observation",
    "Plan",
    "PropagationStatus",
    "Reply",
    "answer_values",
    "build_rows",
    "chain_step",
    "chain_type",
    "classify_authoritative",
    "classify_resolver",
    "cname_check_body",
    "dns_asker",
    "enclosing_zone",
    "expected_from",
    "find_delegation",
    "follow_chain",
    "gather",
    "make_plan",
    "nameserver_warnings",
    "observe_authoritative",
    "observe_resolver",
    "parse_hostname",
    "referral",
    "report_body",
]
