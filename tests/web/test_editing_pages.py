"""The dashboard's editing forms in-process: add, edit and remove a target on the record
page, change a monitor, create a record with a new monitor; each a CSRF-protected POST
carrying the file's ETag, written into the config file with its comments, live at once,
and an event naming web:admin; a refused change shows its message next to its field."""

from __future__ import annotations

import html
import re
import tomllib
from pathlib import Path

import httpx
import pytest

from dynserver.app import App
from dynserver.config.edit import Editor
from dynserver.web.editing import EditRefused, field_of, form_definition
from dynserver.web.schema import ErrorCode
from tests.update.common import APP, ask
from tests.web.test_audit import events, served
from tests.web.test_editing_api import check_config
from tests.web.test_pages import csrf, login, run

NOTE = "# hand-written: keep me\n"


def etag(page: str) -> str:
    match = re.search(r'name="etag" value="([^"]*)"', page)
    assert match, "no ETag on the form"
    return html.unescape(match.group(1))


def field_error(page: str, name: str) -> str | None:
    """The message shown right after the field ``name``, if any."""
    match = re.search(
        rf'<input id="f-{name}"[^>]*aria-describedby="e-{name}"[^>]*>\s*<p class="field-error" id="e-{name}"'
        r"[^>]*>([^<]*)</p>",
        page,
    )
    return html.unescape(match.group(1)) if match else None


def targets(path: Path, label: str = "app") -> dict[str, dict[str, object]]:
    data = tomllib.loads(path.read_text())
    record = data["zones"]["dyn.example.test"]["records"][label]
    return {t["name"]: t for t in record["targets"]}


async def admin_page(app: App, http: httpx.AsyncClient, url: str) -> tuple[str, dict[str, str]]:
    """A page as the logged-in admin sees it, and its form's hidden fields."""
    page = (await http.get(url)).text
    return page, {"csrf": csrf(page), "etag": etag(page)}


def commented(app: App) -> Path:
    path = app.runtime.config_path()
    path.write_text(NOTE + path.read_text())
    return path


def test_a_target_is_added_edited_and_removed_from_the_record_page(tmp_path: Path) -> None:
    async def test() -> None:
        async with served(tmp_path) as (app, client), client("203.0.113.9") as http:
            path = commented(app)
            await login(http)
            page, hidden = await admin_page(app, http, f"/records/{APP}")
            assert 'action="/records/app.dyn.example.test/targets"' in page
            form = {**hidden, "name": "alpha", "value": "192.0.2.30", "priority": "0", "check_port": "8080"}
            added = await http.post(f"/records/{APP}/targets", data={**form, "weight": "3"})
            assert added.status_code == 303, added.text
            assert targets(path)["alpha"] == {
                "name": "alpha",
                "value": "192.0.2.30",
                "priority": 0,
                "weight": 3,
                "check_port": 8080,
            }
            assert path.read_text().startswith(NOTE)
            check_config(path)
            assert ask(app, APP) == ["192.0.2.30"]
            page = (await http.get(f"/records/{APP}")).text
            assert 'data-target="alpha"' in page

            edit_url = f"/records/{APP}/targets/alpha/edit"
            page, hidden = await admin_page(app, http, edit_url)
            assert 'value="192.0.2.30"' in page and 'value="8080"' in page
            changed = await http.post(
                edit_url, data={**hidden, "name": "alpha", "value": "192.0.2.31", "priority": "0"}
            )
            assert changed.status_code == 303, changed.text
            assert targets(path)["alpha"] == {"name": "alpha", "value": "192.0.2.31", "priority": 0}
            assert ask(app, APP) == ["192.0.2.31"]

            _, hidden = await admin_page(app, http, f"/records/{APP}")
            removed = await http.post(f"/records/{APP}/targets/alpha/remove", data=hidden)
            assert removed.status_code == 303, removed.text
            assert "alpha" not in targets(path)
            assert ask(app, APP) == ["192.0.2.21"]
            check_config(path)

            reloads = await events(app, "reload")
            assert [e.actor for e in reloads][-3:] == ["web:admin"] * 3

    run(test)


