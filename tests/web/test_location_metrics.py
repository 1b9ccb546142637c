"""/metrics with a [locations] table: results per location, and each location's fresh
targets, last contact age and exclusion read when scraped; without the table the location
families are there but empty."""

from __future__ import annotations

import time
from pathlib import Path

from dynserver.locations.quorum import LocationStatus
from dynserver.metrics import Metrics
from tests.web.test_locations_pages import feed, located
from tests.web.test_metrics import parse, scrape, value
from tests.web.test_pages import run, running


def test_results_freshness_contact_and_exclusion_per_location(tmp_path: Path) -> None:
    async def test() -> None:
        async with located(tmp_path) as (app, client):
            app.runtime.agent_connected("paris", "0.9.1", "198.51.100.20")
            feed(app, "paris", True, "connected")
            feed(app, "paris", False, "timeout")
            feed(app, "tokyo", False, "refused")
            app.runtime.on_canary("tokyo", False, "timeout")
            samples = await scrape(client)
            results = "dynserver_location_results_total"
            assert value(samples, results, location="paris", result="ok") == 1
            assert value(samples, results, location="paris", result="fail") == 1
            assert value(samples, results, location="tokyo", result="fail") == 1
            assert value(samples, results, location="local", result="fail") >= 1  # 127.0.0.1:9 refused
            fresh = "dynserver_location_fresh_targets"
            assert [value(samples, fresh, location=n) for n in ("local", "paris", "tokyo")] == [1, 1, 1]
            contact = "dynserver_location_last_contact_seconds"
            assert 0 <= value(samples, contact, location="paris") < 60
            excluded = "dynserver_location_excluded"
            assert value(samples, excluded, location="tokyo") == 1
            assert ("dynserver_location_excluded", (("location", "paris"),)) in samples
            assert value(samples, excluded, location="paris") == 0

    run(test)


def test_without_locations_the_families_are_empty(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (_, client):
            samples = await scrape(client)
            assert not [name for name, _ in samples if name.startswith("dynserver_location_")]

    run(test)


def test_a_location_never_heard_from_has_no_age() -> None:
    statuses = [
        LocationStatus(name="local", kind="local", connected=True, last_contact=time.time() - 5),
        LocationStatus(name="tokyo", kind="agent", connected=False, excluded="canary failed: timeout"),
    ]
    metrics = Metrics(locations=lambda: statuses, process=False)
    samples = parse(metrics.render().decode())
    assert 4 <= value(samples, "dynserver_location_last_contact_seconds", location="local") < 60
    assert ("dynserver_location_last_contact_seconds", (("location", "tokyo"),)) not in samples
    assert value(samples, "dynserver_location_excluded", location="tokyo") == 1
    assert ("dynserver_location_fresh_targets", (("location", "tokyo"),)) in samples
