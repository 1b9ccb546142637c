"""Editing through the API: definitions read from and written to the config file with
their ETag, If-Match (428 without, 412 when the file changed), 422 naming the key, 409
when the file cannot be written (reads still work), and POST /reload. The App runs in
the test's event loop; its web app is reached in-process (tests/update/common.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dynserver.app import App
from dynserver.config.edit import Editor
from tests.support import ROOT
from tests.update.common import APP, Running, ask, running
from tests.web.test_audit import events
from tests.web.test_pages import HASH

RECORD = f"/api/v1/config/records/{APP}"
ALPHA = f"{RECORD}/targets/alpha"
# A hand-written note in the file: every edit must leave it where it is.
NOTE = "# charlie is the primary; ask the network team before moving it\n"


@dataclass
class Admin:
    app: App
    http: httpx.AsyncClient
    path: Path  # the config file
    served: Running  # for more clients of the same web app


@asynccontextmanager
async def admin(folder: Path) -> AsyncIterator[Admin]:
    """A running App, an admin credential's client, and comments written into the
    config file by hand (as an operator keeps them) before anything is edited."""
    async with running(folder) as served:
        path = served.app.runtime.config_path()
        text = path.read_text()
        path.write_text(NOTE + text.replace("[monitors.tcp]", "# the port probe\n[monitors.tcp]"))
        secret = await served.credential("root", admin=True)
        headers = {"Authorization": f"Bearer {secret}"}
        async with served.client() as http:
            http.headers.update(headers)
            yield Admin(served.app, http, path, served)


def run(test: Callable[[Path], Awaitable[None]], folder: Path) -> None:
    asyncio.run(test(folder))


def check_config(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dynserver", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_target_added_by_the_api_lands_in_the_file_with_its_comments_and_is_live(tmp_path: Path) -> None:
    async def test(folder: Path) -> None:
        async with admin(folder) as a:
            record = await a.http.get(RECORD)
            assert record.status_code == 200
            assert record.json()["type"] == "A"
            assert [t["name"] for t in record.json()["targets"]] == ["charlie", "bravo"]
            etag = record.headers["etag"]
            assert etag.startswith('"') and etag.endswith('"')
            assert (await a.http.head(RECORD)).headers["etag"] == etag  # as `curl -I` reads it
            before = a.path.read_text()

            body = {"value": "192.0.2.30", "priority": 0, "check_port": 8080}
            added = await a.http.put(ALPHA, json=body, headers={"If-Match": etag})
            assert added.status_code == 201, added.text
            assert added.json() == {"name": "alpha", **body}
            assert added.headers["etag"] not in (etag, "")
            assert added.headers["location"] == ALPHA

            after = a.path.read_text()
            assert after.startswith(NOTE) and "# the port probe\n[monitors.tcp]" in after
            assert "alpha" in after and "192.0.2.30" in after
            assert after.count("\n") >= before.count("\n")  # nothing folded away
            check_config(a.path)
            # Live when answered: the new preferred target is the API's and the DNS answer.
            live = (await a.http.get(f"/api/v1/records/{APP}")).json()
            assert [t["name"] for t in live["targets"]] == ["charlie", "bravo", "alpha"]
            assert ask(a.app, APP) == ["192.0.2.30"]
            assert (await a.http.get(ALPHA)).json() == added.json()
            # The edit is an event: who did it and what changed.
            reloads = await events(a.app, "reload")
            assert reloads and reloads[-1].actor == "root"
            assert any("alpha" in str(change) for change in (reloads[-1].detail or {}).get("changes", []))

    run(test, tmp_path)


def test_two_edits_with_the_same_etag_one_wins_the_other_gets_412(tmp_path: Path) -> None:
    async def test(folder: Path) -> None:
        async with admin(folder) as a:
            etag = (await a.http.get(RECORD)).headers["etag"]
            first, second = await asyncio.gather(
                a.http.put(ALPHA, json={"value": "192.0.2.30"}, headers={"If-Match": etag}),
                a.http.put(
                    f"{RECORD}/targets/kilo", json={"value": "192.0.2.31"}, headers={"If-Match": etag}
                ),
            )
            assert sorted([first.status_code, second.status_code]) == [201, 412]
            lost = first if first.status_code == 412 else second
            assert lost.json()["error"] == "precondition_failed"
            text = a.path.read_text()
            assert ("alpha" in text) != ("kilo" in text)  # only the winner's change is there

    run(test, tmp_path)


def test_an_edit_without_if_match_is_428_and_a_hand_edit_makes_an_old_etag_412(tmp_path: Path) -> None:
    async def test(folder: Path) -> None:
        async with admin(folder) as a:
            before = a.path.read_text()
            missing = await a.http.put(ALPHA, json={"value": "192.0.2.30"})
            assert missing.status_code == 428 and missing.json()["error"] == "precondition_required"
            etag = (await a.http.get(ALPHA.replace("alpha", "charlie"))).headers["etag"]
            a.path.write_text(before + "\n# edited by hand meanwhile\n")
            stale = await a.http.delete(ALPHA.replace("alpha", "charlie"), headers={"If-Match": etag})
            assert stale.status_code == 412
            assert a.path.read_text() == before + "\n# edited by hand meanwhile\n"

    run(test, tmp_path)


def test_an_invalid_edit_is_422_naming_the_key_and_writes_nothing(tmp_path: Path) -> None:
    async def test(folder: Path) -> None:
        async with admin(folder) as a:
            etag = (await a.http.get(RECORD)).headers["etag"]
            before = a.path.read_text()
            cases = [
                (ALPHA, {"value": "192.0.2.30", "priority": "high"}, "priority"),
                (ALPHA, {"value": "not-an-address"}, "not an IP address"),
                (RECORD, {"type": "A", "ttl": 30, "colour": "red", "targets": [{"name": "x"}]}, "colour"),
                (RECORD, {"type": "A", "monitor": "nope", "targets": [{"name": "x"}]}, "monitor"),
                ("/api/v1/config/monitors/tcp", {"type": "tcp", "port": 9, "interval": "often"}, "interval"),
            ]
            for path, body, named in cases:
                response = await a.http.put(path, json=body, headers={"If-Match": etag})
                assert response.status_code == 422, (path, body, response.text)
                assert response.json()["error"] == "invalid"
                assert named in response.json()["detail"], response.json()
            in_use = await a.http.delete("/api/v1/config/monitors/tcp", headers={"If-Match": etag})
            assert in_use.status_code == 422 and "monitor" in in_use.json()["detail"]
            assert a.path.read_text() == before

    run(test, tmp_path)


def test_a_file_that_cannot_be_written_refuses_edits_with_409_and_reads_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever the reason (a read-only mount, a file owned by another user...), the
    # editor says why; the suite runs as root, where permissions would not stop a write.
    monkeypatch.setattr(Editor, "writable", lambda self: f"{self.path} is on a read-only file system")

    async def test(folder: Path) -> None:
        async with admin(folder) as a:
            record = await a.http.get(RECORD)
            assert record.status_code == 200
            refused = await a.http.put(ALPHA, json={"value": "192.0.2.30"}, headers={"If-Match": "*"})
            assert refused.status_code == 409
            assert "read-only" in refused.json()["detail"]
            assert (await a.http.get(f"/api/v1/records/{APP}")).status_code == 200
            assert "alpha" not in a.path.read_text()

    run(test, tmp_path)


def test_records_and_monitors_are_created_replaced_and_deleted(tmp_path: Path) -> None:
    async def test(folder: Path) -> None:
        async with admin(folder) as a:
            etag = (await a.http.get("/api/v1/config/monitors/tcp")).headers["etag"]
            monitor = {"type": "tcp", "port": 443, "interval": 30, "timeout": 1}
            created = await a.http.put(
                "/api/v1/config/monitors/web", json=monitor, headers={"If-Match": etag}
            )
            assert created.status_code == 201, created.text
            record = {
                "type": "A",
                "ttl": 45,
                "monitor": "web",
                "targets": [{"name": "one", "value": "192.0.2.41"}, {"name": "two", "value": "192.0.2.42"}],
            }
            path = "/api/v1/config/records/shop.dyn.example.test"
            made = await a.http.put(path, json=record, headers={"If-Match": created.headers["etag"]})
            assert made.status_code == 201, made.text
            assert made.json() == record
            assert ask(a.app, "shop.dyn.example.test") == ["192.0.2.41", "192.0.2.42"]
            check_config(a.path)

            monitor["interval"] = 15
            replaced = await a.http.put(
                "/api/v1/config/monitors/web", json=monitor, headers={"If-Match": made.headers["etag"]}
            )
            assert replaced.status_code == 200 and replaced.json()["interval"] == 15
            gone = await a.http.delete(path, headers={"If-Match": replaced.headers["etag"]})
            assert gone.status_code == 200, gone.text
            assert gone.json()["deleted"] == "record shop.dyn.example.test"
            assert (await a.http.get(path)).status_code == 404
            assert (await a.http.get("/api/v1/records/shop.dyn.example.test")).status_code == 404
            assert ask(a.app, "shop.dyn.example.test") == []
            check_config(a.path)

    run(test, tmp_path)


def test_post_reload_applies_a_hand_edit_or_says_why_not(tmp_path: Path) -> None:
    async def test(folder: Path) -> None:
        async with admin(folder) as a:
            text = a.path.read_text()
            a.path.write_text(text.replace('value = "192.0.2.21"', 'value = "192.0.2.22"'))
            reloaded = await a.http.post("/api/v1/reload")
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["ok"] is True and reloaded.json()["changes"]
            assert ask(a.app, APP) == ["192.0.2.22"]

            a.path.write_text(text.replace("ttl = 30", 'ttl = "long"', 1))
            refused = await a.http.post("/api/v1/reload")
            assert refused.status_code == 422
            body = refused.json()
            assert body["error"] == "invalid" and "ttl" in body["detail"] and body["errors"]
            assert str(a.path.name) in body["detail"]
            assert ask(a.app, APP) == ["192.0.2.22"]  # the running config is unchanged

    run(test, tmp_path)


def test_editing_is_admin_only(tmp_path: Path) -> None:
    async def test(folder: Path) -> None:
        async with running(folder) as served:
            secret = await served.credential("backup", targets=(f"bravo.{APP}",))
            async with served.client() as http:
                http.headers["Authorization"] = f"Bearer {secret}"
                assert (await http.get(RECORD)).status_code == 403
                assert (await http.post("/api/v1/reload")).status_code == 403
                put = await http.put(ALPHA, json={"value": "192.0.2.30"}, headers={"If-Match": "*"})
                assert put.status_code == 403

    run(test, tmp_path)


def test_a_reload_changes_the_web_settings_and_the_update_paths_without_a_restart(tmp_path: Path) -> None:
    async def test(folder: Path) -> None:
        async with admin(folder) as a:
            async with a.served.client() as page:  # a browser's: no credential
                a.path.write_text(a.path.read_text() + '\n[web]\nadmin_password_hash = "' + HASH + '"\n')
                assert (await a.http.post("/api/v1/reload")).status_code == 200
                assert (await page.get("/")).status_code == 303  # a login is needed now
                text = a.path.read_text()
                a.path.write_text(text.replace("[web]\n", "[web]\npublic = true\n"))
                assert (await a.http.post("/api/v1/reload")).status_code == 200
                assert (await page.get("/")).status_code == 200  # public: read without one
            # A target added by an edit takes updates at once (the update paths know it).
            etag = (await a.http.get(RECORD)).headers["etag"]
            assert (await a.http.put(ALPHA, json={}, headers={"If-Match": etag})).status_code == 201
            value = await a.http.put(f"/api/v1/records/{APP}/targets/alpha", json={"value": "192.0.2.77"})
            assert value.status_code == 200, value.text
            assert value.json()["target"]["value"] == "192.0.2.77"

    run(test, tmp_path)