def test_a_refused_change_shows_its_message_next_to_the_field_and_keeps_what_was_typed(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        async with served(tmp_path) as (app, client), client("203.0.113.9") as http:
            path = app.runtime.config_path()
            before = path.read_text()
            await login(http)
            _, hidden = await admin_page(app, http, f"/records/{APP}")
            cases = [
                ({"name": "alpha", "value": "192.0.2.30", "priority": "high"}, "priority"),
                ({"name": "alpha", "value": "192.0.2.30", "weight": "0"}, "weight"),
                ({"name": "alpha", "value": "not-an-address"}, "value"),
                ({"name": "alpha", "value": "192.0.2.30", "check_address": "nowhere"}, "check_address"),
                ({"name": "charlie", "value": "192.0.2.30"}, "name"),  # exists already
                ({"name": "", "value": "192.0.2.30"}, "name"),
            ]
            for form, field in cases:
                response = await http.post(f"/records/{APP}/targets", data={**hidden, **form})
                assert response.status_code == 422, (form, response.status_code)
                message = field_error(response.text, field)
                assert message, (form, field, response.text[-3000:])
                for value in form.values():
                    assert f'value="{html.escape(value)}"' in response.text  # kept as typed
            assert path.read_text() == before

            # Without the session's CSRF token: refused, nothing written.
            forged = await http.post(f"/records/{APP}/targets", data={"etag": hidden["etag"], "name": "x"})
            assert forged.status_code == 403
            # With the ETag of a file changed meanwhile: 412, said above the form, with the
            # file's new ETag on the form so that sending it again works.
            path.write_text(before + "\n# by hand\n")
            stale = await http.post(
                f"/records/{APP}/targets", data={**hidden, "name": "alpha", "value": "192.0.2.30"}
            )
            assert stale.status_code == 412
            assert "changed since it was read" in stale.text
            assert etag(stale.text) != hidden["etag"]
            again = await http.post(
                f"/records/{APP}/targets",
                data={
                    "csrf": hidden["csrf"],
                    "etag": etag(stale.text),
                    "name": "alpha",
                    "value": "192.0.2.30",
                },
            )
            assert again.status_code == 303
            assert path.read_text().endswith("# by hand\n") and "alpha" in targets(path)

    run(test)


def test_a_monitor_is_changed_and_a_record_created_with_a_new_monitor(tmp_path: Path) -> None:
    async def test() -> None:
        async with served(tmp_path) as (app, client), client("203.0.113.9") as http:
            path = commented(app)
            await login(http)
            page, hidden = await admin_page(app, http, "/monitors/tcp")
            assert 'value="60"' in page  # the interval, from the file
            wrong = await http.post(
                "/monitors/tcp", data={**hidden, "type": "tcp", "port": "9", "interval": "0"}
            )
            assert wrong.status_code == 422 and field_error(wrong.text, "interval")
            saved = await http.post(
                "/monitors/tcp",
                data={**hidden, "type": "tcp", "port": "9", "interval": "30", "timeout": "0.5"},
            )
            assert saved.status_code == 303, saved.text
            monitor = tomllib.loads(path.read_text())["monitors"]["tcp"]
            assert monitor == {"type": "tcp", "port": 9, "interval": 30, "timeout": 0.5}

            page, hidden = await admin_page(app, http, "/records/new")
            assert 'value="dyn.example.test"' in page
            form = {
                **hidden,
                "label": "shop",
                "zone": "dyn.example.test",
                "type": "A",
                "ttl": "45",
                "monitor": "+new",
                "monitor_name": "web",
                "monitor_type": "http",
                "monitor_path": "/health",
                "monitor_interval": "often",
                "target_name": "one",
                "target_value": "192.0.2.41",
                "target_priority": "1",
            }
            refused = await http.post("/records/new", data=form)
            assert refused.status_code == 422 and field_error(refused.text, "monitor_interval")
            created = await http.post("/records/new", data={**form, "monitor_interval": "10"})
            assert created.status_code == 303, created.text
            assert created.headers["location"] == "/records/shop.dyn.example.test"
            data = tomllib.loads(path.read_text())
            assert data["monitors"]["web"] == {"type": "http", "path": "/health", "interval": 10}
            record = data["zones"]["dyn.example.test"]["records"]["shop"]
            assert record["monitor"] == "web" and record["targets"] == [
                {"name": "one", "value": "192.0.2.41", "priority": 1}
            ]
            assert path.read_text().startswith(NOTE)
            check_config(path)
            assert (await http.get("/records/shop.dyn.example.test")).status_code == 200

    run(test)


def test_when_the_file_cannot_be_written_the_forms_say_why_and_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Editor, "writable", lambda self: "the folder is read-only for this process")

    async def test() -> None:
        async with served(tmp_path) as (app, client), client("203.0.113.9") as http:
            await login(http)
            page, hidden = await admin_page(app, http, f"/records/{APP}")
            assert "Editing is off: the folder is read-only" in page
            assert '<button type="submit" disabled>Add target</button>' in page
            refused = await http.post(f"/records/{APP}/targets", data={**hidden, "name": "alpha"})
            assert refused.status_code == 409
            assert "alpha" not in targets(app.runtime.config_path())

    run(test)


