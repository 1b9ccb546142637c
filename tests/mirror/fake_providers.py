"""Local stand-ins for two DNS providers' HTTP APIs that dns-lexicon drives, behaving as
the providers document them, for the lexicon mirror's tests (served on 127.0.0.x by
``tests.mirror.fake_cloudflare.serve``).

- Hetzner's Cloud API for DNS (docs.hetzner.cloud, "Zones" and "Zone RRSets"):
  ``Authorization: Bearer``; ``GET /v1/zones/{id or name}``; RRSets named relative to
  the zone (``www``, ``@``) and typed, listed with ``?name=&type=`` and
  ``meta.pagination``; records changed only through actions
  (``POST .../rrsets/{name}/{type}/actions/add_records``, ``remove_records``,
  ``set_records``, ``change_ttl``) that answer ``{"action": {...}}``, which the client
  polls at ``GET /v1/zones/actions/{id}`` until it is no longer ``running``; an RRSet
  left with no records is deleted; errors are ``{"error": {"code", "message"}}``
  (401 ``unauthorized``, 404 ``not_found``, 422 ``invalid_input``).
- DigitalOcean's API v2 ("Domains" and "Domain Records"): ``Authorization: Bearer``;
  ``GET /v2/domains/{name}``; ``/v2/domains/{name}/records`` listed 20 per page with
  ``links.pages.next``, created by POST (201 ``{"domain_record"}``), changed by PUT,
  deleted by DELETE (204); record names relative (``@`` at the apex); errors are
  ``{"id", "message"}`` (401 ``unauthorized``, 404 ``not_found``, 422
  ``unprocessable_entity``).

Both keep every call for the tests to read, can revoke their token, answer the next
requests with a failure a test chooses (429 with Retry-After, 503), and let a test edit
records "by hand".
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class Injected(Exception):
    """A failure a test queued: the next request is answered with it, whatever it asks."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _injected(request: Request, error: Exception) -> Response:
    assert isinstance(error, Injected)
    return error.response


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class _Fake:
    """What both fakes share: the token, the calls, a lock (uvicorn runs in a thread)."""

    base = ""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.failures: list[Response] = []
        self.app = Starlette(routes=self.routes(), exception_handlers={Injected: _injected})

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def fail_next(
        self, status: int, body: Any, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests with this status and JSON body."""
        with self.lock:
            self.failures += [JSONResponse(body, status, headers=headers) for _ in range(times)]

    def revoke(self) -> None:
        self.token = "revoked"

    def api_calls(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def clear_calls(self) -> None:
        with self.lock:
            self.calls.clear()

    async def note(self, request: Request) -> Any:
        raw = await request.body()
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        with self.lock:
            self.calls.append(Call(request.method, request.url.path, dict(request.query_params), body))
            if self.failures:
                raise Injected(self.failures.pop(0))
        return body

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"


def _valid(rtype: str, value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return rtype not in ("A", "AAAA") and bool(value)
    return address.version == (4 if rtype == "A" else 6) if rtype in ("A", "AAAA") else False


# -- Hetzner -------------------------------------------------------------------------------


class FakeHetzner(_Fake):
    base = "/v1/zones"

    def __init__(self, token: str) -> None:
        self.zones: dict[int, str] = {}
        self.rrsets: dict[tuple[int, str, str], dict[str, Any]] = {}  # (zone, name, type)
        self.actions: dict[int, int] = {}  # action id -> polls left before "success"
        self._ids = itertools.count(1000)
        self.running_polls = 1  # each action is "running" for this many polls, as real ones are
        super().__init__(token)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/zones/actions/{action}", self.get_action),
            Route("/v1/zones/{zone}", self.get_zone),
            Route("/v1/zones/{zone}/rrsets", self.list_rrsets),
            Route("/v1/zones/{zone}/rrsets/{name}/{type}", self.delete_rrset, methods=["DELETE"]),
            Route("/v1/zones/{zone}/rrsets/{name}/{type}/actions/{command}", self.act, methods=["POST"]),
        ]

    def add_zone(self, name: str) -> int:
        zone = next(self._ids)
        self.zones[zone] = name
        return zone

    def set_records(self, zone: int, name: str, rtype: str, values: list[str], ttl: int | None = 300) -> None:
        """An edit "by hand" (in Hetzner's console): the RRSet now holds ``values``."""
        with self.lock:
            if values:
                self.rrsets[(zone, name, rtype)] = {"ttl": ttl, "values": list(values)}
            else:
                self.rrsets.pop((zone, name, rtype), None)

    def values(self, zone: int, name: str, rtype: str) -> list[str]:
        with self.lock:
            rrset = self.rrsets.get((zone, name, rtype))
            return sorted(rrset["values"]) if rrset else []

    def ttl(self, zone: int, name: str, rtype: str) -> int | None:
        with self.lock:
            return self.rrsets[(zone, name, rtype)]["ttl"]  # type: ignore[no-any-return]

    # -- the API --------------------------------------------------------------------------

    def _error(self, status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message, "details": {}}}, status)

    def _zone(self, request: Request) -> int | JSONResponse:
        if not self.authorized(request):
            return self._error(401, "unauthorized", "unable to authenticate")
        key = request.path_params["zone"]
        for zone, name in self.zones.items():
            if key in (str(zone), name):
                return zone
        return self._error(404, "not_found", "zone not found")

    def _action(self, command: str, zone: int) -> JSONResponse:
        action = next(self._ids)
        self.actions[action] = self.running_polls
        status = "running" if self.running_polls else "success"
        return JSONResponse({"action": self._action_body(action, command, status, zone)}, 201)

    @staticmethod
    def _action_body(action: int, command: str, status: str, zone: int) -> dict[str, Any]:
        return {
            "id": action,
            "command": command,
            "status": status,
            "progress": 100 if status == "success" else 0,
            "started": "2026-12-06T00:00:00+00:00",
            "finished": None if status == "running" else "2026-12-06T00:00:01+00:00",
            "resources": [{"id": zone, "type": "zone"}],
            "error": None,
        }

    async def get_action(self, request: Request) -> Response:
        await self.note(request)
        if not self.authorized(request):
            return self._error(401, "unauthorized", "unable to authenticate")
        action = int(request.path_params["action"])
        with self.lock:
            if action not in self.actions:
                return self._error(404, "not_found", "action not found")
            left = self.actions[action]
            self.actions[action] = max(left - 1, 0)
        status = "running" if left > 1 else "success"
        return JSONResponse({"action": self._action_body(action, "poll", status, 0)})

    async def get_zone(self, request: Request) -> Response:
        await self.note(request)
        zone = self._zone(request)
        if isinstance(zone, JSONResponse):
            return zone
        return JSONResponse(
            {"zone": {"id": zone, "name": self.zones[zone], "mode": "primary", "ttl": 3600, "status": "ok"}}
        )

    async def list_rrsets(self, request: Request) -> Response:
        await self.note(request)
        zone = self._zone(request)
        if isinstance(zone, JSONResponse):
            return zone
        name, rtype = request.query_params.get("name"), request.query_params.get("type")
        with self.lock:
            found = [
                self._rrset_body(zone, n, t, rrset)
                for (z, n, t), rrset in sorted(self.rrsets.items())
                if z == zone and name in (None, n) and rtype in (None, t)
            ]
        pagination = {
            "page": 1,
            "per_page": 100,
            "previous_page": None,
            "next_page": None,
            "last_page": 1,
            "total_entries": len(found),
        }
        return JSONResponse({"rrsets": found, "meta": {"pagination": pagination}})

    @staticmethod
    def _rrset_body(zone: int, name: str, rtype: str, rrset: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{name}/{rtype}",
            "name": name,
            "type": rtype,
            "ttl": rrset["ttl"],
            "labels": {},
            "protection": {"change": False},
            "records": [{"value": v, "comment": ""} for v in rrset["values"]],
            "zone": zone,
        }

    async def delete_rrset(self, request: Request) -> Response:
        await self.note(request)
        zone = self._zone(request)
        if isinstance(zone, JSONResponse):
            return zone
        key = (zone, request.path_params["name"], request.path_params["type"])
        with self.lock:
            if key not in self.rrsets:
                return self._error(404, "not_found", "rrset not found")
            del self.rrsets[key]
        return self._action("delete_rrset", zone)

    async def act(self, request: Request) -> Response:
        body = await self.note(request)
        zone = self._zone(request)
        if isinstance(zone, JSONResponse):
            return zone
        name, rtype, command = (request.path_params[k] for k in ("name", "type", "command"))
        if not isinstance(body, dict):
            return self._error(422, "invalid_input", "invalid JSON body")
        values = [r.get("value") for r in body.get("records") or [] if isinstance(r, dict)]
        if command != "change_ttl" and (not values or not all(_valid(rtype, str(v)) for v in values)):
            return self._error(422, "invalid_input", f"invalid records for type {rtype}")
        ttl = body.get("ttl")
        if ttl is not None and (not isinstance(ttl, int) or not 60 <= ttl <= 2147483647):
            return self._error(422, "invalid_input", "ttl must be between 60 and 2147483647")
        key = (zone, name, rtype)
        with self.lock:
            rrset = self.rrsets.get(key)
            if command == "add_records":
                if rrset is None:  # created on the way; its TTL is the one given (change_ttl changes it)
                    rrset = self.rrsets[key] = {"ttl": ttl, "values": []}
                rrset["values"] += [v for v in values if v not in rrset["values"]]
            elif rrset is None:
                return self._error(404, "not_found", "rrset not found")
            elif command == "remove_records":
                rrset["values"] = [v for v in rrset["values"] if v not in values]
                if not rrset["values"]:
                    del self.rrsets[key]
            elif command == "set_records":
                rrset["values"] = list(dict.fromkeys(values))
            elif command == "change_ttl":
                rrset["ttl"] = ttl
            else:
                return self._error(404, "not_found", f"no action {command}")
        return self._action(f"{command.removesuffix('s')}", zone)


