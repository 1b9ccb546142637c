"""The web UI in a real browser: Debian's chromium, driven by Playwright, against a real
dynserver.

- With real backends behind monitored records, the browser logs in, reads the dashboard,
  puts the answered target in maintenance with the page's button and sees the answer move
  (on the page, and in a DNS query asked of dynserver), ends the maintenance, then opens
  the record page, the event log and the propagation page; every page is also loaded at
  phone width (390 px), where nothing may be wider than the screen or stick out of its
  card.
- In a private network namespace with a parent zone, a secondary, a stale copy and three
  resolvers on port 53 (tests/delegation.py), with the browser inside the namespace too,
  a maintenance moves the answer and the propagation page shows who has caught up.

Any console error, uncaught script error, failed or 4xx/5xx response fails a test, and so
does any request to an address outside 127.0.0.0/8 (those are aborted before they leave).

Playwright drives the system chromium (``/usr/bin/chromium``, Debian package
``chromium``, in TEST_DEBS): ``playwright install`` is never run, its download host is
not reachable from where the suite runs. The browser is started with flags that stop its
own background traffic (component updates, sync, extensions...) and a host resolver rule
that fails every name lookup (the pages only use IP literals on 127.0.0.0/8), so it
sends nothing elsewhere; checked with strace, where the one thing left is chromium's IPv6
reachability probe, a UDP connect() to 2001:4860:4860::8888 that sends no packet.

A screenshot of every step goes to ``test-artifacts/browser/TEST/`` (the path is printed).
With ``DYNSERVER_SCREENSHOTS=docs/img`` the dashboard (desktop and phone) and propagation
screenshots of tests that pass are also copied there: that is how the pictures in the
README and in docs/dashboard.md are made.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.backends import Backend, Backends, backends
from tests.delegation import serve_dynserver, serve_nsd, serve_unbound
from tests.netns import NetNamespace, net_namespace
from tests.secondaries import Primary, command, nsd_config
from tests.support import (
    IN_CI,
    ROOT,
    Server,
    dynserver,
    free_port,
    loopback,
    master_file,
    poll,
    require_program,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response, Route

pytestmark = pytest.mark.slow

ZONE = "dyn.example.test"
PASSWORD = "browser-test-password"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
SCREENSHOTS_ENV = "DYNSERVER_SCREENSHOTS"
DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000  # any one browser action or expectation; generous on a busy machine
DEADLINE = 20.0  # seconds, for dynserver-side things (first checks) to happen
CHROMIUM_ARGS = [
    "--no-sandbox",  # the suite runs as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",  # Debian's launcher enables remote extensions (update checks)
    "--disable-default-apps",
    "--no-pings",
    # Every host name lookup fails: nothing can be fetched by name, and the browser's own
    # background requests (which all use names) die before a DNS query leaves.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.*",
]


# -- the scene: realistic records, real backends ---------------------------------------


@dataclass
class Scene:
    """A dynserver with three records, as a user would have them:

    - ``app``: priority failover charlie (1) -> echo (2) -> bravo (3); bravo is down (its
      backend answers 503), charlie and echo are up, charlie is answered;
    - ``api``: one round-robin group delta + foxtrot (foxtrot in maintenance from the
      config) and golf as the backup;
    - ``www``: a CNAME to a load balancer, not monitored.
    """

    server: Server
    http: str  # base URL of the web UI
    backends: dict[str, Backend]
    dead_resolver: str  # host:port where nothing listens

    def fqdn(self, label: str) -> str:
        return f"{label}.{ZONE}"


def hash_password(password: str) -> str:
    """The admin hash as a user makes it: ``dynserver hash-password`` reading stdin."""
    done = subprocess.run(
        [sys.executable, "-m", "dynserver", "hash-password"],
        input=password + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=30,
    )
    hashed = done.stdout.strip()
    assert hashed.startswith("scrypt$"), done
    return hashed


def _http_backend(pool: Backends, name: str) -> Backend:
    host = loopback()
    return pool.add("http", name, host, free_port(host))


def _target(backend: Backend, priority: int, **extra: Any) -> str:
    options = "".join(f", {k} = {'true' if v is True else v}" for k, v in extra.items())
    return (
        f'  {{ name = "{backend.name}", value = "{backend.host}", priority = {priority}, '
        f"port = {backend.port}{options} }},\n"
    )


def write_scene_config(
    folder: Path, dns_host: str, dns_port: int, dead: str, hashed: str, pool: dict[str, Backend]
) -> Path:
    b = pool
    config = f"""\
