"""The HTML pages: dashboard, record page (with a server-drawn chart and, with
[locations], the target x location grid), propagation page, agents page, event log,
login, and the dashboard's actions (maintenance on/off, check now).

Pages read the same views as the REST API (dynserver.web.views). Every state change is a
POST carrying the session's CSRF token and is recorded with who did it (``web:admin``).
"""

from __future__ import annotations

import asyncio
import datetime
import html
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from dynserver import __version__, propagation
from dynserver.dns import wire
from dynserver.dns.names import fqdn, name_text
from dynserver.health.engine import target_key
from dynserver.health.state import Health
from dynserver.locations.quorum import Tally
from dynserver.model import DynamicRecord
from dynserver.runtime import Runtime
from dynserver.store.db import EventRow, Sample
from dynserver.types import TargetKey
from dynserver.update.limits import Block
from dynserver.update.service import Updates
from dynserver.update.targets import record_text
from dynserver.web import views
from dynserver.web.api import error_response
from dynserver.web.auth import ADMIN, COOKIE, Auth, Session, set_cookie
from dynserver.web.client import client_address
from dynserver.web.editing import Applied, Editing, EditRefused, field_of, form_definition
from dynserver.web.schema import ErrorCode

log = logging.getLogger("dynserver.web")

CHART_HOURS = 6.0  # the record page's chart spans this many hours
EVENT_KINDS = (
    "health",
    "answer",
    "maintenance",
    "update",
    "check",
    "auth",
    "credential",
    "mirror",
    "notify",
    "system",
    "agent",
    "location",
    "reload",
    "acme",
    "certificate",
    "rrl",
    "push",
    "scheduler",
)
PROPAGATION_LABELS = {propagation.IN_SYNC: "in sync", propagation.STALE: "stale", propagation.ERROR: "error"}
STATE_COLOURS = {  # the same as the .state-* badges in style.css (the chart's legend)
    "up": "#237a47",
    "down": "#c23b3b",
    "pending": "#e0a526",
    "maintenance": "#5566c8",
    "unknown": "#6b7385",
}


