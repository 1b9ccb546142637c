"""The okerr-style set-up end to end, through a real resolver (unbound).

A parent zone ``example.test`` (served by NSD, or by a second dynserver) says
``www.example.test CNAME app.dyn.example.test`` and delegates ``dyn.example.test`` to
dynserver (NS ``ns1.dyn.example.test`` plus glue). unbound, told only where the parent is
(a stub-zone), must resolve ``www.example.test`` to the address dynserver serves.

A delegation's glue is an address without a port, so unbound asks dynserver on port 53.
Tests never touch port 53 of the host: the whole scenario (unbound, the parent, dynserver
and every query) runs in a private network namespace (see tests/netns.py), where
127.0.0.0/8 and its port 53 belong to this test alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.delegation import serve_dynserver, serve_nsd, serve_unbound
from tests.netns import NetNamespace, net_namespace
from tests.support import require_program

pytestmark = pytest.mark.slow

# Fixed addresses: inside the private namespace nothing else uses them.
RESOLVER = "127.0.0.2"  # unbound
PARENT = "127.0.0.3"  # example.test: NSD or dynserver
CHILD = "127.0.0.4"  # dyn.example.test: dynserver, at its glue address, port 53
APP_ADDRESS = "192.0.2.21"

PARENT_ZONE = f"""\
$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. (
                2026112001 3600 600 1209600 60 )
        IN NS   ns1
ns1     IN A    {PARENT}
; the okerr way: a static name points at a name in the dynamic zone
www     IN CNAME app.dyn.example.test.
; the dynamic zone is delegated to dynserver; glue carries no port, hence port 53
dyn     IN NS   ns1.dyn
ns1.dyn IN A    {CHILD}
"""

CHILD_ZONE = f"""\
$ORIGIN dyn.example.test.
$TTL 300
@       IN SOA  ns1.dyn.example.test. hostmaster.dyn.example.test. (
                2026112001 3600 600 1209600 60 )
        IN NS   ns1
ns1     IN A    {CHILD}
app     IN A    {APP_ADDRESS}
"""


@dataclass
class Scenario:
    ns: NetNamespace
    folder: Path
    unbound_config: Path


@pytest.fixture(params=["nsd", "dynserver"], ids=lambda parent: f"parent-{parent}")
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scenario]:
    """Parent, dynserver and unbound running in a private network namespace."""
    require_program("unbound", "unbound")
    with net_namespace() as ns:
        if request.param == "nsd":
            serve_nsd(ns, tmp_path, "example.test", PARENT_ZONE, PARENT)
        else:
            serve_dynserver(ns, tmp_path, "example.test", PARENT_ZONE, PARENT)
        serve_dynserver(ns, tmp_path, "dyn.example.test", CHILD_ZONE, CHILD)
        yield Scenario(ns, tmp_path, serve_unbound(ns, tmp_path, RESOLVER, {"example.test": PARENT}))


def _rrset(section: list[dns.rrset.RRset], name: str, rdtype: str) -> dns.rrset.RRset | None:
    wanted = dns.rdatatype.from_text(rdtype)
    return next((r for r in section if r.name.to_text() == name and r.rdtype == wanted), None)


def _texts(rrset: dns.rrset.RRset | None) -> set[str]:
    return {rdata.to_text() for rdata in rrset} if rrset is not None else set()


def test_the_pieces_answer_as_a_trace_would_see_them(scenario: Scenario) -> None:
    """What unbound will be told at each step, asked directly without recursion."""
    ns = scenario.ns
    # 1. The parent has the CNAME, authoritatively, but not the address.
    www = ns.query(PARENT, 53, "www.example.test", "A")
    assert www.rcode() == dns.rcode.NOERROR
    assert www.flags & dns.flags.AA
    assert _texts(_rrset(www.answer, "www.example.test.", "CNAME")) == {"app.dyn.example.test."}
    assert _rrset(www.answer, "app.dyn.example.test.", "A") is None
    # 2. For the target, the parent refers to dynserver: NS plus glue, not authoritative.
    referral = ns.query(PARENT, 53, "app.dyn.example.test", "A")
    assert referral.rcode() == dns.rcode.NOERROR
    assert not referral.flags & dns.flags.AA
    assert referral.answer == []
    assert _texts(_rrset(referral.authority, "dyn.example.test.", "NS")) == {"ns1.dyn.example.test."}
    assert _texts(_rrset(referral.additional, "ns1.dyn.example.test.", "A")) == {CHILD}
    # 3. dynserver, at the glue address on port 53, answers authoritatively.
    app = ns.query(CHILD, 53, "app.dyn.example.test", "A")
    assert app.rcode() == dns.rcode.NOERROR
    assert app.flags & dns.flags.AA
    assert _texts(_rrset(app.answer, "app.dyn.example.test.", "A")) == {APP_ADDRESS}


def test_unbound_resolves_the_cname_into_the_delegated_dynamic_zone(scenario: Scenario) -> None:
    ns = scenario.ns
    reply = ns.query(RESOLVER, 53, "www.example.test", "A", recursion=True)
    assert reply.rcode() == dns.rcode.NOERROR, reply
    assert reply.flags & dns.flags.RA
    assert not reply.flags & dns.flags.AA  # a resolver's answer
    cname = _rrset(reply.answer, "www.example.test.", "CNAME")
    address = _rrset(reply.answer, "app.dyn.example.test.", "A")
    assert _texts(cname) == {"app.dyn.example.test."}, reply
    assert _texts(address) == {APP_ADDRESS}, reply
    assert reply.answer.index(cname) < reply.answer.index(address)  # the chain, in order

    # The same through dig, the way a user would look.
    dig = require_program("dig", "dnsutils")
    short = ns.run(
        [dig, f"@{RESOLVER}", "-p", "53", "+short", "+tries=1", "+time=5", "www.example.test", "A"]
    )
    assert short.stdout.split() == ["app.dyn.example.test.", APP_ADDRESS]

    # unbound really followed the delegation: its cache holds the delegation (NS + glue)
    # learnt from the parent and the address learnt from dynserver.
    control = require_program("unbound-control", "unbound")
    cache = ns.run([control, "-c", scenario.unbound_config, "dump_cache"]).stdout
    fields = [line.split() for line in cache.splitlines()]
    records = {(f[0], f[3], f[4]) for f in fields if len(f) >= 5 and f[2] == "IN"}
    assert ("dyn.example.test.", "NS", "ns1.dyn.example.test.") in records, cache
    assert ("ns1.dyn.example.test.", "A", CHILD) in records, cache
    assert ("app.dyn.example.test.", "A", APP_ADDRESS) in records, cache
    lookup = ns.run([control, "-c", scenario.unbound_config, "lookup", "app.dyn.example.test"]).stdout
    assert "dyn.example.test." in lookup and CHILD in lookup, lookup


def test_unbound_follows_dynserver_over_tcp_too(scenario: Scenario) -> None:
    """A client that asks the resolver over TCP gets the same chain."""
    reply = scenario.ns.query(RESOLVER, 53, "www.example.test", "A", recursion=True, tcp=True)
    assert _texts(_rrset(reply.answer, "app.dyn.example.test.", "A")) == {APP_ADDRESS}, reply