[server]
dns = ["{dns_host}:{dns_port}"]
database = "dynserver.db"

[web]
admin_password_hash = "{hashed}"
# The propagation page asks these instead of the public resolvers: dynserver itself (an
# in-sync answer) and a loopback address where nothing listens (an error row).
resolvers = ["{dns_host}:{dns_port}", "{dead}"]
propagation_timeout = 0.5

[monitors.web]
type = "http"
path = "/health"
expected_body = "status=OK"
interval = 20.0
timeout = 2.0
consecutive_down = 1
consecutive_up = 1

[zones."{ZONE}"]
file = "{ZONE}.zone"

[zones."{ZONE}".records.app]
type = "A"
monitor = "web"
ttl = 30
targets = [
{_target(b["charlie"], 1)}{_target(b["echo"], 2)}{_target(b["bravo"], 3)}]

[zones."{ZONE}".records.api]
type = "A"
monitor = "web"
ttl = 60
targets = [
{_target(b["delta"], 1)}{_target(b["foxtrot"], 1, maintenance=True)}{_target(b["golf"], 2)}]

[zones."{ZONE}".records.www]
type = "CNAME"
ttl = 300
targets = [
  {{ name = "lb", value = "lb1.example.net", priority = 1 }},
  {{ name = "spare", value = "lb2.example.net", priority = 2 }},
]
"""
    # The static part: SOA, NS, and a CNAME a user made to a dynamic record (what the
    # propagation page's hostname box follows). The NS name has no address, so the page
    # asks no nameserver on port 53 (it shows that row as an error); the netns test
    # below has real nameservers.
    (folder / f"{ZONE}.zone").write_text(
        master_file(ZONE, "shop IN CNAME app\n", nameserver="ns1.example.invalid.")
    )
    path = folder / "dynserver.toml"
    path.write_text(config)
    return path


def _latest_health(log: str, record: str, target: str) -> str | None:
    pattern = rf"event=target_health record={re.escape(record)}\. target={target} previous=\w+ current=(\w+)"
    found = re.findall(pattern, log)
    return found[-1] if found else None


@contextmanager
def scene(folder: Path) -> Iterator[Scene]:
    """Start the backends and dynserver; return once every checked target has its
    first verdict (bravo down, the others up)."""
    hashed = hash_password(PASSWORD)
    with backends(folder) as pool:
        made = {
            name: _http_backend(pool, name)
            for name in ("charlie", "echo", "bravo", "delta", "foxtrot", "golf")
        }
        made["bravo"].set(status=503, body="status=ERR disk full")
        host = loopback()
        dns_port = free_port(host)
        http_port = free_port(host)
        while http_port == dns_port:
            http_port = free_port(host)
        dead_host = loopback()
        dead = f"{dead_host}:{free_port(dead_host)}"  # nothing listens there
        config = write_scene_config(folder, host, dns_port, dead, hashed, made)
        with dynserver(config, host=host, port=dns_port, http=f"{host}:{http_port}", zone=ZONE) as server:
            expected = {
                ("app", "charlie"): "up",
                ("app", "echo"): "up",
                ("app", "bravo"): "down",
                ("api", "delta"): "up",
                ("api", "golf"): "up",
            }
            deadline = time.monotonic() + DEADLINE
            while True:
                log = server.log_text()
                seen = {key: _latest_health(log, f"{key[0]}.{ZONE}", key[1]) for key in expected}
                if seen == expected:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"first checks: expected {expected}, saw {seen}; log:\n{log}")
                time.sleep(0.05)
            yield Scene(server, f"http://{host}:{http_port}", made, dead)


def dns_answer(server: Server, name: str, rdtype: str = "A") -> list[str]:
    """The values dynserver answers for ``name`` now, asked over UDP."""
    query = dns.message.make_query(name + ".", rdtype)
    for _ in range(3):
        try:
            response = dns.query.udp(query, server.host, port=server.port, timeout=1.0)
        except dns.exception.Timeout:
            continue
        return sorted(
            r.to_text()
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.from_text(rdtype)
            for r in rrset
        )
    raise AssertionError(f"no DNS answer from dynserver for {name} {rdtype}")


# -- the browser ------------------------------------------------------------------------


@dataclass
class Watch:
    """What the pages did wrong: console errors, script errors, failed requests, error
    responses, and requests that tried to leave 127.0.0.0/8."""

    problems: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.route("**/*", self._guard)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))
        context.on("requestfailed", self._failed)
        context.on("response", self._response)

    def _guard(self, route: Route) -> None:
        url = urllib.parse.urlsplit(route.request.url)
        try:
            local = ipaddress.ip_address(url.hostname or "") in ipaddress.ip_network("127.0.0.0/8")
        except ValueError:
            local = False
        if local:
            route.continue_()
        else:
            self.problems.append(f"request outside 127.0.0.0/8 (aborted): {route.request.url}")
            route.abort("blockedbyclient")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.problems.append(f"console {message.type}: {message.text} ({message.location})")

    def _failed(self, request: Request) -> None:
        if not (request.failure or "").startswith("net::ERR_BLOCKED_BY_CLIENT"):  # _guard's: listed
            self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def check(self, step: str) -> None:
        seen = list(dict.fromkeys(self.problems))
        assert not seen, f"the browser saw problems by step {step!r}:\n" + "\n".join(seen)


@contextmanager
def chromium(wrap: Callable[[str], str] | None = None) -> Iterator[Browser]:
    """Debian's chromium under Playwright; ``wrap`` turns its path into the program to
    start instead (a script that runs it in a network namespace)."""
    program = require_program("chromium", "chromium")  # /usr/bin/chromium, Debian's launcher
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "Playwright for Python is not installed: .venv/bin/pip install -e '.[test]'"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=wrap(program) if wrap else program,
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=60_000,
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Shots:
    """Numbered screenshots of every step, in test-artifacts/browser/TEST/; after each
    one, the problems the browser saw so far fail the test at the step they happened in."""

    folder: Path
    watch: Watch = field(default_factory=Watch)
    taken: dict[str, Path] = field(default_factory=dict)
    published: list[Path] = field(default_factory=list)

    def take(self, page: Page, step: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken[step] = path
        self.watch.check(step)
        return path

    def publish(self, names: dict[str, str]) -> None:
        """At the end of a test that passed: with $DYNSERVER_SCREENSHOTS set, copy the
        pictures the docs show there (step -> file name)."""
        target = os.environ.get(SCREENSHOTS_ENV)
        if not target:
            return
        destination = ROOT / target
        destination.mkdir(parents=True, exist_ok=True)
        for step, name in names.items():
            shutil.copyfile(self.taken[step], destination / name)
            self.published.append(destination / name)


@pytest.fixture
def shots(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[Shots]:
    folder = ARTIFACTS / request.node.name.removeprefix("test_")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    taken = Shots(folder)
    yield taken
    lines = [f"screenshots: {folder}"] + [f"  copied to {path}" for path in taken.published]
    with capsys.disabled():
        print("\n  " + "\n  ".join(lines))


def overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: it fits)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


# Elements that stick out of their card (a box drawn past the card's edge), except inside
# a .scroll box, whose content may be wider and scrolls sideways.
_STICKING_OUT = """() => {
  const out = [];
  for (const card of document.querySelectorAll(".card")) {
    const edge = card.getBoundingClientRect().right + 0.5;
    for (const el of card.querySelectorAll("*")) {
      if (el.parentElement.closest(".scroll")) continue;
      const box = el.getBoundingClientRect();
      if (box.width > 0 && box.right > edge) {
        out.push(`${el.tagName.toLowerCase()}.${el.className} ${Math.round(box.right - edge)} px`);
      }
    }
  }
  return out;
}"""


def fits(page: Page, path: str) -> None:
    """Nothing is wider than the screen, and nothing sticks out of its card."""
    assert page.evaluate("window.innerWidth") == PHONE["width"]
    assert overflow(page) == 0, f"{path} is {overflow(page)} px wider than a {PHONE['width']} px screen"
    sticking = page.evaluate(_STICKING_OUT)
    assert not sticking, f"{path}: these stick out of their card: {sticking}"


def record_card(page: Page, name: str) -> Any:
    return page.locator(f'section.record[id="{name}"]')


def answer_values(card: Any) -> list[str]:
    return sorted(card.locator("p.answer .value").all_inner_texts())


# -- the test ---------------------------------------------------------------------------


def test_dashboard_maintenance_record_events_and_propagation_in_a_real_browser(
    tmp_path: Path, shots: Shots
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with chromium() as browser, scene(tmp_path) as demo:
        watch = shots.watch
        context = browser.new_context(viewport=DESKTOP, base_url=demo.http)
        context.set_default_timeout(TIMEOUT_MS)
        watch.attach(context)
        page = context.new_page()
        app, charlie, echo = demo.fqdn("app"), demo.backends["charlie"], demo.backends["echo"]

        # Not logged in: every page sends us to the login form.
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/login\?next=/$"))
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        shots.take(page, "login")
        page.get_by_label("Admin password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()

        # The dashboard: charlie (priority 1) is answered; bravo is down with its reason.
        expect(page).to_have_url(demo.http + "/")
        expect(page.get_by_role("heading", name="Zones")).to_be_visible()
        card = record_card(page, app)
        expect(card.locator("p.answer .value")).to_have_text([charlie.host])
        expect(card.locator('tr[data-target="bravo"] .state')).to_have_text("down")
        expect(card.locator('tr[data-target="bravo"]')).to_contain_text("503")
        api = record_card(page, demo.fqdn("api"))
        expect(api.locator('tr[data-target="foxtrot"] .state')).to_have_text("maintenance")
        expect(api.locator("p.answer .value")).to_have_text([demo.backends["delta"].host])
        assert dns_answer(demo.server, app) == [charlie.host]
        icon = page.locator('link[rel="icon"]').get_attribute("href")
        assert icon is not None
        served = page.request.get(icon)
        assert served.status == 200 and served.headers["content-type"].startswith("image/svg+xml")
        shots.take(page, "dashboard-before")

        # Maintenance on charlie, with the page's button: the answer moves to echo, on the
        # page and in DNS.
        card.locator('tr[data-target="charlie"]').get_by_role("button", name="Maintenance").click()
        expect(page).to_have_url(demo.http + "/")
        card = record_card(page, app)
        expect(card.locator('tr[data-target="charlie"] .state')).to_have_text("maintenance")
        expect(card.locator("p.answer .value")).to_have_text([echo.host])
        assert dns_answer(demo.server, app) == [echo.host]
        shots.take(page, "dashboard-maintenance")

        # End it: charlie (still passing its checks) is answered again.
        card.locator('tr[data-target="charlie"]').get_by_role("button", name="End maintenance").click()
        card = record_card(page, app)
        expect(card.locator('tr[data-target="charlie"] .state')).to_have_text("up")
        expect(card.locator("p.answer .value")).to_have_text([charlie.host])
        assert dns_answer(demo.server, app) == [charlie.host]
        shots.take(page, "dashboard")

        # Check now: the record's targets are checked at once (the next scheduled check
        # is up to 20 s away).
        before = len(charlie.requests())
        card.get_by_role("button", name="Check now").click()
        expect(page).to_have_url(demo.http + "/")
        poll(lambda: len(charlie.requests()), lambda n: n > before, "Check now to check charlie", DEADLINE)

        # The record page: targets, the chart, and both maintenance events by web:admin.
        card.get_by_role("link", name=app, exact=True).click()
        expect(page).to_have_url(f"{demo.http}/records/{app}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(app)
        expect(page.locator("svg.chart")).to_be_visible()
        expect(page.locator('table.targets tr[data-target="bravo"] .state')).to_have_text("down")
        events = page.locator("table.events tr.kind-maintenance")
        expect(events).to_have_count(2)
        expect(events.first).to_contain_text("web:admin")
        shots.take(page, "record")

        # The event log, filtered to maintenance: charlie on and off, nothing else.
        page.get_by_role("link", name="Events", exact=True).click()
        expect(page.get_by_role("heading", name="Events")).to_be_visible()
        expect(page.locator("table.events tr.kind-health").first).to_be_visible()
        page.get_by_label("Kind").select_option("maintenance")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"/events\?.*kind=maintenance"))
        rows = page.locator("table.events tbody tr")
        expect(rows).to_have_count(2)
        for row in rows.all():
            expect(row).to_have_class(re.compile(r"\bkind-maintenance\b"))
            expect(row).to_contain_text("charlie")
        shots.take(page, "events")

        # The propagation page of app: the expected answer, dynserver itself (asked as a
        # resolver) in sync, the dead resolver an error row.
        page.goto(f"/records/{app}")
        page.get_by_role("link", name="propagation").first.click()
        expect(page).to_have_url(f"{demo.http}/records/{app}/propagation")
        check_propagation(page, demo)
        # The hostname box: shop (a static CNAME in the zone) points here, www does not.
        box = page.get_by_label("Static hostname")
        box.fill(demo.fqdn("shop"))
        page.get_by_role("button", name="Follow its CNAMEs").click()
        expect(page.locator("#chain-verdict")).to_contain_text("points here")
        expect(page.locator("#chain-verdict .status-in_sync")).to_have_count(1)
        check_propagation(page, demo)
        shots.take(page, "propagation")
        page.get_by_label("Static hostname").fill(demo.fqdn("www"))
        page.get_by_role("button", name="Follow its CNAMEs").click()
        expect(page.locator("#chain-verdict .status-error")).to_contain_text("does not point here")

        # Phone width: nothing wider than the screen, on every page.
        phone = browser.new_context(
            viewport=PHONE, base_url=demo.http, storage_state=context.storage_state(), is_mobile=True
        )
        phone.set_default_timeout(TIMEOUT_MS)
        watch.attach(phone)
        small = phone.new_page()
        for step, path in (
            ("phone-dashboard", "/"),
            ("phone-record", f"/records/{app}"),
            ("phone-events", "/events"),
            ("phone-propagation", f"/records/{app}/propagation"),
        ):
            small.goto(path)
            expect(small.get_by_role("heading", level=1).first).to_be_visible()
            if step == "phone-propagation":
                check_propagation(small, demo)
            shots.take(small, step)
            fits(small, path)
        phone.close()

        # Log out: the session ends, the pages want a login again.
        page.goto("/")
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/login\?next=/$"))
        context.close()
        watch.check("log out")
    shots.publish({"dashboard": "dashboard.png", "phone-dashboard": "dashboard-phone.png"})


def check_propagation(page: Page, demo: Scene) -> None:
    """The propagation page shows the expected answer and the resolver rows (dynserver
    in sync, the dead one an error), then redraws them by itself (propagation.js)."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", level=1)).to_contain_text(demo.fqdn("app"))
    expect(page.locator("#expected .value")).to_have_text([demo.backends["charlie"].host])
    resolvers = page.locator("#resolvers")
    host, port = demo.server.host, demo.server.port
    expect(resolvers.locator(f'tr.row-in_sync[data-address="{host}"][data-port="{port}"]')).to_have_count(1)
    dead_host, dead_port = demo.dead_resolver.split(":")
    dead = resolvers.locator(f'tr.row-error[data-address="{dead_host}"][data-port="{dead_port}"]')
    expect(dead).to_have_count(1)
    checked = page.locator("#summary time")
    first = checked.inner_text()
    expect(checked).not_to_have_text(first, timeout=4 * TIMEOUT_MS)
    expect(resolvers.locator(f'tr.row-in_sync[data-address="{host}"]')).to_have_count(1)


