"""ACME DNS-01 over the REST API (issue 18): POST and DELETE /api/v1/acme/challenges with
the FQDN and the value, as acme.sh's hook style sends them; an admin credential or one
scoped ``acme:NAME`` may, a target credential may not; served at once and stored."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from unittest import mock

import httpx
import pytest

from dynserver.app import App
from dynserver.update import credentials
from dynserver.update.service import Updates
from dynserver.web import acme
from dynserver.web.api import create_api
from tests.update.test_acme import CHALLENGE, TOKEN_1, TOKEN_2, ZONE, load, txt, write

URL = "http://dynserver.test/acme/challenges"


class Api:
    def __init__(self, app: App) -> None:
        self.app = app
        updates = Updates(app.runtime)
        asgi = create_api(app.runtime, updates, more=acme.routes(app.runtime, updates))
        transport = httpx.ASGITransport(app=asgi, client=("198.51.100.7", 40000))  # type: ignore[arg-type]
        self.http = httpx.AsyncClient(transport=transport)

    async def credential(
        self, name: str, *, admin: bool = False, scopes: tuple[str, ...] = ()
    ) -> dict[str, str]:
        stored, secret = credentials.create(name, admin=admin, targets=scopes, now=time.time())
        assert self.app.store is not None
        assert await self.app.store.add_credential(stored)
        return {"authorization": f"Bearer {secret}"}


def run(folder: Path, test: Callable[[Api], Awaitable[None]]) -> None:
    write(folder)

    async def main() -> None:
        app = App(load(folder))
        await app.start()
        try:
            api = Api(app)
            async with api.http:
                await test(api)
        finally:
            await app.stop()

    asyncio.run(main())


def test_a_scoped_credential_adds_and_deletes_challenges(tmp_path: Path) -> None:
    async def test(api: Api) -> None:
        auth = await api.credential("acme-sh", scopes=(f"acme:{ZONE}",))
        added = await api.http.post(URL, json={"fqdn": CHALLENGE, "value": TOKEN_1}, headers=auth)
        assert added.status_code == 201, added.text
        assert added.json()["fqdn"] == CHALLENGE.rstrip(".") and added.json()["served"] is True
        assert txt(api.app) == [f'"{TOKEN_1}"']  # served when answered
        with sqlite3.connect(tmp_path / "dynserver.db") as db:  # and on disk
            assert db.execute("SELECT value, actor FROM acme_challenge").fetchall() == [(TOKEN_1, "acme-sh")]
        await api.http.post(URL, json={"fqdn": f"_acme-challenge.www.{ZONE}", "value": TOKEN_2}, headers=auth)
        listed = await api.http.get(URL, headers=auth)
        assert [(c["fqdn"], c["value"]) for c in listed.json()["challenges"]] == [
            (CHALLENGE.rstrip("."), TOKEN_1),
            (f"_acme-challenge.www.{ZONE}", TOKEN_2),
        ]
        deleted = await api.http.request(
            "DELETE", URL, json={"fqdn": CHALLENGE, "value": TOKEN_1}, headers=auth
        )
        assert deleted.status_code == 200 and deleted.json()["served"] is False
        assert txt(api.app) == []

    run(tmp_path, test)


def test_an_admin_credential_may_too(tmp_path: Path) -> None:
    async def test(api: Api) -> None:
        auth = await api.credential("root", admin=True)
        added = await api.http.post(URL, json={"fqdn": CHALLENGE, "value": TOKEN_1}, headers=auth)
        assert added.status_code == 201

    run(tmp_path, test)


def test_what_the_api_refuses(tmp_path: Path) -> None:
    async def test(api: Api) -> None:
        scoped = await api.credential("acme-sh", scopes=(f"acme:www.{ZONE}",))
        target = await api.credential("bravo", scopes=(f"app.{ZONE}/bravo",))
        cases = [
            ({}, {"fqdn": CHALLENGE, "value": TOKEN_1}, 401),
            (target, {"fqdn": CHALLENGE, "value": TOKEN_1}, 403),  # a target credential
            (scoped, {"fqdn": CHALLENGE, "value": TOKEN_1}, 403),  # above its scope
            (scoped, {"fqdn": "_acme-challenge.other.example.test", "value": TOKEN_1}, 403),
            (scoped, {"fqdn": f"www.{ZONE}", "value": TOKEN_1}, 422),  # not a challenge name
            (scoped, {"fqdn": f"_acme-challenge.www.{ZONE}", "value": "not base64url!"}, 422),
            (scoped, {"fqdn": "_acme-challenge.example.org", "value": TOKEN_1}, 404),
            (scoped, {"fqdn": f"_acme-challenge.www.{ZONE}"}, 400),
        ]
        for headers, body, status in cases:
            answer = await api.http.post(URL, json=body, headers=headers)
            assert answer.status_code == status, (body, answer.text)
            assert "error" in answer.json()
        admin = await api.credential("root", admin=True)
        static = await api.http.post(
            URL, json={"fqdn": f"_acme-challenge.static.{ZONE}", "value": TOKEN_1}, headers=admin
        )
        assert static.status_code == 409  # the master file holds that name
        assert txt(api.app) == []
        assert txt(api.app, f"_acme-challenge.static.{ZONE}.") == ['"kept"']

    run(tmp_path, test)


def test_acme_scopes_of_credentials_are_checked() -> None:
    """What `dynserver credential add --target acme:NAME` stores, or why it refuses."""
    assert credentials.acme_scope(f"acme:WWW.{ZONE}.", [ZONE]) == f"acme:www.{ZONE}"
    for wrong in ("acme:example.org", f"acme:*.{ZONE}", "acme:"):
        with pytest.raises(ValueError, match="not a name in a zone served here"):
            credentials.acme_scope(wrong, [ZONE])


def test_a_challenge_that_is_not_stored_is_not_served(tmp_path: Path) -> None:
    async def test(api: Api) -> None:
        auth = await api.credential("root", admin=True)
        assert api.app.store is not None
        with mock.patch.object(api.app.store, "change_challenges", side_effect=OSError("disk full")):
            answer = await api.http.post(URL, json={"fqdn": CHALLENGE, "value": TOKEN_1}, headers=auth)
        assert answer.status_code == 500 and answer.json()["error"] == "server_error"
        assert txt(api.app) == []
        assert api.app.runtime.challenges == {}

    run(tmp_path, test)
