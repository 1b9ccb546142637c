"""The API with a [locations] table: GET /api/v1/locations, and the `locations` and
`vote` of record and target bodies, each checked against the OpenAPI document and its
type; without the table the bodies are exactly what they were."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import msgspec

from dynserver.app import App
from dynserver.update import credentials
from dynserver.web import schema
from tests.update.common import APP
from tests.web.test_locations_pages import MON, feed, located
from tests.web.test_pages import run, running
from tests.web.test_schema import check_body

FOXTROT = f"/api/v1/records/{MON}/targets/foxtrot"


async def bearer(app: App) -> dict[str, str]:
    """A credential scoped to one target (not admin): reading is every credential's."""
    stored, secret = credentials.create("reader", admin=False, targets=(f"bravo.{APP}",), now=time.time())
    assert app.store is not None and await app.store.add_credential(stored)
    return {"Authorization": f"Bearer {secret}"}


async def get(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_locations_lists_each_location_for_any_credential(tmp_path: Path) -> None:
    async def test() -> None:
        async with located(tmp_path) as (app, client):
            app.runtime.agent_connected("paris", "0.9.1", "198.51.100.20")
            feed(app, "paris", True, "connected")
            headers = await bearer(app)
            body = check_body("/locations", await get(client, "/api/v1/locations", headers))
            assert isinstance(body, schema.LocationList)
            assert (body.quorum, body.stale_after) == (2, 3)
            assert [(x.name, x.kind) for x in body.locations] == [
                ("local", "local"),
                ("paris", "agent"),
                ("tokyo", "agent"),
            ]
            paris = body.locations[1]
            assert paris.connected and paris.version == "0.9.1" and paris.client == "198.51.100.20"
            assert paris.results == 1 and paris.fresh_targets == 1 and paris.excluded is None
            assert paris.last_contact is not None and abs(paris.last_contact - time.time()) < 60
            tokyo = body.locations[2]
            assert not tokyo.connected and tokyo.last_contact is None and tokyo.fresh_targets == 0
            unauthorized = await client.get("/api/v1/locations")
            assert unauthorized.status_code == 401
            assert isinstance(check_body("/locations", unauthorized), schema.Error)

    run(test)


def test_record_and_target_bodies_carry_locations_and_the_vote(tmp_path: Path) -> None:
    async def test() -> None:
        async with located(tmp_path) as (app, client):
            feed(app, "paris", True, "connected", 0.004)
            feed(app, "tokyo", False, "timeout", None)
            headers = await bearer(app)
            target = check_body("/records/{fqdn}/targets/{name}", await get(client, FOXTROT, headers))
            assert isinstance(target, schema.Target)
            assert target.vote == schema.Vote(up=1, down=2, fresh=3, total=3, need=2)
            assert isinstance(target.locations, list)
            seen = {x.name: x for x in target.locations}
            assert list(seen) == ["local", "paris", "tokyo"]
            assert seen["paris"].health == "up" and seen["paris"].fresh and not seen["paris"].excluded
            paris = seen["paris"].last_result
            assert paris is not None and paris.ok and paris.reason == "connected" and paris.latency == 0.004
            assert abs(paris.at - time.time()) < 60  # Unix time, as every time of the API
            tokyo = seen["tokyo"].last_result
            assert tokyo is not None and not tokyo.ok and tokyo.latency is None
            assert target.health == "down"  # two of three: the vote
            record = check_body("/records/{fqdn}", await get(client, f"/api/v1/records/{MON}", headers))
            assert isinstance(record, schema.Record)
            assert record.targets[0].vote == target.vote
            # golf has no address: nothing checks it, every location's view is empty
            golf = record.targets[1]
            assert isinstance(golf.locations, list)
            assert [x.last_result for x in golf.locations] == [None, None, None]
            assert golf.vote is not msgspec.UNSET and (golf.vote.up, golf.vote.down) == (0, 0)

    run(test)


def test_without_locations_the_bodies_are_unchanged(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as (app, client):
            headers = await bearer(app)
            target = (await get(client, FOXTROT, headers)).json()
            assert "locations" not in target and "vote" not in target
            record = (await get(client, f"/api/v1/records/{MON}", headers)).json()
            assert all("locations" not in t and "vote" not in t for t in record["targets"])
            body = check_body("/locations", await get(client, "/api/v1/locations", headers))
            assert body == schema.LocationList(quorum=None, stale_after=None, locations=[])

    run(test)