# -- the propagation page against real servers ------------------------------------------

# In a private network namespace (tests/netns.py), every server on port 53 of its own
# address, so that glue and NS names work as on the Internet (tests/delegation.py).
RESOLVER, PARENT, OURS, SYNCED, COPY, CACHING, DEAD = (f"127.0.0.{i}" for i in (2, 3, 4, 5, 6, 7, 9))
WEB = f"http://{OURS}:8080"
APP = f"app.{ZONE}"
CHARLIE, ECHO = "192.0.2.21", "192.0.2.22"
SERIAL = 1000

PARENT_ZONE = f"""\
$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. 1 3600 600 1209600 60
        IN NS   ns1
ns1     IN A    {PARENT}
www     IN CNAME {APP}.
dyn     IN NS   ns1.dyn
dyn     IN NS   ns2.dyn
ns1.dyn IN A    {OURS}
ns2.dyn IN A    {SYNCED}
"""


def child_zone(serial: int, app: str = "") -> str:
    return f"""\
$ORIGIN {ZONE}.
$TTL 300
@    IN SOA ns1 hostmaster {serial} 3600 600 1209600 60
     IN NS  ns1
     IN NS  ns2
ns1  IN A   {OURS}
ns2  IN A   {SYNCED}
{app}"""


def child_config(hashed: str) -> str:
    return f"""
[zones."{ZONE}".transfer]
# ns2 copies the zone; 127.0.0.6 was a secondary too, but its copy stopped at an old serial.
secondaries = [{{ address = "{SYNCED}" }}, {{ address = "{COPY}" }}]

[zones."{ZONE}".records.app]
type = "A"
ttl = 300
targets = [
  {{ name = "charlie", value = "{CHARLIE}", priority = 1 }},
  {{ name = "echo", value = "{ECHO}", priority = 2 }},
]

[web]
admin_password_hash = "{hashed}"
resolvers = ["{RESOLVER}", "{CACHING}", "{DEAD}"]
propagation_timeout = 1.0
"""