def test_the_forms_are_for_the_admin_only(tmp_path: Path) -> None:
    async def test() -> None:
        async with served(tmp_path) as (app, client), client("203.0.113.9") as http:
            page = (await http.get(f"/records/{APP}")).headers.get("location", "")
            assert page.startswith("/login")  # not public: a login first
            for url in ("/records/new", "/monitors/tcp", f"/records/{APP}/targets/charlie/edit"):
                assert (await http.get(url)).status_code == 303
            posted = await http.post(f"/records/{APP}/targets", data={"name": "alpha"})
            assert posted.status_code == 401
            assert "alpha" not in targets(app.runtime.config_path())

    run(test)


TARGET = ("name", "value", "priority", "weight", "check_address", "check_port", "host", "path")
TARGETS_KEY = "zones.dyn.example.test.records.app.targets"


@pytest.mark.parametrize(
    ("key", "reason", "field"),
    [
        ("zones.dyn.example.test.records.app.ttl", "expected a whole number", None),  # not on the form
        (TARGETS_KEY, "target 'alpha': priority must be a whole number 0-65535", "priority"),
        (TARGETS_KEY, "target 'alpha': check_port must be 1-65535; expected a port number", "check_port"),
        (
            TARGETS_KEY,
            "target 'alpha': weight 0 is not a whole number 1-1000; expected its share of first places",
            "weight",
        ),
        (TARGETS_KEY, "target 'alpha': 'x' is not an IP address", "value"),
        (
            TARGETS_KEY,
            "target 'alpha': check_address 'x' is not an IP address; expected ...",
            "check_address",
        ),
        (TARGETS_KEY, "target 'www': 'a b' is not a host name", "value"),
        # a quoted value that happens to be a field's name does not point at that field
        (TARGETS_KEY, "target 'path': 'path' is not an IP address", "value"),
        (TARGETS_KEY, "target 'alpha': name 'a b' must be a DNS label such as 'charlie'", "name"),
        ("name", "expected a name such as charlie", "name"),
        ("", "the config file changed", None),
    ],
)
def test_a_refusal_is_shown_next_to_the_field_it_is_about(key: str, reason: str, field: str | None) -> None:
    refused = EditRefused(422, ErrorCode.INVALID, f"dynserver.toml:12: {key}: {reason}", key, reason)
    assert field_of(refused, TARGET) == field


def test_a_form_sets_numbers_as_numbers_and_an_empty_field_removes_its_key() -> None:
    form = {"value": " 192.0.2.1 ", "priority": "2", "check_port": "", "path": "/up", "host": "high"}
    base = {"name": "alpha", "check_port": 8080, "maintenance": True}
    assert form_definition(form, ("value", "priority", "check_port", "path"), base) == {
        "name": "alpha",
        "maintenance": True,  # not on the form: kept
        "value": "192.0.2.1",
        "priority": 2,
        "path": "/up",
    }
    assert form_definition({"priority": "high", "interval": "0.5"}, ("priority", "interval")) == {
        "priority": "high",  # as typed: the loader says what is wrong with it
        "interval": 0.5,
    }
