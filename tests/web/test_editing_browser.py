"""Editing in a real browser (Debian's chromium under Playwright, as tests/web/test_browser.py
drives it) against a real dynserver with real backends: the admin adds a backup server
from the record page as okerr's form does (name, address, priority, a check override),
sees it checked, up and answered (on the page and in DNS), finds it in the config file
with the file's comments intact (and `dynserver check-config` accepts the file); a wrong
priority is refused with the message next to the field; on a phone (390 px) the forms
fit the screen (the new-record and monitor forms too), and the target is edited and
removed from there.

With ``DYNSERVER_SCREENSHOTS=docs/img`` the record page's form is copied there
(docs/dashboard.md shows it).
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.backends import Backend, backends
from tests.support import Server, dynserver, free_port, loopback, master_file
from tests.web.test_browser import (
    DEADLINE,
    DESKTOP,
    PASSWORD,
    PHONE,
    TIMEOUT_MS,
    Shots,
    chromium,
    dns_answer,
    fits,
    hash_password,
)
from tests.web.test_browser import shots as shots  # the fixture, as there
from tests.web.test_editing_api import check_config

pytestmark = pytest.mark.slow

ZONE = "dyn.example.test"
APP = f"app.{ZONE}"
NOTE = "# The web servers of app; ask the network team before changing priorities.\n"


@dataclass
class Edited:
    http: str
    config: Path
    server: Server
    charlie: Backend
    alpha: Backend


@contextmanager
def scene(folder: Path) -> Iterator[Edited]:
    """dynserver with one monitored record (charlie, up, answered) and a second backend
    (alpha) that no record names yet."""
    with backends(folder) as pool:
        made = {}
        for name in ("charlie", "alpha"):
            backend_host = loopback()
            made[name] = pool.add("http", name, backend_host, free_port(backend_host))
        charlie, alpha = made["charlie"], made["alpha"]
        charlie_host = charlie.host
        host = loopback()
        dns_port, http_port = free_port(host), free_port(host)
        (folder / f"{ZONE}.zone").write_text(master_file(ZONE, nameserver="ns1.example.invalid."))
        config = folder / "dynserver.toml"
        config.write_text(
            f"""\
{NOTE}[server]
dns = ["{host}:{dns_port}"]
database = "dynserver.db"

[web]
admin_password_hash = "{hash_password(PASSWORD)}"  # from `dynserver hash-password`

# One check for every web server: /health must say OK.
[monitors.web]
type = "http"
path = "/health"
interval = 20.0
timeout = 2.0
consecutive_up = 1
consecutive_down = 1

[zones."{ZONE}"]
file = "{ZONE}.zone"

