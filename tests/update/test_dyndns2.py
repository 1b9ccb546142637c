"""The dyndns2 protocol core: parameters in, plan and reply lines out (no HTTP)."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from dynserver.config import parse_name
from dynserver.types import TargetKey
from dynserver.update import dyndns2
from dynserver.update.dyndns2 import Code, Update

APP = parse_name("app.dyn.example.test")
V6 = parse_name("v6.dyn.example.test")
BRAVO: TargetKey = (APP, "A", "bravo")
CHARLIE: TargetKey = (APP, "A", "charlie")
DELTA: TargetKey = (V6, "AAAA", "delta")
KNOWN = {
    "bravo.app.dyn.example.test": BRAVO,
    "charlie.app.dyn.example.test": CHARLIE,
    "delta.v6.dyn.example.test": DELTA,
}


def find(hostname: str) -> TargetKey | None:
    return KNOWN.get(hostname.rstrip(".").lower())


def plan(query: str, source: str = "198.51.100.7", allowed: frozenset[TargetKey] = frozenset(KNOWN.values())):
    params = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    request = dyndns2.parse(params, source)  # type: ignore[arg-type]
    return dyndns2.plan(request, find=find, may_update=lambda key: key in allowed)


@pytest.mark.parametrize(
    ("query", "steps"),
    [
        ("hostname=bravo.app.dyn.example.test&myip=192.0.2.9", (Update(BRAVO, "192.0.2.9"),)),
        # absent myip: the client's own address
        ("hostname=bravo.app.dyn.example.test", (Update(BRAVO, "198.51.100.7"),)),
        # a prefix is stripped; several addresses: the one matching the record type
        (
            "hostname=bravo.app.dyn.example.test&myip=2001:db8::5/64,192.0.2.9/24",
            (Update(BRAVO, "192.0.2.9"),),
        ),
        ("hostname=delta.v6.dyn.example.test&myip=192.0.2.9,2001:DB8:0::5", (Update(DELTA, "2001:db8::5"),)),
        # malformed myip is ignored (dyndns2: the server's best guess is used)
        ("hostname=bravo.app.dyn.example.test&myip=nonsense", (Update(BRAVO, "198.51.100.7"),)),
        # an IPv6 target from an IPv4 client without an IPv6 myip: nothing to set
        ("hostname=delta.v6.dyn.example.test&myip=192.0.2.9", (Code.NOHOST,)),
        # several hostnames: one step each, in order; trailing dot and case do not matter
        (
            "hostname=BRAVO.app.dyn.example.test.,nope.app.dyn.example.test,localhost,charlie.app.dyn.example.test"
            "&myip=192.0.2.9",
            (Update(BRAVO, "192.0.2.9"), Code.NOHOST, Code.NOTFQDN, Update(CHARLIE, "192.0.2.9")),
        ),
        ("myip=192.0.2.9", (Code.NOTFQDN,)),
        ("hostname=", (Code.NOTFQDN,)),
        # ignored parameters change nothing
        (
            "system=dyndns&hostname=bravo.app.dyn.example.test&myip=192.0.2.9&wildcard=ON&mx=mx.example&backmx=NO"
            "&offline=YES",
            (Update(BRAVO, "192.0.2.9"),),
        ),
        ("hostname=" + ",".join(f"h{n}.example.test" for n in range(21)), (Code.NUMHOST,)),
        ("hostname=a..b", (Code.NOTFQDN,)),
    ],
)
def test_plan(query: str, steps: tuple[object, ...]) -> None:
    assert plan(query) == steps


def test_a_target_that_is_not_yours_looks_unknown() -> None:
    assert plan("hostname=charlie.app.dyn.example.test", allowed=frozenset({BRAVO})) == (Code.NOHOST,)


def test_hostname_may_be_repeated_as_parameters() -> None:
    steps = plan("hostname=bravo.app.dyn.example.test&hostname=charlie.app.dyn.example.test&myip=192.0.2.1")
    assert steps == (Update(BRAVO, "192.0.2.1"), Update(CHARLIE, "192.0.2.1"))


def test_an_ipv4_mapped_source_is_its_ipv4_address() -> None:
    request = dyndns2.parse([("hostname", "x.example")], "::ffff:192.0.2.44")
    assert request.source == ipaddress.IPv4Address("192.0.2.44")
    assert dyndns2.address_for(request, "A") == "192.0.2.44"
    assert dyndns2.address_for(request, "AAAA") is None


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (_basic("bravo-backup:s3cr:et"), ("bravo-backup", "s3cr:et")),  # a colon in the secret is kept
        ("basic " + base64.b64encode(b"a:b").decode(), ("a", "b")),
        (None, None),
        ("", None),
        ("Bearer abc", None),
        ("Basic !!!notbase64", None),
        (_basic("no-colon"), None),
        (_basic(":secret"), None),
        (_basic("name:"), None),
        ("Basic " + base64.b64encode(b"\xff:\xfe").decode(), None),
    ],
)
def test_basic_credentials(header: str | None, expected: tuple[str, str] | None) -> None:
    assert dyndns2.credentials(header) == expected


def test_reply_lines_and_status() -> None:
    ok = dyndns2.reply([dyndns2.line(Code.GOOD, "192.0.2.1"), dyndns2.line(Code.NOCHG, "192.0.2.1")])
    assert (ok.status, ok.body) == (200, "good 192.0.2.1\nnochg 192.0.2.1\n")
    fault = dyndns2.reply([dyndns2.line(Code.GOOD, "192.0.2.1"), "911"])
    assert fault.status == 500
    auth = dyndns2.badauth()
    assert (auth.status, auth.body) == (401, "badauth\n")
    assert ("WWW-Authenticate", 'Basic realm="dynserver"') in auth.headers
    abuse = dyndns2.refused(Code.ABUSE, 3, retry_after=12.4)
    assert (abuse.status, abuse.body) == (200, "abuse\nabuse\nabuse\n")
    assert ("Retry-After", "12") in abuse.headers
    assert dyndns2.refused(Code.SERVER_ERROR, 0).status == 500


@pytest.mark.parametrize("code", sorted(dyndns2.REFUSALS))
def test_no_refusal_contains_a_word_clients_take_for_success(code: Code) -> None:
    # inadyn counts "good", "nochg" (and by default "ok") anywhere in a body as success.
    for reply in (dyndns2.reply([dyndns2.line(code)]), dyndns2.refused(code, 2)):
        body = reply.body.lower()
        assert not any(word in body for word in ("good", "nochg", "ok")), (code, body)
    assert dyndns2.line(code, "192.0.2.1") == code.value  # an address only follows good/nochg