def routes(
    runtime: Runtime,
    updates: Updates,
    auth: Auth,
    templates: Jinja2Templates,
    checker: propagation.Checker | None = None,
    editing: Editing | None = None,
) -> list[Route]:
    """The page routes, for dynserver.web.app to mount at the root. ``checker`` runs and
    caches propagation checks, ``editing`` edits the config file (both shared with the API)."""
    checker = checker or views.checker(runtime)
    editing = editing or Editing(runtime)

    templates.env.filters["ago"] = _ago
    templates.env.filters["clock"] = _clock
    templates.env.filters["ms"] = _ms

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        session = auth.session(request)
        context = {
            "version": __version__,
            "session": session,
            "csrf": session.csrf if session else "",
            "login_enabled": bool(auth.password_hash),
            "locations_enabled": runtime.locations_config() is not None,
            **context,
        }
        return templates.TemplateResponse(request, name, context, status_code=status)

    def login_redirect(request: Request) -> Response:
        return RedirectResponse(f"/login?next={_local(request.url.path)}", status_code=303)

    def record_card(record: DynamicRecord) -> dict[str, Any]:
        """The API's record view plus what only a page shows: each target's time left in
        pending (the view lists the targets in config order)."""
        view = views.record_view(runtime, updates, record)
        now = asyncio.get_running_loop().time()
        rows = []
        for target, row in zip(record.targets, view["targets"], strict=True):
            state = runtime.target_state(target_key(record, target))
            left = state.pending_until - now if state.pending_until is not None else None
            pending_left = max(0.0, left) if left is not None else None
            vote = vote_text(row["vote"]) if "vote" in row else None
            rows.append({**row, "pending_left": pending_left, "vote_text": vote})
        return {**view, "targets": rows}

    async def dashboard(request: Request) -> Response:
        if not auth.may_read(request):
            return login_redirect(request)
        zones = []
        for zone, config in runtime.served_zones():
            zones.append(
                {
                    "name": wire.name_to_text(zone.origin),
                    "serial": zone.serial,
                    "names": len(zone.nodes),
                    "rrsets": sum(1 for _ in zone.rrsets()),
                    "records": [record_card(r) for r in config.records] if config else [],
                }
            )
        load = runtime.check_load()
        behind = load if load is not None and load.behind else None
        return render(request, "index.html", {"zones": zones, "now": time.time(), "checks_behind": behind})

    def find_record(request: Request) -> DynamicRecord | None:
        return updates.targets.record(request.path_params["fqdn"])

    async def record_page(request: Request, adding: Form | None = None, status: int = 200) -> Response:
        """The record; for admin also its forms: add a target (``adding``: the form sent
        back with its errors), edit or remove one."""
        if not auth.may_read(request):
            return login_redirect(request)
        record = find_record(request)
        if record is None:
            return render(request, "missing.html", {"what": fqdn(request.path_params["fqdn"])}, 404)
        since = time.time() - CHART_HOURS * 3600
        samples: list[Sample] = await runtime.samples(record, since)
        events: list[Any] = await runtime.events(record=wire.name_to_text(record.name), limit=50)
        chart = chart_svg(samples, [t.name for t in record.targets], since, time.time())
        context = {"record": record_card(record), "chart": chart, "events": events, "hours": CHART_HOURS}
        if auth.session(request) is not None:
            context["adding"] = adding or fresh_form({"priority": "1"})
        return render(request, "record.html", context, status)

    # -- editing: forms that change the config file (docs/dashboard.md, "Editing") ----

    def fresh_form(values: dict[str, str], etag: str | None = None) -> Form:
        """A form as first shown: the file's ETag (its If-Match) and whether it can be saved."""
        try:
            etag = etag or editing.document().etag
        except EditRefused as refused:
            return Form(values, etag="", error=refused.detail, off=refused.detail)
        return Form(values, etag=etag, off=editing.writable())

    async def edit(
        request: Request,
        change: Callable[[dict[str, Any]], Awaitable[Applied]],
        fields: Collection[str],
        where: Callable[[EditRefused], str | None] | None = None,
    ) -> tuple[Form, Applied | None]:
        """Run a form's change as the session's admin; the form back with the message
        next to its field (``where``: which one; else field_of) or above it when refused."""
        form = await _form(request)
        values = {name: form.get(name, "") for name in (*fields, "etag")}
        by = {"if_match": form.get("etag") or None, "actor": f"web:{ADMIN}", "via": "dashboard"}
        try:
            return Form(values, etag=values["etag"]), await change(by)
        except EditRefused as refused:
            at = (where or (lambda r: field_of(r, fields)))(refused) if refused.status == 422 else None
            # 412: the file changed meanwhile; the next try is against the file as it is now.
            etag = "" if refused.status == 412 else values["etag"]
            again = fresh_form(values, etag or None)
            if at is not None:
                again.errors[at] = refused.reason
            else:
                again.error = refused.detail
            again.status = refused.status
            return again, None

    async def posted_record(request: Request) -> tuple[DynamicRecord | None, Response | None]:
        """The record an admin's POST changes, or the response refusing the POST."""
        session, error = await admin_post(request)
        if error is not None or session is None:
            return None, error or Response(status_code=401)
        record = find_record(request)
        if record is None:
            return None, Response("no such record\n", status_code=404)
        return record, None

    async def add_target(request: Request) -> Response:
        record, refusal = await posted_record(request)
        if record is None:
            return refusal or Response(status_code=404)
        name = record_text(record)
        form = await _form(request)
        target = form.get("name", "").strip().lower()

        async def change(by: dict[str, Any]) -> Applied:
            if not target:
                raise EditRefused(422, ErrorCode.INVALID, "expected a name such as charlie", "name")
            if target in record.by_name:
                reason = f"{name} has a target {target!r} already; edit it in the table above"
                raise EditRefused(422, ErrorCode.INVALID, reason, "name")
            return await editing.put_target(name, target, form_definition(form, TARGET_FIELDS), **by)

        sent, applied = await edit(request, change, TARGET_FIELDS)
        if applied is None:
            return await record_page(request, sent, sent.status)
        return RedirectResponse(f"/records/{name}", status_code=303)

    async def target_page(request: Request) -> Response:
        """Edit one target (GET: the form from the file; POST: save it)."""
        record = find_record(request)
        target = request.path_params["name"].lower()
        if auth.session(request) is None:
            return login_redirect(request)
        if record is None or target not in record.by_name:
            return render(
                request,
                "missing.html",
                {"message": f"There is no target {target} of {fqdn(request.path_params['fqdn'])}."},
                404,
            )
        name = record_text(record)
        if request.method == "GET":
            try:
                definition, etag = editing.target(name, target)
            except EditRefused as refused:
                return render(request, "missing.html", {"message": refused.detail}, refused.status)
            shown = {**definition, "check_port": definition.get("check_port", definition.get("port", ""))}
            values = {field: _text(shown.get(field)) for field in TARGET_FIELDS}
            context = {"record": record_card(record), "target": target, "form": fresh_form(values, etag)}
            return render(request, "target.html", context)
        session, error = await admin_post(request)
        if error is not None or session is None:
            return error or Response(status_code=401)
        form = await _form(request)

        async def change(by: dict[str, Any]) -> Applied:
            before, _ = editing.target(name, target)
            base = {k: v for k, v in before.items() if k != "port"}  # check_port is on the form
            fields = [f for f in TARGET_FIELDS if f != "name"]
            return await editing.put_target(name, target, form_definition(form, fields, base), **by)

        sent, applied = await edit(request, change, TARGET_FIELDS)
        if applied is None:
            context = {"record": record_card(record), "target": target, "form": sent}
            return render(request, "target.html", context, sent.status)
        return RedirectResponse(f"/records/{name}", status_code=303)

    async def remove_target(request: Request) -> Response:
        record, refusal = await posted_record(request)
        if record is None:
            return refusal or Response(status_code=404)
        name, target = record_text(record), request.path_params["name"].lower()

        async def change(by: dict[str, Any]) -> Applied:
            return await editing.delete_target(name, target, **by)

        sent, applied = await edit(request, change, ())
        if applied is None:
            return await record_page(request, sent, sent.status)
        return RedirectResponse(f"/records/{name}", status_code=303)

    async def monitor_page(request: Request) -> Response:
        """Edit a monitor (GET: the form from the file; POST: save it)."""
        if auth.session(request) is None:
            return login_redirect(request)
        monitor = request.path_params["name"]
        if request.method == "GET":
            try:
                definition, etag = editing.monitor(monitor)
            except EditRefused as refused:
                return render(request, "missing.html", {"message": refused.detail}, refused.status)
            values = {field: _text(definition.get(field)) for field in MONITOR_FIELDS}
            return render(request, "monitor.html", {"monitor": monitor, "form": fresh_form(values, etag)})
        session, error = await admin_post(request)
        if error is not None or session is None:
            return error or Response(status_code=401)
        form = await _form(request)

        async def change(by: dict[str, Any]) -> Applied:
            before, _ = editing.monitor(monitor)
            return await editing.put_monitor(monitor, form_definition(form, MONITOR_FIELDS, before), **by)

        sent, applied = await edit(request, change, MONITOR_FIELDS)
        if applied is None:
            return render(request, "monitor.html", {"monitor": monitor, "form": sent}, sent.status)
        return RedirectResponse(f"/monitors/{monitor}", status_code=303)

    def new_record_context(form: Form) -> dict[str, Any]:
        zones = [name_text(zone.origin) for zone, config in runtime.served_zones() if config is not None]
        monitors = [(m, m) for m in editing.monitors()]
        return {
            "form": form,
            "zone_options": [(z, z) for z in zones],
            "type_options": [(t, t) for t in RECORD_TYPES],
            "monitor_options": [("", "none: not checked"), *monitors, (NEW_MONITOR, "a new monitor, below")],
        }

    async def new_record(request: Request) -> Response:
        """Create a dynamic record with its first target, and with a new monitor or one
        that exists: one edit, so the file never holds a record without its monitor."""
        if auth.session(request) is None:
            return login_redirect(request)
        if request.method == "GET":
            blank = {"type": "A", "ttl": "60", "target_priority": "1", "monitor_type": "http"}
            return render(request, "record_new.html", new_record_context(fresh_form(blank)))
        session, error = await admin_post(request)
        if error is not None or session is None:
            return error or Response(status_code=401)
        form = await _form(request)
        label, zone = form.get("label", "").strip().lower(), form.get("zone", "").strip()
        monitor = form.get("monitor", "").strip()
        new_monitor = form.get("monitor_name", "").strip() if monitor == NEW_MONITOR else ""
        target = {k.removeprefix("target_"): form.get(k, "") for k in NEW_RECORD_TARGET}
        record = form_definition(form, ("type", "ttl"))
        record["monitor"] = new_monitor or monitor or None
        record["targets"] = [form_definition(target, TARGET_FIELDS)]
        name = f"{label}.{zone}" if label not in ("", "@") else zone

        async def change(by: dict[str, Any]) -> Applied:
            if not label:
                raise EditRefused(422, ErrorCode.INVALID, "expected a name such as app", "label")
            if monitor == NEW_MONITOR and not new_monitor:
                raise EditRefused(422, ErrorCode.INVALID, "expected a name such as web", "monitor_name")
            if editing.editor.record(editing.document().text, name) is not None:
                raise EditRefused(422, ErrorCode.INVALID, f"{name} exists already", "label")
            fields = {k.removeprefix("monitor_"): form.get(k, "") for k in NEW_RECORD_MONITOR}
            definition = form_definition(fields, MONITOR_FIELDS)

            def operation(text: str) -> tuple[str, bool]:
                if new_monitor:
                    text = editing.editor.put_monitor(text, new_monitor, definition)
                return editing.editor.put_record(text, name, record), True

            return await editing.change(operation, **by)

        sent, applied = await edit(request, change, NEW_RECORD_FIELDS, _new_record_field)
        if applied is None:
            return render(request, "record_new.html", new_record_context(sent), sent.status)
        return RedirectResponse(f"/records/{fqdn(name)}", status_code=303)

    async def propagation_page(request: Request) -> Response:
        """Who answers what we answer: complete without script; propagation.js then
        redraws the rows from propagation.json every few seconds."""
        if not auth.may_read(request):
            return login_redirect(request)
        record = find_record(request)
        if record is None:
            return render(request, "missing.html", {"what": fqdn(request.path_params["fqdn"])}, 404)
        typed = request.query_params.get("hostname", "").strip()
        hostname, hostname_error = None, None
        if typed:
            try:
                hostname = propagation.parse_hostname(typed)
            except ValueError as error:
                hostname_error = str(error)
        context: dict[str, Any] = {
            "record": views.record_view(runtime, updates, record),
            "hostname": typed[: propagation.MAX_HOSTNAME + 1],
            "hostname_error": hostname_error,
            "labels": PROPAGATION_LABELS,
            "view": None,
            "busy": None,
        }
        status = 400 if hostname_error else 200
        try:
            context["view"] = await views.propagation_view(runtime, checker, record, hostname)
        except propagation.Busy as busy:
            context["busy"] = str(busy)
            response = render(request, "propagation.html", context, 429)
            response.headers["Retry-After"] = str(max(1, round(busy.retry_after)))
            return response
        return render(request, "propagation.html", context, status)

    async def propagation_json(request: Request) -> Response:
        """The propagation page's rows for its script: the API's JSON, under the pages'
        access rule (a session, or public pages) instead of a Bearer credential."""
        if not auth.may_read(request):
            return error_response(401, ErrorCode.UNAUTHORIZED, "log in first")
        record = find_record(request)
        if record is None:
            detail = f"no dynamic record {fqdn(request.path_params['fqdn'])!r}"
            return error_response(404, ErrorCode.NOT_FOUND, detail)
        try:
            view = await views.propagation_view(runtime, checker, record)
        except propagation.Busy as busy:
            retry = str(max(1, round(busy.retry_after)))
            return error_response(429, ErrorCode.TOO_MANY_REQUESTS, str(busy), {"Retry-After": retry})
        return JSONResponse(view, headers={"Cache-Control": "no-store"})

    async def events_page(request: Request) -> Response:
        if not auth.may_read(request):
            return login_redirect(request)
        query = request.query_params
        filters = {
            "record": query.get("record", "").strip(),
            "target": query.get("target", "").strip().lower(),
            "kind": query.get("kind", "").strip(),
        }
        rows: list[Any] = await runtime.events(
            record=fqdn(filters["record"]) + "." if filters["record"] else None,
            target=filters["target"] or None,
            kind=filters["kind"] or None,
            limit=200,
        )
        records = [record_text(r) for r in updates.targets.records.values()]
        context = {"events": rows, "filters": filters, "kinds": EVENT_KINDS, "records": records}
        return render(request, "events.html", context)

    async def agents_page(request: Request) -> Response:
        """Each location checks run from: this server and every agent, how fresh and
        whether it votes (an explanation instead without a [locations] table)."""
        if not auth.may_read(request):
            return login_redirect(request)
        settings = runtime.locations_config()
        context = {"view": views.location_view(runtime), "canary": settings.canary if settings else None}
        return render(request, "agents.html", context)

    async def login_page(request: Request) -> Response:
        context: dict[str, Any] = {"next": _local(request.query_params.get("next", "/")), "error": None}
        if request.method == "GET":
            return render(request, "login.html", context)
        form = await _form(request)
        context["next"] = _local(str(form.get("next", "/")))
        client = client_address(request)
        outcome = auth.login(client, str(form.get("password", "")))
        if isinstance(outcome, Block):
            # Not an event: a locked-out guesser would fill the log; the lock-out itself
            # followed failures that are events.
            runtime.count_login("limited")
            retry = max(1, round(outcome.retry_after))
            context["error"] = f"Too many attempts ({outcome.why.value}); try again in {retry} s."
            response = render(request, "login.html", context, 429)
            response.headers["Retry-After"] = str(retry)
            return response
        if outcome is None:
            runtime.count_login("fail")
            why = "wrong password" if auth.password_hash else "no admin password is configured"
            runtime.add_event(
                EventRow(
                    kind="auth",
                    result="fail",
                    reason=f"login failed from {client}: {why}",
                    detail={"client": client},
                )
            )
            context["error"] = "Wrong password." if auth.password_hash else "No admin password is configured."
            return render(request, "login.html", context, 401)
        runtime.count_login("ok")
        runtime.add_event(
            EventRow(
                kind="auth",
                result="ok",
                actor=f"web:{ADMIN}",
                reason=f"login from {client}",
                detail={"client": client},
            )
        )
        response = RedirectResponse(context["next"], status_code=303)
        set_cookie(response, request, outcome)
        return response

    async def logout(request: Request) -> Response:
        session, error = await admin_post(request)
        if error is not None or session is None:
            return error or Response(status_code=401)
        auth.logout(request)
        client = client_address(request)
        runtime.add_event(
            EventRow(
                kind="auth",
                result="ok",
                actor=f"web:{session.user}",
                reason=f"logout from {client}",
                detail={"client": client},
            )
        )
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def admin_post(request: Request) -> tuple[Session | None, Response | None]:
        """The session of a state-changing POST, or the response refusing it."""
        session = auth.session(request)
        if session is None:
            return None, render(request, "login.html", {"next": "/", "error": "Log in first."}, 401)
        form = await _form(request)
        if not auth.check_csrf(session, str(form.get("csrf", ""))):
            log.warning("event=csrf_rejected path=%s", request.url.path)
            return None, Response("CSRF token missing or wrong: reload the page\n", status_code=403)
        return session, None

    def back(request: Request, record: DynamicRecord) -> Response:
        return RedirectResponse(_local(request.query_params.get("next", "/")), status_code=303)

    async def target_post(request: Request) -> tuple[Session, DynamicRecord, TargetKey] | Response:
        """The session, record and target of a target's action (a POST), or the refusal."""
        session, error = await admin_post(request)
        if error is not None or session is None:
            return error or Response(status_code=401)
        record = find_record(request)
        key = updates.targets.by_ref(record_text(record), request.path_params["name"]) if record else None
        if record is None or key is None:
            return Response("no such record or target\n", status_code=404)
        return session, record, key

    async def maintenance(request: Request) -> Response:
        found = await target_post(request)
        if isinstance(found, Response):
            return found
        session, record, key = found
        on = (await _form(request)).get("on") == "1"
        actor = f"web:{session.user}"
        changed = runtime.set_maintenance(key, on, actor=actor)
        log.info(
            "event=maintenance_request record=%s target=%s on=%s actor=%s changed=%s",
            record_text(record),
            key[2],
            on,
            actor,
            changed,
        )
        return back(request, record)

    async def force(request: Request) -> Response:
        """The targets table's Force form: state down/up for N minutes (blank: until
        cleared) with a reason, or clear."""
        found = await target_post(request)
        if isinstance(found, Response):
            return found
        session, record, key = found
        form = await _form(request)
        state = str(form.get("state", ""))
        minutes = str(form.get("minutes", "")).strip()
        reason = " ".join(str(form.get("reason", "")).split())[:200]
        actor = f"web:{session.user}"
        if state == "clear":
            await runtime.force(key, None, actor=actor)
            return back(request, record)
        if state not in ("up", "down") or (
            minutes and not (minutes.isdigit() and 0 < int(minutes) <= 527040)
        ):
            return Response(
                "expected state up, down or clear, and minutes a whole number from 1 to 527040 (or blank)\n",
                status_code=400,
            )
        until = time.time() + int(minutes) * 60 if minutes else None
        await runtime.force(key, Health(state), actor=actor, until=until, reason=reason)
        return back(request, record)

    async def check(request: Request) -> Response:
        session, error = await admin_post(request)
        if error is not None or session is None:
            return error or Response(status_code=401)
        record = find_record(request)
        if record is None:
            return Response("no such record\n", status_code=404)
        runtime.check_record(record, actor=f"web:{session.user}", client=client_address(request))
        return back(request, record)

    return [
        Route("/", dashboard),
        Route("/records/new", new_record, methods=["GET", "POST"]),
        Route("/records/{fqdn}", record_page),
        Route("/records/{fqdn}/targets", add_target, methods=["POST"]),
        Route("/records/{fqdn}/targets/{name}/edit", target_page, methods=["GET", "POST"]),
        Route("/records/{fqdn}/targets/{name}/remove", remove_target, methods=["POST"]),
        Route("/monitors/{name}", monitor_page, methods=["GET", "POST"]),
        Route("/records/{fqdn}/propagation", propagation_page),
        Route("/records/{fqdn}/propagation.json", propagation_json),
        Route("/records/{fqdn}/check", check, methods=["POST"]),
        Route("/records/{fqdn}/targets/{name}/maintenance", maintenance, methods=["POST"]),
        Route("/records/{fqdn}/targets/{name}/forced", force, methods=["POST"]),
        Route("/events", events_page),
        Route("/agents", agents_page),
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]