[zones."{ZONE}".records.app]
type = "A"
monitor = "web"
ttl = 30
targets = [
  {{ name = "charlie", value = "{charlie_host}", priority = 2, port = {charlie.port} }},  # the old box
]
"""
        )
        with dynserver(config, host=host, port=dns_port, http=f"{host}:{http_port}", zone=ZONE) as server:
            yield Edited(f"http://{host}:{http_port}", config, server, charlie, alpha)


def test_a_target_is_added_from_the_record_page_and_edited_on_a_phone(tmp_path: Path, shots: Shots) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with chromium() as browser, scene(tmp_path) as s:
        context = browser.new_context(viewport=DESKTOP, base_url=s.http)
        context.set_default_timeout(TIMEOUT_MS)
        shots.watch.attach(context)
        page = context.new_page()
        page.goto(f"/records/{APP}")
        page.get_by_label("Admin password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{s.http}/records/{APP}")
        expect(page.locator('tr[data-target="charlie"] .state')).to_have_text("up")
        assert dns_answer(s.server, APP) == [s.charlie.host]

        form = page.locator("#add-target form")
        form.get_by_label("Name", exact=True).fill("alpha")
        form.get_by_label("Address", exact=True).fill(s.alpha.host)
        form.get_by_label("Priority", exact=True).fill("70000")
        form.get_by_text("Check overrides (optional)").click()
        form.get_by_label("Check port").fill(str(s.alpha.port))
        shots.take(page, "add-target-form")
        form.get_by_role("button", name="Add target").click()
        # Refused: the message sits right under the priority field, and nothing is written.
        error = page.locator("#e-priority")
        expect(error).to_contain_text("priority")
        field = page.locator("#f-priority").bounding_box()
        below = error.bounding_box()
        assert field and below and 0 <= below["y"] - (field["y"] + field["height"]) < 24
        expect(page.locator("#f-name")).to_have_value("alpha")  # what was typed is kept
        # The 422 is this step's point: the response and the console line it causes are expected.
        expected = f"{s.http}/records/{APP}/targets"
        shots.watch.problems[:] = [p for p in shots.watch.problems if not ("422" in p and expected in p)]
        shots.take(page, "add-target-refused")
        assert "alpha" not in s.config.read_text()

        page.locator("#f-priority").fill("1")
        page.get_by_role("button", name="Add target").click()
        expect(page).to_have_url(f"{s.http}/records/{APP}")
        row = page.locator('tr[data-target="alpha"]')
        expect(row).to_be_visible()
        # Checked at once after the reload: up within a moment (the page is drawn per request).
        deadline = time.monotonic() + DEADLINE
        while row.locator(".state").inner_text() != "up" and time.monotonic() < deadline:
            time.sleep(0.2)
            page.reload()
        expect(row.locator(".state")).to_have_text("up")
        expect(page.locator("p.answer .value")).to_have_text([s.alpha.host])
        assert dns_answer(s.server, APP) == [s.alpha.host]
        shots.take(page, "target-added")

        text = s.config.read_text()
        assert text.startswith(NOTE) and "# One check for every web server" in text
        assert "# the old box" in text and "# from `dynserver hash-password`" in text
        record = tomllib.loads(text)["zones"][ZONE]["records"]["app"]
        assert record["targets"][-1] == {
            "name": "alpha",
            "value": s.alpha.host,
            "priority": 1,
            "check_port": s.alpha.port,
        }
        check_config(s.config)

        # On a phone: the record page and its forms fit; edit alpha, then remove it.
        phone = browser.new_context(viewport=PHONE, base_url=s.http, is_mobile=True)
        phone.set_default_timeout(TIMEOUT_MS)
        phone.add_cookies(context.cookies())
        shots.watch.attach(phone)
        small = phone.new_page()
        small.goto(f"/records/{APP}")
        fits(small, "the record page")
        shots.take(small, "phone-record")
        small.locator('tr[data-target="alpha"]').get_by_role("link", name="Edit").click()
        expect(small.get_by_role("heading", level=1)).to_contain_text("Target alpha")
        fits(small, "the target form")
        small.get_by_label("Priority", exact=True).fill("3")
        shots.take(small, "phone-edit-target")
        small.get_by_role("button", name="Save").click()
        expect(small).to_have_url(f"{s.http}/records/{APP}")
        expect(small.locator("p.answer .value")).to_have_text([s.charlie.host])
        assert re.search(r'name = "alpha".*priority = 3', s.config.read_text())

        small.locator('tr[data-target="alpha"]').get_by_role("button", name="Remove").click()
        expect(small.locator('tr[data-target="alpha"]')).to_have_count(0)
        assert "alpha" not in s.config.read_text() and s.config.read_text().startswith(NOTE)
        check_config(s.config)
        shots.take(small, "phone-removed")
        for step, path in (("phone-new-record", "/records/new"), ("phone-monitor", "/monitors/web")):
            small.goto(path)
            expect(small.get_by_role("button", name="Create" if "new" in path else "Save")).to_be_enabled()
            fits(small, path)
            shots.take(small, step)
        shots.publish({"add-target-refused": "edit-target.png"})
