"""The REST API, ``/api/v1``: JSON, Bearer auth with a credential's secret.

Reads (zones, records, targets and their states, locations) are open to every credential; a
target's value may be set by admin or by a credential scoped to it; maintenance, check
now and the event log are admin's. Every error is ``{"error": code, "detail": text}``
with its HTTP status; the OpenAPI document (dynserver.web.openapi) lists them all.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from dynserver import propagation
from dynserver.config.edit import Definition
from dynserver.dns.names import fqdn, name_text
from dynserver.errors import RequestError
from dynserver.health.state import Health
from dynserver.model import DynamicRecord, is_checked
from dynserver.runtime import Runtime
from dynserver.types import TargetKey
from dynserver.update import push
from dynserver.update.credentials import Principal
from dynserver.update.limits import Block
from dynserver.update.service import Updates
from dynserver.update.targets import InvalidValue, parse_value, record_text
from dynserver.web import openapi, schema, views
from dynserver.web.client import client_address
from dynserver.web.editing import Applied, Editing, EditRefused
from dynserver.web.schema import ErrorCode

log = logging.getLogger("dynserver.update")

MAX_EVENTS = 1000
EVENT_FILTERS = frozenset({"record", "target", "kind", "since", "until", "limit", "before"})
PROPAGATION_PARAMETERS = frozenset({"hostname"})
MAX_BODY = 64 * 1024
FORCE_EXAMPLE = '{"state": "down", "duration": 3600, "reason": "disk replacement"}'


class ApiError(RequestError):
    """An error answered as JSON: raised anywhere in a handler."""

    def __init__(
        self, status: int, error: ErrorCode, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


Handler = Callable[[Request, Principal], Awaitable[Response]]


def create_api(
    runtime: Runtime,
    updates: Updates,
    checker: propagation.Checker | None = None,
    more: Sequence[BaseRoute] = (),
    editing: Editing | None = None,
) -> Starlette:
    """The ``/api/v1`` application (mounted by dynserver.web.app). ``checker`` runs and
    caches propagation checks (shared with the pages); ``more``: routes of other parts
    under /api/v1 (the agents' endpoints, paths relative to it), inside this app so that
    a method they lack is answered 405 as on every API path, not 404; ``editing``: the
    config file's editor, shared with the pages so their edits are ordered too."""
    checker = checker or views.checker(runtime)

    def authenticated(
        handler: Handler, *, admin: bool = False, update: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """``update``: the handler sets a value, and /metrics counts the requests it
        refuses (applied ones are counted by Runtime.update_target)."""

        def refused(result: str, error: ApiError) -> ApiError:
            if update:
                runtime.count_update("api", result)
            return error

        async def endpoint(request: Request) -> Response:
            client = client_address(request)
            block = updates.admit(client)
            if block is not None:
                raise refused("limited", _too_many(block))
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise refused("unauthorized", _unauthorized("send Authorization: Bearer <credential secret>"))
            try:
                principal = await updates.bearer(token.strip(), client)
            except Exception:
                log.exception("event=api_failed step=credentials client=%s", client)
                error = ApiError(500, ErrorCode.SERVER_ERROR, "could not read credentials; try again")
                raise refused("failed", error) from None
            if isinstance(principal, Block):
                raise refused("limited", _too_many(principal))
            if principal is None:
                raise refused("unauthorized", _unauthorized("the token is not the secret of any credential"))
            if admin and not principal.admin:
                raise ApiError(403, ErrorCode.FORBIDDEN, f"credential {principal.name!r} is not admin")
            try:
                return await handler(request, principal)
            except ApiError as error:
                if error.status < 500:  # not this target's, or a request that cannot apply
                    raise refused("refused", error) from None
                raise

        return endpoint

    # -- views ----------------------------------------------------------------------

    def target_body(record: DynamicRecord, name: str) -> schema.Target:
        return views.target_body(runtime, updates, record, name)

    def record_body(record: DynamicRecord) -> schema.Record:
        return views.record_body(runtime, updates, record)

    def find_record(request: Request) -> DynamicRecord:
        name = request.path_params["fqdn"]
        record = updates.targets.record(name)
        if record is None:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no dynamic record {fqdn(name)!r}")
        return record

    def find_target(request: Request) -> tuple[DynamicRecord, TargetKey]:
        record = find_record(request)
        key = updates.targets.by_ref(record_text(record), request.path_params["name"])
        if key is None:
            known = ", ".join(t.name for t in record.targets)
            raise ApiError(
                404,
                ErrorCode.NOT_FOUND,
                f"{record_text(record)} has no target {request.path_params['name']!r}; known: {known}",
            )
        return record, key

    # -- handlers -------------------------------------------------------------------

    async def zones(request: Request, principal: Principal) -> Response:
        result = []
        for zone, config in runtime.served_zones():
            records = [record_text(r) for r in config.records] if config else []
            result.append(schema.Zone(name=name_text(zone.origin), serial=zone.serial, records=records))
        return _encoded(schema.ZoneList(zones=result))

    async def records(request: Request, principal: Principal) -> Response:
        return _encoded(schema.RecordList(records=[record_body(r) for r in updates.targets.records.values()]))

    async def record(request: Request, principal: Principal) -> Response:
        return _encoded(record_body(find_record(request)))

    async def target(request: Request, principal: Principal) -> Response:
        record, key = find_target(request)
        return _encoded(target_body(record, key[2]))

    async def set_value(request: Request, principal: Principal) -> Response:
        record, key = find_target(request)
        if not principal.may_update(key):
            hostname = updates.targets.hostname(key)
            raise ApiError(
                403, ErrorCode.FORBIDDEN, f"credential {principal.name!r} may not update {hostname}"
            )
        body = await _json_object(request)
        named = body.get("name")
        if named is not None and (not isinstance(named, str) or named.lower() != key[2]):
            raise ApiError(
                409, ErrorCode.CONFLICT, f"the body names target {named!r} but the URL names {key[2]!r}"
            )
        given = [body[k] for k in ("value", "ip") if k in body]
        if not given:
            raise ApiError(422, ErrorCode.INVALID, 'expected {"value": "..."} (or seed 000\'s {"ip": "..."})')
        if any(not isinstance(v, str) for v in given) or len(set(given)) > 1:
            raise ApiError(422, ErrorCode.INVALID, '"value" and "ip" must be one string')
        client = client_address(request)
        text = given[0] or client  # "" = the address the request came from (a dial-up script)
        try:
            value = parse_value(record.type, text)
        except InvalidValue as error:
            raise ApiError(422, ErrorCode.INVALID, str(error)) from None
        try:
            changed, previous = await updates.update(principal, key, value, client=client, via="api")
        except Exception:
            log.exception("event=update_failed via=api credential=%s client=%s", principal.name, client)
            raise ApiError(
                500, ErrorCode.SERVER_ERROR, "the update could not be stored; nothing changed"
            ) from None
        return _encoded(
            schema.UpdateResult(changed=changed, previous=previous, target=target_body(record, key[2]))
        )

    async def maintenance(request: Request, principal: Principal) -> Response:
        record, key = find_target(request)
        if request.method == "PUT":
            on = True
        elif request.method == "DELETE":
            on = False
        else:
            body = await _json_object(request)
            if not isinstance(body.get("maintenance"), bool):
                raise ApiError(
                    422, ErrorCode.INVALID, 'expected {"maintenance": true} or {"maintenance": false}'
                )
            on = body["maintenance"]
        changed = runtime.set_maintenance(key, on, actor=principal.name)
        return _encoded(schema.MaintenanceResult(changed=changed, target=target_body(record, key[2])))

    async def forced(request: Request, principal: Principal) -> Response:
        """PUT: force the target up or down (for a duration, until a time, or until
        cleared); DELETE: clear it, back to its checks."""
        record, key = find_target(request)
        if request.method == "DELETE":
            changed = await runtime.force(key, None, actor=principal.name)
            return _encoded(schema.ForcedResult(changed=changed, target=target_body(record, key[2])))
        try:
            body = msgspec.json.decode(await _body(request), type=schema.Force)
        except msgspec.ValidationError as error:
            raise ApiError(422, ErrorCode.INVALID, f"{error}; expected e.g. {FORCE_EXAMPLE}") from None
        except msgspec.DecodeError:
            raise ApiError(400, ErrorCode.BAD_REQUEST, "the body is not JSON") from None
        until = None if body.duration is msgspec.UNSET else time.time() + body.duration
        state = Health.UP if body.state is schema.ForcedState.UP else Health.DOWN
        await runtime.force(key, state, actor=principal.name, until=until, reason=body.reason)
        return _encoded(schema.ForcedResult(changed=True, target=target_body(record, key[2])))

    async def heartbeat(request: Request) -> Response:
        """GET or POST /push/TOKEN: a push monitor's heartbeat (the token is the secret:
        no Authorization; refused tokens count towards the client's lockout)."""
        client = client_address(request)
        block = updates.admit(client)
        if block is not None:
            raise _too_many(block)
        try:
            beat = push.beat(request.query_params)
        except ValueError as error:
            raise ApiError(400, ErrorCode.BAD_REQUEST, str(error)) from None
        key = await updates.push(request.path_params["token"], client)
        if key is None:
            raise ApiError(404, ErrorCode.NOT_FOUND, "no push monitor's target has this token")
        hostname = updates.targets.hostname(key)
        monitors = runtime.heartbeat(key, beat.ok, beat.reason, beat.latency)
        if not monitors:
            detail = f"{hostname} has no push monitor now (the config changed since its token was made)"
            raise ApiError(409, ErrorCode.CONFLICT, detail)
        health = runtime.target_state(key).health
        return _encoded(schema.PushResult(ok=True, target=hostname, monitors=list(monitors), health=health))

    async def check(request: Request, principal: Principal) -> Response:
        record = find_record(request)
        if not is_checked(record):
            detail = f"{record_text(record)} has no monitor: there is nothing to check"
            raise ApiError(409, ErrorCode.CONFLICT, detail)
        checked = runtime.check_record(record, actor=principal.name, client=client_address(request))
        return _encoded(schema.Checking(checking=checked), 202)

    async def events(request: Request, principal: Principal) -> Response:
        query = request.query_params
        unknown = sorted(set(query) - EVENT_FILTERS)
        if unknown:  # a misspelt filter must not silently return everything
            expected = ", ".join(sorted(EVENT_FILTERS))
            raise ApiError(
                400, ErrorCode.BAD_REQUEST, f"unknown parameter {unknown[0]!r}; expected: {expected}"
            )
        filters: dict[str, Any] = {
            "record": fqdn(query["record"]) + "." if query.get("record") else None,
            "target": query["target"].lower() if query.get("target") else None,
            "kind": query.get("kind") or None,
            "since": _time(query, "since"),
            "until": _time(query, "until"),
            "limit": _integer(query, "limit", 100, 1, MAX_EVENTS),
            "before_id": _integer(query, "before", None, 1, openapi.MAX_ID),
        }
        try:
            rows = await runtime.events(**filters)
        except Exception:
            log.exception("event=api_failed step=events")
            raise ApiError(500, ErrorCode.SERVER_ERROR, "could not read the event log; try again") from None
        items = [
            schema.Event(
                id=cast(int, e.id),  # read from the store: always set
                at=e.at,
                kind=e.kind,
                record=fqdn(e.record) if e.record else None,
                target=e.target,
                result=e.result,
                reason=e.reason,
                previous=e.previous,
                current=e.current,
                actor=e.actor,
                detail=e.detail,
            )
            for e in rows
        ]
        more = len(rows) == filters["limit"]
        return _encoded(schema.EventList(events=items, next_before=rows[-1].id if more and rows else None))

    async def locations(request: Request, principal: Principal) -> Response:
        return _encoded(views.location_list(runtime))

    async def propagation_report(request: Request, principal: Principal) -> Response:
        record = find_record(request)
        query = request.query_params
        unknown = sorted(set(query) - PROPAGATION_PARAMETERS)
        if unknown:
            raise ApiError(
                400, ErrorCode.BAD_REQUEST, f"unknown parameter {unknown[0]!r}; expected: hostname"
            )
        hostname = None
        if "hostname" in query:
            try:
                hostname = propagation.parse_hostname(query["hostname"])
            except ValueError as error:
                raise ApiError(400, ErrorCode.BAD_REQUEST, f"hostname: {error}") from None
        try:
            body = await views.propagation_body(runtime, checker, record, hostname)
        except propagation.Busy as busy:
            retry = str(max(1, math.ceil(busy.retry_after)))
            raise ApiError(429, ErrorCode.TOO_MANY_REQUESTS, str(busy), {"Retry-After": retry}) from None
        return _encoded(body)

    # -- reload and definitions (admin): the config file, edited in place ----------

    editing = editing or Editing(runtime)

    async def reload(request: Request, principal: Principal) -> Response:
        outcome = await runtime.reload(actor=principal.name, via="api")
        if not outcome.ok:
            detail = outcome.errors[0] if outcome.errors else "the config file does not load"
            body = schema.ReloadFailed(error=ErrorCode.INVALID, detail=detail, errors=list(outcome.errors))
            return _encoded(body, 422)
        return _encoded(schema.Reloaded(ok=True, changes=list(outcome.changes), duration=outcome.duration))

    def by(request: Request, principal: Principal) -> dict[str, Any]:
        return {"if_match": request.headers.get("if-match"), "actor": principal.name, "via": "api"}

    def written(definition: Definition, applied: Applied, location: str) -> Response:
        headers = {"ETag": applied.document.etag}
        if applied.created:
            headers["Location"] = location
        return _definition(definition, headers["ETag"], 201 if applied.created else 200, headers)

    def deleted(what: str, applied: Applied) -> Response:
        body = schema.Deleted(deleted=what, changes=list(applied.changes))
        return _encoded(body, headers={"ETag": applied.document.etag})

    async def record_definition(request: Request, principal: Principal) -> Response:
        name = fqdn(request.path_params["fqdn"])
        if request.method == "PUT":
            applied = await editing.put_record(name, await _json_object(request), **by(request, principal))
            return written(editing.record(name, applied.document)[0], applied, request.url.path)
        if request.method == "DELETE":
            return deleted(f"record {name}", await editing.delete_record(name, **by(request, principal)))
        return _definition(*editing.record(name))

    async def target_definition(request: Request, principal: Principal) -> Response:
        name, target = fqdn(request.path_params["fqdn"]), request.path_params["name"]
        if request.method == "PUT":
            body = await _json_object(request)
            applied = await editing.put_target(name, target, body, **by(request, principal))
            return written(editing.target(name, target, applied.document)[0], applied, request.url.path)
        if request.method == "DELETE":
            applied = await editing.delete_target(name, target, **by(request, principal))
            return deleted(f"target {target} of {name}", applied)
        return _definition(*editing.target(name, target))

    async def monitor_definition(request: Request, principal: Principal) -> Response:
        name = request.path_params["name"]
        if request.method == "PUT":
            applied = await editing.put_monitor(name, await _json_object(request), **by(request, principal))
            return written(editing.monitor(name, applied.document)[0], applied, request.url.path)
        if request.method == "DELETE":
            return deleted(f"monitor {name}", await editing.delete_monitor(name, **by(request, principal)))
        return _definition(*editing.monitor(name))

    async def document(request: Request) -> Response:
        return JSONResponse(openapi.DOCUMENT)

    record_path = "/records/{fqdn}"
    target_path = record_path + "/targets/{name}"
    return Starlette(
        routes=[
            Route("/openapi.json", document, methods=["GET"]),
            Route("/zones", authenticated(zones), methods=["GET"]),
            Route("/records", authenticated(records), methods=["GET"]),
            Route(record_path, authenticated(record), methods=["GET"]),
            Route(record_path + "/check", authenticated(check, admin=True), methods=["POST"]),
            Route(record_path + "/propagation", authenticated(propagation_report), methods=["GET"]),
            # One route per path, so a 405 lists every method the path has in Allow.
            Route(
                target_path,
                _by_method({"GET": authenticated(target), "PUT": authenticated(set_value, update=True)}),
                methods=["GET", "PUT"],
            ),
            Route(
                target_path + "/maintenance",
                authenticated(maintenance, admin=True),
                methods=["PUT", "DELETE", "POST"],
            ),
            Route(target_path + "/forced", authenticated(forced, admin=True), methods=["PUT", "DELETE"]),
            Route("/events", authenticated(events, admin=True), methods=["GET"]),
            Route("/locations", authenticated(locations), methods=["GET"]),
            Route("/push/{token}", heartbeat, methods=["GET", "POST"]),
            Route("/reload", authenticated(reload, admin=True), methods=["POST"]),
            Route(
                "/config" + record_path,
                authenticated(record_definition, admin=True),
                methods=["GET", "PUT", "DELETE"],
            ),
            Route(
                "/config" + target_path,
                authenticated(target_definition, admin=True),
                methods=["GET", "PUT", "DELETE"],
            ),
            Route(
                "/config/monitors/{name}",
                authenticated(monitor_definition, admin=True),
                methods=["GET", "PUT", "DELETE"],
            ),
            *more,
        ],
        exception_handlers={
            ApiError: _api_error,  # type: ignore[dict-item]
            EditRefused: _refused,  # type: ignore[dict-item]
            HTTPException: _http_error,  # type: ignore[dict-item]
            Exception: _server_error,
        },
    )


# -- helpers ------------------------------------------------------------------------


def _by_method(
    handlers: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


async def _body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"the body is larger than {MAX_BODY} bytes")
    return body


async def _json_object(request: Request) -> dict[str, Any]:
    body = await _body(request)
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, ErrorCode.BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, ErrorCode.BAD_REQUEST, "expected a JSON object")
    return data


def _integer(query: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"{name}={text!r}: expected a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"{name}={value}: expected {low} to {high}")
    return value


def _time(query: Any, name: str) -> float | None:
    """Unix seconds, or an ISO 8601 date-time (a time without a zone is UTC)."""
    text = query.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.datetime.fromisoformat(text.upper())  # RFC 3339 allows "t" and "z"
        except ValueError:
            raise ApiError(
                400, ErrorCode.BAD_REQUEST, f"{name}={text!r}: expected Unix seconds or an ISO 8601 date-time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    if math.isnan(value):
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"{name}={text!r}: expected a number")
    return value


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, ErrorCode.UNAUTHORIZED, detail, {"WWW-Authenticate": 'Bearer realm="dynserver"'})


def _too_many(block: Block) -> ApiError:
    return ApiError(
        429,
        ErrorCode.TOO_MANY_REQUESTS,
        f"{block.why.value}: retry after {max(1, round(block.retry_after))} s",
        {"Retry-After": str(max(1, round(block.retry_after)))},
    )


def _encoded(body: schema.ResponseBody, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A typed body as JSON: msgspec writes the bytes straight from the Struct."""
    return Response(msgspec.json.encode(body), status, headers, media_type="application/json")


def error_response(
    status: int, error: ErrorCode, detail: str, headers: dict[str, str] | None = None
) -> Response:
    return _encoded(schema.Error(error=error, detail=detail), status, headers)


async def _api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.error, exc.detail, exc.headers)


async def _refused(request: Request, exc: EditRefused) -> Response:
    return error_response(exc.status, exc.error, exc.detail)


def _definition(
    definition: Definition, etag: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A definition from the config file, with the file's ETag for the next If-Match."""
    return Response(
        msgspec.json.encode(definition),
        status,
        {"ETag": etag, **(headers or {})},
        media_type="application/json",
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, ErrorCode.SERVER_ERROR, "an unexpected error; it has been logged")


async def api_aware_http_error(request: Request, exc: HTTPException) -> Response:
    """The whole web app's 404/405: JSON under /api/ (a path the API mount cannot even
    match, such as one with a newline, is still an API client's), plain text elsewhere."""
    if request.url.path.startswith("/api/"):
        return await _http_error(request, exc)
    if exc.status_code in {204, 304}:  # pragma: no cover - starlette's own rule, kept
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own 404/405 for unknown paths and methods, as JSON like the rest."""
    codes = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}
    headers = dict(exc.headers) if exc.headers else None
    detail = str(exc.detail)
    if exc.status_code in codes:
        what = "no such path" if exc.status_code == 404 else f"{request.method} is not allowed on"
        detail = f"{what} {request.url.path}; the routes are in /api/v1/openapi.json"
    return error_response(exc.status_code, codes.get(exc.status_code, ErrorCode.ERROR), detail, headers)