def vote_text(vote: dict[str, int]) -> str:
    """A target's vote in words, as events say it ("down at 2 of 3 locations (need 2)"),
    and whether stale or excluded locations shrank it."""
    tally = Tally(**vote)
    text = tally.describe()
    if tally.fresh < tally.total:
        text += f"; deciding from {tally.fresh} of {tally.total} locations"
    return text


def chart_svg(samples: list[Sample], targets: list[str], since: float, until: float) -> Markup:
    """Latency lines and a state strip per target, as inline SVG: no script, no CDN."""
    width, plot_h, strip_h, pad = 600.0, 120.0, 10.0, 30.0
    height = plot_h + pad + len(targets) * (strip_h + 4) + 16
    span = max(1.0, until - since)
    latencies = [s.latency for s in samples if s.latency is not None]
    top = max(latencies, default=0.0) * 1.1 or 1.0

    def x(at: float) -> float:
        return pad + (at - since) / span * (width - pad - 4)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="latency and state, last hours" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad}" y1="{plot_h}" x2="{width - 4}" y2="{plot_h}" class="axis"/>',
        f'<text x="2" y="12" class="label">{top * 1000:.0f} ms</text>',
        f'<text x="2" y="{plot_h}" class="label">0</text>',
    ]
    palette = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b"]
    for index, name in enumerate(targets):
        mine = [s for s in samples if s.target == name]
        colour = palette[index % len(palette)]
        points = " ".join(
            f"{x(s.at):.1f},{plot_h - s.latency / top * (plot_h - 16):.1f}"
            for s in mine
            if s.latency is not None
        )
        if points:
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        y = plot_h + pad / 2 + index * (strip_h + 4)
        label = html.escape(name)
        parts.append(f'<text x="2" y="{y + strip_h - 1:.1f}" class="label" fill="{colour}">{label}</text>')
        for position, current in enumerate(mine):
            end = mine[position + 1].at if position + 1 < len(mine) else until
            colour_state = STATE_COLOURS.get(current.state, STATE_COLOURS["unknown"])
            parts.append(
                f'<rect x="{x(current.at):.1f}" y="{y:.1f}" width="{max(1.0, x(end) - x(current.at)):.1f}" '
                f'height="{strip_h}" fill="{colour_state}"><title>{html.escape(name)}: '
                f"{html.escape(current.state)} at {_clock(current.at)}</title></rect>"
            )
    parts.append(f'<text x="{pad}" y="{height - 2:.0f}" class="label">{_clock(since)}</text>')
    parts.append(f'<text x="{width - 4}" y="{height - 2:.0f}" class="label" text-anchor="end">now</text>')
    if not samples:
        middle = f'x="{width / 2}" y="{plot_h / 2}"'
        parts.append(f'<text {middle} class="label" text-anchor="middle">no samples yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# -- the editing forms' fields: the TOML keys they set (docs/configuration.md) --------

TARGET_FIELDS = ("name", "value", "priority", "weight", "check_address", "check_port", "host", "path")
MONITOR_FIELDS = (
    *("type", "port", "path", "interval", "timeout"),
    *("consecutive_up", "consecutive_down", "expected_codes", "expected_body"),
)
NEW_MONITOR = "+new"  # the monitor choice "a new one, below"
NEW_RECORD_TARGET = ("target_name", "target_value", "target_priority")
NEW_RECORD_MONITOR = ("monitor_type", "monitor_port", "monitor_path", "monitor_interval", "monitor_timeout")
NEW_RECORD_FIELDS = (
    *("zone", "label", "type", "ttl", "monitor", "monitor_name"),
    *NEW_RECORD_TARGET,
    *NEW_RECORD_MONITOR,
)
RECORD_TYPES = ("A", "AAAA", "CNAME")


@dataclass
class Form:
    """An editing form as a page shows it: the values typed (or read from the file),
    the file's ETag it changes (If-Match), a message per field, one above the form, and
    why editing is off (the file cannot be written), if it is."""

    values: dict[str, str]
    etag: str
    errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    off: str | None = None
    status: int = 200


def _new_record_field(refused: EditRefused) -> str | None:
    """The new-record form's field of a refusal: the monitor's keys are its monitor_...
    fields, the target's its target_... fields, the record's its own."""
    if refused.key.startswith("monitors."):
        found = field_of(refused, [f.removeprefix("monitor_") for f in NEW_RECORD_MONITOR])
        return f"monitor_{found}" if found else "monitor_name"
    if refused.key.endswith(".targets"):
        found = field_of(refused, [f.removeprefix("target_") for f in NEW_RECORD_TARGET])
        return f"target_{found}" if found else "target_name"
    return field_of(refused, ("zone", "label", "type", "ttl", "monitor", "monitor_name"))


def _text(value: Any) -> str:
    """A definition's value as a form field shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


MAX_FORM = 8 * 1024


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (our forms are small and have no files), so no
    multipart parser is needed; the first value of each field, cached per request."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    body = await request.body()
    form: dict[str, str] = {}
    if len(body) <= MAX_FORM:
        for name, values in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items():
            form[name] = values[0]
    request.state.form = form
    return form


def _local(path: str) -> str:
    """Only a path on this site may be a redirect target (no open redirect)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _ago(at: float | None) -> str:
    """'3 min' since a Unix time, for "time in state"."""
    if not at:
        return "-"
    seconds = max(0, int(time.time() - at))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _clock(at: float | None) -> str:
    if not at:
        return "-"
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ms(latency: float | None) -> str:
    return "-" if latency is None else f"{latency * 1000:.0f} ms"
