"""Forced states from the dashboard (issue 17): the targets table's Force form (CSRF, no
script), shown with who and until when, cleared by its button, and kept across a restart."""

from __future__ import annotations

import re
from pathlib import Path

from tests.update.common import APP, ask
from tests.web.test_pages import HASH, login, run, running

WEB = f'admin_password_hash = "{HASH}"'


def test_force_down_from_the_dashboard_then_clear(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path, WEB) as (app, client):
            bravo = next(k for k in app.runtime.engine.states if k[2] == "bravo")
            await app.runtime.update_target(bravo, "192.0.2.22", actor="test")  # bravo: up, no monitor
            token = await login(client)
            page = (await client.get(f"/records/{APP}")).text
            assert f'action="/records/{APP}/targets/charlie/forced?next=' in page
            assert "<script" not in page.split("<footer")[0].split("</header>")[-1], "no inline script"
            action = f"/records/{APP}/targets/charlie/forced?next=/"
            form = {"state": "down", "minutes": "30", "reason": "disk  swap", "csrf": token}
            assert (await client.post(action, data={**form, "csrf": "forged"})).status_code == 403
            assert ask(app, APP) == ["192.0.2.21"]
            done = await client.post(action, data=form)
            assert done.status_code == 303 and done.headers["location"] == "/"
            assert ask(app, APP) == ["192.0.2.22"]  # charlie forced down: bravo answers
            page = (await client.get("/")).text
            shown = re.search(r'<small class="forced" data-forced="down">([^<]*)</small>', page)
            assert shown is not None
            assert re.fullmatch(
                r"forced down by web:admin until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: disk swap", shown[1]
            )
            assert "Clear forced down</button>" in page
            assert app.writer is not None
            await app.writer.flush()
            events = (await client.get("/events?kind=forced")).text
            assert (
                "charlie" in events and "web:admin" in events and "forced down by web:admin until" in events
            )
            bad = await client.post(action, data={"state": "sideways", "csrf": token})
            assert bad.status_code == 400 and "expected state up, down or clear" in bad.text
            bad = await client.post(action, data={"state": "up", "minutes": "-5", "csrf": token})
            assert bad.status_code == 400
            cleared = await client.post(action, data={"state": "clear", "csrf": token})
            assert cleared.status_code == 303
            assert ask(app, APP) == ["192.0.2.21"]
            assert 'class="forced"' not in (await client.get("/")).text

    run(test)


def test_a_forced_state_survives_a_restart(tmp_path: Path) -> None:
    async def force() -> None:
        async with running(tmp_path, WEB) as (app, client):
            bravo = next(k for k in app.runtime.engine.states if k[2] == "bravo")
            await app.runtime.update_target(bravo, "192.0.2.22", actor="test")
            token = await login(client)
            action = f"/records/{APP}/targets/charlie/forced?next=/"
            assert (await client.post(action, data={"state": "down", "csrf": token})).status_code == 303
            assert ask(app, APP) == ["192.0.2.22"]

    async def after() -> None:
        async with running(tmp_path, WEB) as (app, client):
            charlie = next(k for k in app.runtime.engine.states if k[2] == "charlie")
            forcing = app.runtime.forcing(charlie)
            assert forcing is not None and (forcing.state.value, forcing.actor, forcing.until) == (
                "down",
                "web:admin",
                None,
            )
            assert ask(app, APP) == ["192.0.2.22"]  # still forced down from the first answer on
            await login(client)
            metrics = (await client.get("/metrics")).text
            line = f'dynserver_target_forced{{record="{APP}",state="down",target="charlie",type="A"}} +Inf'
            assert line in metrics

    run(force)
    run(after)