# -- DigitalOcean ------------------------------------------------------------------------


class FakeDigitalOcean(_Fake):
    base = "/v2"
    per_page = 20  # DigitalOcean's default page size

    def __init__(self, token: str) -> None:
        self.domains: set[str] = set()
        self.records: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(3352892)
        super().__init__(token)

    def routes(self) -> list[Route]:
        return [
            Route("/v2/domains/{domain}", self.get_domain),
            Route("/v2/domains/{domain}/records", self.records_route, methods=["GET", "POST"]),
            Route(
                "/v2/domains/{domain}/records/{id:int}", self.record_route, methods=["GET", "PUT", "DELETE"]
            ),
        ]

    def add_domain(self, name: str) -> None:
        self.domains.add(name)

    def add_record(self, domain: str, rtype: str, name: str, data: str, ttl: int = 1800) -> int:
        """A record made "by hand" (in DigitalOcean's control panel); ``name`` relative."""
        with self.lock:
            record = next(self._ids)
            self.records[record] = {"domain": domain, "type": rtype, "name": name, "data": data, "ttl": ttl}
            return record

    def set_data(self, record: int, data: str) -> None:
        with self.lock:
            self.records[record]["data"] = data

    def values(self, domain: str, name: str, rtype: str) -> list[str]:
        with self.lock:
            return sorted(
                r["data"]
                for r in self.records.values()
                if (r["domain"], r["name"], r["type"]) == (domain, name, rtype)
            )

    def find(self, domain: str, name: str, rtype: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                self._body(i, r)
                for i, r in sorted(self.records.items())
                if (r["domain"], r["name"], r["type"]) == (domain, name, rtype)
            ]

    # -- the API --------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"id": code, "message": message}, status)

    def _check(self, request: Request) -> JSONResponse | None:
        if not self.authorized(request):
            return self._error(401, "unauthorized", "Unable to authenticate you")
        if request.path_params["domain"] not in self.domains:
            return self._error(404, "not_found", "The resource you were accessing could not be found.")
        return None

    @staticmethod
    def _body(record: int, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": record,
            "type": r["type"],
            "name": r["name"],
            "data": r["data"],
            "priority": None,
            "port": None,
            "ttl": r["ttl"],
            "weight": None,
            "flags": None,
            "tag": None,
        }

    async def get_domain(self, request: Request) -> Response:
        await self.note(request)
        if failed := self._check(request):
            return failed
        domain = request.path_params["domain"]
        return JSONResponse({"domain": {"name": domain, "ttl": 1800, "zone_file": ""}})

    def _validate(self, body: Any, partial: bool) -> str | None:
        if not isinstance(body, dict):
            return "invalid JSON body"
        rtype = body.get("type")
        if not partial and rtype not in ("A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA"):
            return "type is invalid"
        if not partial and not body.get("name"):
            return "name is required"
        data = body.get("data")
        if (not partial or data is not None) and not _valid(str(rtype or "A"), str(data)):
            return "data is invalid"
        ttl = body.get("ttl")
        if ttl is not None and (not isinstance(ttl, int) or ttl < 30):
            return "ttl must be at least 30"
        return None

    async def records_route(self, request: Request) -> Response:
        body = await self.note(request)
        if failed := self._check(request):
            return failed
        domain = request.path_params["domain"]
        if request.method == "POST":
            if problem := self._validate(body, partial=False):
                return self._error(422, "unprocessable_entity", problem)
            record = self.add_record(
                domain, body["type"], body["name"], body["data"], body.get("ttl") or 1800
            )
            with self.lock:
                return JSONResponse({"domain_record": self._body(record, self.records[record])}, 201)
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", str(self.per_page)))
        rtype, name = request.query_params.get("type"), request.query_params.get("name")
        with self.lock:
            rows = [
                self._body(i, r)
                for i, r in sorted(self.records.items())
                if r["domain"] == domain and rtype in (None, r["type"]) and name in (None, r["name"])
            ]
        chunk = rows[(page - 1) * per_page : page * per_page]
        links: dict[str, Any] = {}
        if page * per_page < len(rows):
            url = f"{request.base_url}v2/domains/{domain}/records?page={page + 1}&per_page={per_page}"
            links = {"pages": {"next": url}}
        return JSONResponse({"domain_records": chunk, "links": links, "meta": {"total": len(rows)}})

    async def record_route(self, request: Request) -> Response:
        body = await self.note(request)
        if failed := self._check(request):
            return failed
        record = request.path_params["id"]
        with self.lock:
            current = self.records.get(record)
            if current is None or current["domain"] != request.path_params["domain"]:
                return self._error(404, "not_found", "The resource you were accessing could not be found.")
            if request.method == "DELETE":
                del self.records[record]
                return Response(status_code=204)
            if request.method == "PUT":
                if problem := self._validate(body, partial=True):
                    return self._error(422, "unprocessable_entity", problem)
                for key in ("type", "name", "data", "ttl"):
                    if body.get(key) is not None:
                        current[key] = body[key]
            return JSONResponse({"domain_record": self._body(record, current)})
