"""The propagation page and its JSON against real servers, end to end.

In a private network namespace (tests/netns.py, tests/delegation.py), every server on
port 53 of its own 127.0.0.x:

- 127.0.0.2 unbound, the first configured resolver; it knows only where example.test is;
- 127.0.0.3 NSD serving the parent example.test: ``www CNAME app.dyn.example.test`` and
  the delegation of dyn.example.test to ns1-ns4.dyn (with glue);
- 127.0.0.4 dynserver (ns1), with its web UI on port 8080;
- 127.0.0.5 NSD transferring the zone from dynserver (ns2, and a configured secondary):
  in sync, also after a change;
- 127.0.0.6 NSD serving a static copy with an older serial and another answer (ns3): stale;
- 127.0.0.7 nothing (ns4, in the delegation only: lame): error, refused;
- 127.0.0.8 a socket that takes queries and never answers (ns5, in the zone's NS set
  only: missing at the parent): error, timeout;
- 127.0.0.9 nothing, the second configured resolver: error.

dynserver must find the delegation through unbound and the parent, ask each server
directly, and mark them in the JSON and on the page; the warnings must name ns4 and ns5.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.rcode
import pytest

from tests.delegation import serve_dynserver, serve_nsd, serve_unbound
from tests.netns import NetNamespace, net_namespace
from tests.secondaries import Primary, command, nsd_config
from tests.support import ROOT, poll, require_program

pytestmark = pytest.mark.slow

ZONE = "dyn.example.test"
APP = f"app.{ZONE}"
RESOLVER, PARENT, OURS, SYNCED, STALE, LAME, HUNG, DEAD_RESOLVER = (f"127.0.0.{i}" for i in range(2, 10))
WEB = f"http://{OURS}:8080"
TIMEOUT = 1.0
WAIT = 20.0  # seconds: for the namespace's servers to start, transfer and resolve
SERIAL = 2026112001
OLD_SERIAL = SERIAL - 1

PARENT_ZONE = f"""\
$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. 2026112001 3600 600 1209600 60
        IN NS   ns1
ns1     IN A    {PARENT}
www     IN CNAME {APP}.
static  IN A    192.0.2.50
dyn     IN NS   ns1.dyn
dyn     IN NS   ns2.dyn
dyn     IN NS   ns3.dyn
dyn     IN NS   ns4.dyn
ns1.dyn IN A    {OURS}
ns2.dyn IN A    {SYNCED}
ns3.dyn IN A    {STALE}
ns4.dyn IN A    {LAME}
"""


def child_zone(serial: int, app: str = "") -> str:
    """The zone's own NS set: ns1-ns3 and ns5 (not ns4, which only the parent names)."""
    return f"""\
$ORIGIN {ZONE}.
$TTL 300
@    IN SOA ns1 hostmaster {serial} 3600 600 1209600 60
     IN NS  ns1
     IN NS  ns2
     IN NS  ns3
     IN NS  ns5
ns1  IN A   {OURS}
ns2  IN A   {SYNCED}
ns3  IN A   {STALE}
ns5  IN A   {HUNG}
{app}"""


CONFIG = f"""
[zones."{ZONE}".transfer]
secondaries = [{{ address = "{SYNCED}" }}]

[zones."{ZONE}".records.app]
type = "A"
ttl = 30
targets = [
  {{ name = "charlie", value = "192.0.2.21", priority = 1 }},
  {{ name = "bravo", value = "192.0.2.22", priority = 2 }},
]

[web]
resolvers = ["{RESOLVER}", "{DEAD_RESOLVER}"]
propagation_timeout = {TIMEOUT}
"""

# Runs inside the namespace: one HTTP request, printed as {"status", "body", "headers"}.
_FETCH = r"""
import json, sys, urllib.error, urllib.request
method, url, token = sys.argv[1:4]
request = urllib.request.Request(url, method=method)
if token:
    request.add_header("Authorization", "Bearer " + token)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        status, body, headers = response.status, response.read(), dict(response.headers)
except urllib.error.HTTPError as error:
    status, body, headers = error.code, error.read(), dict(error.headers)
print(json.dumps({"status": status, "body": body.decode(), "headers": headers}))
"""

# Runs inside the namespace: a UDP socket on port 53 that takes queries and never answers.
_HUNG = f"""
import socket, time
hung = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
hung.bind(("{HUNG}", 53))
print("bound", flush=True)
time.sleep(3600)
"""


@dataclass
class World:
    ns: NetNamespace
    token: str

    def http(self, path: str, method: str = "GET", auth: bool = True) -> tuple[int, str, float]:
        """A request to dynserver's web UI from inside the namespace: status, body, seconds."""
        started = time.monotonic()
        done = self.ns.run([sys.executable, "-c", _FETCH, method, WEB + path, self.token if auth else ""])
        reply = json.loads(done.stdout)
        return reply["status"], reply["body"], time.monotonic() - started

    def propagation(self, query: str = "") -> dict[str, Any]:
        status, body, _ = self.http(f"/api/v1/records/{APP}/propagation{query}")
        assert status == 200, body
        return json.loads(body)  # type: ignore[no-any-return]

    def serial(self, host: str) -> int | None:
        try:
            reply = self.ns.query(host, 53, ZONE, "SOA", timeout=1.0)
        except AssertionError:
            return None
        return int(reply.answer[0][0].serial) if reply.rcode() == dns.rcode.NOERROR and reply.answer else None