def _answer(ns: NetNamespace, host: str, qname: str, recursion: bool = False) -> list[str]:
    try:
        reply = ns.query(host, 53, qname, "A", recursion=recursion, timeout=2.0)
    except AssertionError:
        return []
    return sorted(r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset)


def _serial(ns: NetNamespace, host: str) -> int | None:
    try:
        reply = ns.query(host, 53, ZONE, "SOA", timeout=2.0)
    except AssertionError:
        return None
    return int(reply.answer[0][0].serial) if reply.answer else None


@contextmanager
def propagation_world(folder: Path, hashed: str) -> Iterator[NetNamespace]:
    """The parent (NSD) delegating dyn.example.test to dynserver (ns1) and an NSD secondary
    (ns2); a static NSD copy at an old serial (a configured secondary that stopped
    copying); two unbound resolvers, one of which (CACHING) has looked the record up
    already; nothing at DEAD. Returns once ns2 has the zone and CACHING has the answer."""
    for program, package in (("nsd", "nsd"), ("unbound", "unbound")):
        require_program(program, package)
    with net_namespace() as ns:
        serve_nsd(ns, folder, "example.test", PARENT_ZONE, PARENT, name="parent")
        serve_dynserver(ns, folder, ZONE, child_zone(SERIAL), OURS, child_config(hashed), http=f"{OURS}:8080")
        serve_nsd(ns, folder, ZONE, child_zone(SERIAL - 1, f"app IN A {CHARLIE}\n"), COPY, name="copy")
        work = folder / "secondary"
        for sub in ("db", "zones"):
            (work / sub).mkdir(parents=True)
        (work / "nsd.conf").write_text(nsd_config(work, SYNCED, 53, Primary(OURS, 53, ZONE), None))
        log = work / "output.log"
        process = ns.popen(command("nsd", require_program("nsd", "nsd"), work / "nsd.conf"), log)
        ns.wait_for_dns(SYNCED, 53, ZONE, process=process, log=log)
        poll(lambda: _serial(ns, SYNCED) == _serial(ns, OURS), bool, "ns2's transfer", DEADLINE, every=0.1)
        for name, host in (("fresh", RESOLVER), ("caching", CACHING)):
            (folder / name).mkdir()
            serve_unbound(ns, folder / name, host, {"example.test": PARENT})
        poll(
            lambda: _answer(ns, CACHING, APP, True) == [CHARLIE],
            bool,
            "the caching resolver's answer",
            DEADLINE,
            every=0.1,
        )
        yield ns


