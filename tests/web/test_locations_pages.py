"""The pages with a [locations] table: the record page's target x location grid with the
vote, the agents page and its nav link, and location events in the event log. A runtime
from a config with [locations] is fed results from two agents through
runtime.on_location_result, as the hub does; without the table nothing of it shows."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from dynserver.app import App
from dynserver.health.state import Result
from dynserver.store.db import EventRow, StoredAgent
from dynserver.web.pages import vote_text
from tests.support import until
from tests.web.test_pages import run, running

# quorum 2 of three locations: this server ("local") and the agents paris and tokyo.
LOCATIONS = "\n[locations]\nquorum = 2\nstale_after = 3\n"
AGENTS = ("paris", "tokyo")
MON = "mon.dyn.example.test"  # the monitored record: foxtrot (127.0.0.1:9, refused) and golf


@asynccontextmanager
async def located(folder: Path, extra: str = LOCATIONS) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    """The test App with [locations], both agents registered (as `dynserver agent add`
    stores them, and as the hub tells the runtime), once this server's own first check
    (foxtrot: refused) has reported."""
    async with running(folder, web=extra) as (app, client):
        assert app.store is not None
        for name in AGENTS:
            await app.store.add_agent(StoredAgent(name=name, salt=b"s", digest=b"d", created=time.time()))
        app.runtime.set_agents(AGENTS)
        local = app.runtime.locations_config()
        if local is not None and local.local:
            await until(lambda: app.runtime.location_statuses()[0].results > 0, "the local check")
        yield app, client


def feed(
    app: App, location: str, ok: bool, reason: str, latency: float | None = 0.004, age: float = 0.0
) -> None:
    """One result for every check, from ``location``, stamped now (or ``age`` seconds
    ago) as the hub stamps it."""
    _, checks = app.runtime.agent_checks()
    assert checks, "no check handed to agents"
    at = asyncio.get_running_loop().time() - age
    for check_id in checks:
        assert app.runtime.on_location_result(location, check_id, Result(ok, reason, at, latency))


def grid(page: str) -> str:
    match = re.search(r'<section class="card" id="locations">.*?</section>', page, re.S)
    assert match, "no locations grid on the page"
    return match.group(0)


def cell(section: str, target: str, location: str) -> str:
    row = re.search(rf'<tr class="target" data-target="{target}">.*?</tr>', section, re.S)
    assert row, f"no row for {target}"
    found = re.search(rf'<td class="location[^"]*" data-location="{location}".*?</td>', row.group(0), re.S)
    assert found, f"no cell for {target} at {location}"
    return found.group(0)


def test_the_record_page_shows_each_location_and_the_vote(tmp_path: Path) -> None:
    async def test() -> None:
        async with located(tmp_path) as (app, client):
            feed(app, "paris", True, "connected", 0.004)
            feed(app, "tokyo", False, "timeout", None)
            page = (await client.get(f"/records/{MON}")).text
            section = grid(page)
            # the columns: the target, each location in location order, the vote
            headers = re.findall(r'<th scope="col">([^<]*)</th>', section)
            assert headers == ["Target", "local", "paris", "tokyo", "Vote"]
            paris = cell(section, "foxtrot", "paris")
            assert "state-up" in paris and ">ok<" in paris and "connected" in paris and "4 ms" in paris
            assert "s ago" in paris and "stale" not in paris
            tokyo = cell(section, "foxtrot", "tokyo")
            assert "state-down" in tokyo and ">fail<" in tokyo and "timeout" in tokyo
            local = cell(section, "foxtrot", "local")
            assert "state-down" in local and "refused" in local  # 127.0.0.1:9: nothing listens
            # two of three say down: the vote, in the words events use
            assert "down at 2 of 3 locations (need 2)" in section
            # the dashboard's targets table says it too
            dashboard = (await client.get("/")).text
            assert "down at 2 of 3 locations (need 2)" in dashboard
            assert '<a href="/agents">Agents</a>' in dashboard
            # accessible markup: a caption, column and row headers
            assert "<caption" in section and '<th scope="row" class="name">foxtrot' in section

    run(test)


def test_a_stale_or_excluded_location_is_marked_and_shrinks_the_vote(tmp_path: Path) -> None:
    async def test() -> None:
        async with located(tmp_path) as (app, client):
            feed(app, "paris", True, "connected")
            feed(app, "tokyo", True, "connected", age=3600)  # an hour ago: stale
            section = grid((await client.get(f"/records/{MON}")).text)
            tokyo = cell(section, "foxtrot", "tokyo")
            assert "not-fresh" in tokyo and ">stale<" in tokyo and "60 min ago" in tokyo
            assert "deciding from 2 of 3 locations" in section
            # The canary of paris fails: its own connectivity is gone, it no longer votes.
            app.runtime.on_canary("paris", False, "timeout")
            section = grid((await client.get(f"/records/{MON}")).text)
            paris = cell(section, "foxtrot", "paris")
            assert " excluded" in paris and ">excluded<" in paris
            assert "deciding from 1 of 3 locations" in section
            agents = (await client.get("/agents")).text
            row = re.search(r'<tr class="location" data-location="paris">.*?</tr>', agents, re.S)
            assert row and "excluded" in row.group(0) and "canary failed: timeout" in row.group(0)
            assert '<span class="bad">failed</span>' in row.group(0)

    run(test)


def test_the_agents_page_lists_every_location(tmp_path: Path) -> None:
    async def test() -> None:
        async with located(tmp_path, LOCATIONS + 'canary = "127.0.0.1:9"\n') as (app, client):
            app.runtime.agent_connected("paris", "0.9.1", "198.51.100.20")
            feed(app, "paris", True, "connected")
            page = (await client.get("/agents")).text
            assert "<h1>Agents" in page and "<b>2</b> fresh locations agree, or all of them" in page
            assert '<span class="mono">127.0.0.1:9</span>' in page
            rows = dict(re.findall(r'<tr class="location" data-location="([^"]+)">(.*?)</tr>', page, re.S))
            assert list(rows) == ["local", "paris", "tokyo"]
            assert '<td data-label="kind">local</td>' in rows["local"]
            paris = rows["paris"]
            assert '<td data-label="kind">agent</td>' in paris and '<span class="ok">yes</span>' in paris
            assert "0.9.1" in paris and "198.51.100.20" in paris and " ago" in paris
            # mon's two targets: foxtrot is checked, golf has no address yet (nothing to check)
            assert 'data-label="fresh">1/2<' in paris
            tokyo = rows["tokyo"]
            assert '<span class="bad">no</span>' in tokyo and "never" in tokyo
            assert 'data-label="fresh">0/2<' in tokyo
            # no token anywhere: the page names agents only
            assert "Bearer" not in page

    run(test)


def test_location_events_render_in_the_event_log(tmp_path: Path) -> None:
    async def test() -> None:
        async with located(tmp_path) as (app, client):
            app.runtime.agent_connected("paris", "0.9.1", "198.51.100.20")
            app.runtime.add_event(EventRow(kind="agent", result="refused", reason="tokyo: replayed seq 3"))
            assert app.writer is not None
            await app.writer.flush()
            page = (await client.get("/events?kind=agent")).text
            assert '<option value="agent" selected>agent</option>' in page
            assert '<option value="location"' in page
            rows = re.findall(r'<tr class="event kind-agent">.*?</tr>', page, re.S)
            assert any("agent paris connected from 198.51.100.20" in r for r in rows), rows
            assert any("tokyo: replayed seq 3" in r for r in rows), rows
            # foxtrot goes down at two of three: its health event says what each saw
            feed(app, "paris", True, "connected")
            feed(app, "tokyo", False, "timeout")
            await app.writer.flush()
            page = (await client.get("/events?kind=health&target=foxtrot")).text
            [seen] = re.findall(r'<small class="seen">(.*?)</small>', page, re.S)
            assert re.sub(r"\s+", " ", seen) == (
                "local: down (connection refused) · paris: up (connected) · tokyo: down (timeout)"
            )

    run(test)


def test_without_locations_nothing_of_it_shows(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (_, client):
            dashboard = (await client.get("/")).text
            assert 'href="/agents"' not in dashboard and "locations (need" not in dashboard
            record = (await client.get(f"/records/{MON}")).text
            assert 'id="locations"' not in record
            agents = await client.get("/agents")
            assert (
                agents.status_code == 200 and 'No <span class="mono">[locations]</span> table' in agents.text
            )

    run(test)


def test_vote_text_says_how_many_decide() -> None:
    assert (
        vote_text({"up": 2, "down": 1, "fresh": 3, "total": 3, "need": 2})
        == "up at 2 of 3 locations (need 2)"
    )
    assert vote_text({"up": 0, "down": 1, "fresh": 1, "total": 3, "need": 1}) == (
        "down at 1 of 1 locations (need 1); deciding from 1 of 3 locations"
    )
    assert vote_text({"up": 1, "down": 1, "fresh": 2, "total": 2, "need": 2}).startswith("no agreement")