def _secondary(ns: NetNamespace, folder: Path) -> None:
    """NSD on SYNCED:53, transferring the zone from dynserver (tests/secondaries.py's config)."""
    nsd = require_program("nsd", "nsd")
    work = folder / "secondary"
    for sub in ("", "db", "zones"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    config = work / "nsd.conf"
    config.write_text(nsd_config(work, SYNCED, 53, Primary(OURS, 53, ZONE), None))
    log = work / "output.log"
    process = ns.popen(command("nsd", nsd, config), log)
    ns.wait_for_dns(SYNCED, 53, ZONE, process=process, log=log)


def _credential(config: Path) -> str:
    """An admin credential, added by the CLI to dynserver's database (a file on the host)."""
    argv = [sys.executable, "-m", "dynserver", "credential", "add", "--config", str(config)]
    argv += ["--name", "propagation-test", "--admin"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_program("unbound", "unbound")
    require_program("nsd", "nsd")
    folder = tmp_path_factory.mktemp("propagation")
    with net_namespace() as ns:
        serve_nsd(ns, folder, "example.test", PARENT_ZONE, PARENT, name="parent")
        config = serve_dynserver(ns, folder, ZONE, child_zone(SERIAL), OURS, CONFIG, http=f"{OURS}:8080")
        serve_nsd(ns, folder, ZONE, child_zone(OLD_SERIAL, "app IN A 192.0.2.99\n"), STALE, name="stale")
        _secondary(ns, folder)
        hung = ns.popen([sys.executable, "-c", _HUNG], folder / "hung.log")
        poll(
            lambda: "bound" in (folder / "hung.log").read_text() or hung.poll() is not None,
            bool,
            "the hung socket",
            WAIT,
            every=0.2,
        )
        assert hung.poll() is None, (folder / "hung.log").read_text()
        serve_unbound(ns, folder, RESOLVER, {"example.test": PARENT})
        world = World(ns, _credential(config))
        # The web UI starts after DNS; then the secondary must have the zone.
        poll(lambda: world.http("/healthz", auth=False)[0] == 200, bool, "the web UI", WAIT, every=0.2)
        ours = world.serial(OURS)
        assert ours is not None and ours >= SERIAL
        poll(
            lambda: world.serial(SYNCED) == world.serial(OURS),
            bool,
            "the secondary's transfer",
            WAIT,
            every=0.2,
        )
        # Let the resolver follow the delegation once, as a client would: retrying. Its first
        # try may pick the dead ns4, wait out its timeouts and then drop the late answer
        # (unbound's discard-timeout); by then it knows to avoid ns4 and has the answer.
        poll(lambda: warm(ns), bool, "the resolver to follow the delegation", WAIT, every=0.2)
        yield world


def warm(ns: NetNamespace) -> bool:
    try:
        reply = ns.query(RESOLVER, 53, "www.example.test", "A", recursion=True, timeout=3)
    except AssertionError:
        return False
    return reply.rcode() == dns.rcode.NOERROR and len(reply.answer) == 2


def by_address(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["address"]: row for row in rows}


def test_the_json_marks_servers_in_sync_stale_and_error_and_names_the_disagreement(world: World) -> None:
    started = time.monotonic()
    body = world.propagation()
    took = time.monotonic() - started
    serial = world.serial(OURS)
    assert body["expected"] == {"answer": ["192.0.2.21"], "ttl": 30, "serial": serial, "rcode": "NOERROR"}

    # The delegation, found through unbound (the parent's SOA and servers), then asked of
    # the parent itself.
    delegation = body["delegation"]
    assert (delegation["parent"], delegation["source"], delegation["error"]) == (
        "example.test",
        "parent",
        None,
    )
    assert [(n["name"], n["addresses"]) for n in delegation["nameservers"]] == [
        (f"ns1.{ZONE}", [OURS]),
        (f"ns2.{ZONE}", [SYNCED]),
        (f"ns3.{ZONE}", [STALE]),
        (f"ns4.{ZONE}", [LAME]),
    ]
    assert [n["name"] for n in body["zone_nameservers"]] == [f"ns{i}.{ZONE}" for i in (1, 2, 3, 5)]
    assert body["warnings"] == [
        f"ns4.{ZONE} is delegated to by the parent (example.test) but is not in the zone's NS set: "
        "lame if it does not serve the zone, and a copy nobody updates if it does",
        f"ns5.{ZONE} is in the zone's NS set but the parent (example.test) does not delegate to it: "
        "missing at the parent",
    ]

    rows = by_address(body["nameservers"])
    assert set(rows) == {OURS, SYNCED, STALE, LAME, HUNG}
    for address in (OURS, SYNCED):
        row = rows[address]
        assert (row["status"], row["aa"], row["answer"], row["ttl"], row["serial"]) == (
            "in_sync",
            True,
            ["192.0.2.21"],
            30,
            serial,
        ), row
    assert rows[OURS]["sources"] == ["delegation", "zone"] and rows[OURS]["names"] == [f"ns1.{ZONE}"]
    assert rows[SYNCED]["sources"] == ["delegation", "zone", "secondary"]
    stale = rows[STALE]
    assert (stale["status"], stale["answer"], stale["serial"], stale["aa"]) == (
        "stale",
        ["192.0.2.99"],
        OLD_SERIAL,
        True,
    )
    assert (rows[LAME]["status"], rows[LAME]["sources"]) == ("error", ["delegation"])
    assert rows[LAME]["reason"] == f"refused: nothing listens at {LAME}"
    assert (rows[HUNG]["status"], rows[HUNG]["sources"]) == ("error", ["zone"])
    assert rows[HUNG]["reason"] == f"timeout after {TIMEOUT:g} s"

    resolvers = by_address(body["resolvers"])
    # unbound asked whichever delegated server it liked: ours, the secondary or the stale
    # copy. Whatever it holds, the mark must say so.
    unbound = resolvers[RESOLVER]
    assert unbound["answer"] in (["192.0.2.21"], ["192.0.2.99"]), unbound
    assert unbound["status"] == ("in_sync" if unbound["answer"] == ["192.0.2.21"] else "stale")
    assert 0 < unbound["ttl"] <= (30 if unbound["status"] == "in_sync" else 300)  # the copy's $TTL
    assert resolvers[DEAD_RESOLVER]["status"] == "error"
    assert body["summary"]["stale"] in (1, 2) and body["summary"]["error"] == 3

    # The hung server cost one timeout; everything else ran alongside it.
    assert body["duration"] < 3 * TIMEOUT, body["duration"]
    assert took < 10


def test_the_cname_box_follows_the_static_name_through_the_resolver(world: World) -> None:
    chain = world.propagation("?hostname=www.example.test")["cname_check"]
    assert chain["resolver"] == RESOLVER
    [hop] = chain["hops"]
    assert (hop["name"], hop["cname"]) == ("www.example.test", APP)
    assert 0 < hop["ttl"] <= 300  # what the resolver has left of it
    assert chain["reaches_record"] is True
    assert chain["reason"] == f"www.example.test reaches {APP} in 1 hop(s)"
    direct = world.propagation("?hostname=static.example.test")["cname_check"]
    assert direct["reaches_record"] is False and direct["hops"] == []
    assert direct["reason"] == "static.example.test has no CNAME: it answers 192.0.2.50 itself"
    missing = world.propagation("?hostname=nope.example.test")["cname_check"]
    assert missing["reason"] == "nope.example.test does not exist (NXDOMAIN)"


def test_the_page_shows_the_same_marks_without_script(world: World) -> None:
    status, page, _ = world.http(f"/records/{APP}/propagation?hostname=www.example.test", auth=False)
    assert status == 200
    for address, mark in (
        (OURS, "in_sync"),
        (SYNCED, "in_sync"),
        (STALE, "stale"),
        (LAME, "error"),
        (HUNG, "error"),
    ):
        assert f'<tr class="row-{mark}" data-address="{address}" data-port="53">' in page, address
    assert f"ns4.{ZONE} is delegated to by the parent" in page
    assert f"ns5.{ZONE} is in the zone&#39;s NS set" in page
    assert "Delegation from the parent zone <b>example.test</b>" in page
    assert "points here" in page and "www.example.test reaches" in page
    status, live, _ = world.http(f"/records/{APP}/propagation.json", auth=False)
    assert status == 200 and by_address(json.loads(live)["nameservers"])[STALE]["status"] == "stale"


def test_a_change_reaches_the_secondary_and_the_page_says_who_caught_up(world: World) -> None:
    before = world.serial(OURS)
    assert before is not None
    status, reply, _ = world.http(f"/api/v1/records/{APP}/targets/charlie/maintenance", method="PUT")
    assert status == 200, reply  # charlie drained: the answer fails over to bravo

    def caught_up() -> dict[str, Any] | None:
        body = world.propagation()
        rows = by_address(body["nameservers"])
        synced = rows[SYNCED]["status"] == "in_sync" and rows[SYNCED]["serial"] == before + 1
        return body if synced and body["expected"]["serial"] == before + 1 else None

    body = poll(caught_up, bool, "the secondary to take the change", WAIT, every=0.2)
    assert body is not None
    assert body["expected"]["answer"] == ["192.0.2.22"]
    rows = by_address(body["nameservers"])
    assert rows[OURS]["status"] == "in_sync" and rows[OURS]["answer"] == ["192.0.2.22"]
    assert rows[SYNCED]["answer"] == ["192.0.2.22"]
    assert rows[STALE]["status"] == "stale" and rows[STALE]["answer"] == ["192.0.2.99"]
    unbound = by_address(body["resolvers"])[RESOLVER]
    if unbound["answer"] == ["192.0.2.22"]:
        assert unbound["status"] == "in_sync"
    else:  # still caching the answer it had: stale until its TTL runs out
        assert unbound["status"] == "stale" and "it may keep it" in unbound["reason"]