def chromium_in(ns: NetNamespace, folder: Path) -> Callable[[str], str]:
    """A launcher that starts chromium inside the namespace: its own network has only lo,
    so nothing it sends can leave (Playwright talks to it over inherited pipes)."""

    def wrap(program: str) -> str:
        script = folder / "chromium-in-namespace"
        script.write_text("#!/bin/sh\nexec " + shlex.join(ns.command([program])) + ' "$@"\n')
        script.chmod(0o755)
        return str(script)

    return wrap


def test_propagation_page_against_real_servers_after_a_maintenance(tmp_path: Path, shots: Shots) -> None:
    """Maintenance moves the answer from charlie to echo; the propagation page then shows
    who has caught up: dynserver and its secondary (in sync), the copy at the old serial
    (stale), a resolver asked for the first time (in sync), one that cached the old answer
    (stale, with the TTL it has left) and a dead one (error); and that www.example.test, a
    CNAME at the parent, points here."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    hashed = hash_password(PASSWORD)
    with propagation_world(tmp_path, hashed) as ns, chromium(chromium_in(ns, tmp_path)) as browser:
        context = browser.new_context(viewport=DESKTOP, base_url=WEB)
        context.set_default_timeout(TIMEOUT_MS)
        shots.watch.attach(context)
        page = context.new_page()
        page.goto(f"/login?next=/records/{APP}")
        page.get_by_label("Admin password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{WEB}/records/{APP}")
        page.locator('tr[data-target="charlie"]').get_by_role("button", name="Maintenance").click()
        expect(page.locator("p.answer .value")).to_have_text([ECHO])
        assert _answer(ns, OURS, APP) == [ECHO]
        poll(
            lambda: _serial(ns, SYNCED) == _serial(ns, OURS),
            bool,
            "ns2's transfer of the change",
            DEADLINE,
            every=0.1,
        )

        page.get_by_role("link", name="propagation").first.click()
        expect(page).to_have_url(f"{WEB}/records/{APP}/propagation")
        expect(page.locator("#expected .value")).to_have_text([ECHO])
        servers, resolvers = page.locator("#nameservers"), page.locator("#resolvers")
        for table, status, address in (
            (servers, "in_sync", OURS),
            (servers, "in_sync", SYNCED),
            (servers, "stale", COPY),
            (resolvers, "in_sync", RESOLVER),
            (resolvers, "stale", CACHING),
            (resolvers, "error", DEAD),
        ):
            expect(table.locator(f'tr.row-{status}[data-address="{address}"]')).to_have_count(1)
        expect(resolvers.locator(f'tr[data-address="{CACHING}"]')).to_contain_text(CHARLIE)
        expect(page.locator("#warnings .warning")).to_have_count(0)  # delegation == zone NS
        page.get_by_label("Static hostname").fill("www.example.test")
        page.get_by_role("button", name="Follow its CNAMEs").click()
        expect(page.locator("#chain-verdict .status-in_sync")).to_have_text("points here")
        expect(page.locator("#chain")).to_contain_text(ECHO)
        shots.take(page, "propagation")

        phone = browser.new_context(viewport=PHONE, base_url=WEB, storage_state=context.storage_state())
        shots.watch.attach(phone)
        small = phone.new_page()
        small.goto(f"/records/{APP}/propagation")
        expect(small.locator(f'#resolvers tr.row-stale[data-address="{CACHING}"]')).to_have_count(1)
        shots.take(small, "phone-propagation")
        fits(small, "the propagation page")
        phone.close()
        context.close()
    shots.publish({"propagation": "propagation.png"})
