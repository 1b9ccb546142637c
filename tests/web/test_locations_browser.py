"""The locations pages in a real browser (Debian's chromium under Playwright, as
tests/web/test_browser.py drives it): a real dynserver with quorum 2 of 3 locations, two
`dynserver agent run` processes, one agent cut from the preferred backend by an nftables
rule and the other killed. The record page's grid must show who sees what, the stale
agent and the shrunken vote; the agents page who is connected; both fit a phone screen.

With ``DYNSERVER_SCREENSHOTS=docs/img`` the grid and the agents page are copied there
(docs/dashboard.md shows them). Needs root (agents under uids of their own, nftables):
skipped with the reason otherwise, a failure under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_locations import ZONE, quorum_of_three
from tests.support import poll
from tests.web.test_browser import ARTIFACTS, DESKTOP, PHONE, TIMEOUT_MS, Shots, chromium, fits

pytestmark = pytest.mark.slow


@pytest.fixture
def shots() -> Iterator[Shots]:
    folder = ARTIFACTS / "locations"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    yield Shots(folder)


def test_the_grid_and_the_agents_page_in_a_real_browser(tmp_path: Path, shots: Shots) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with quorum_of_three(tmp_path) as setup:
        run, a = setup.run, setup.preferred
        run.cut("east", a)
        setup.wait_seen("east", "down")
        run.agents["west"].kill()
        poll(lambda: run.views("app", a.name)["west"]["fresh"], lambda fresh: not fresh, "west stale", 15.0)
        with chromium() as browser:
            context = browser.new_context(viewport=DESKTOP, base_url=run.base)
            context.set_default_timeout(TIMEOUT_MS)
            shots.watch.attach(context)
            page = context.new_page()
            record = f"/records/app.{ZONE}"
            page.goto(record)
            grid = page.locator("#locations")
            expect(grid.locator("thead th")).to_have_text(["Target", "local", "east", "west", "Vote"])
            row = grid.locator(f'tr[data-target="{a.name}"]')
            expect(row.locator('td[data-location="local"] .state')).to_have_text("up")
            east = row.locator('td[data-location="east"]')
            expect(east.locator(".state")).to_have_text("down")
            expect(east).to_contain_text("timeout")
            expect(row.locator('td[data-location="west"]')).to_contain_text("stale")
            expect(row.locator("td.vote")).to_contain_text("deciding from 2 of 3 locations")
            expect(page.locator("table.targets").locator(f'tr[data-target="{a.name}"] .state')).to_have_text(
                "up"
            )
            shots.take(page, "locations")

            page.get_by_role("link", name="Agents", exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Agents")
            rows = page.locator("table.agents tbody tr")
            expect(rows).to_have_count(3)
            expect(page.locator('tr[data-location="east"] td[data-label="connected"]')).to_have_text("yes")
            expect(page.locator('tr[data-location="west"] td[data-label="connected"]')).to_have_text("no")
            shots.take(page, "agents")

            phone = browser.new_context(viewport=PHONE, base_url=run.base, is_mobile=True)
            phone.set_default_timeout(TIMEOUT_MS)
            shots.watch.attach(phone)
            small = phone.new_page()
            for step, path in (("phone-locations", record), ("phone-agents", "/agents")):
                small.goto(path)
                expect(small.get_by_role("heading", level=1).first).to_be_visible()
                shots.take(small, step)
                fits(small, path)
            phone.close()
            context.close()
        shots.publish({"locations": "locations.png", "agents": "agents.png"})
