"""A local stand-in for Cloudflare's API v4: the zone lookup and the dns_records calls a
mirror makes, behaving as Cloudflare documents them (tests/mirror/data holds the trimmed
OpenAPI document it follows; the batch endpoint is newer than that document and follows
Cloudflare's description: ``{deletes, patches, puts, posts}``, applied in that order in
one transaction).

- Every reply is the envelope ``{success, errors: [{code, message}], messages, result}``,
  lists add ``result_info`` ``{page, per_page, count, total_count, total_pages}``.
- ``Authorization: Bearer <token>`` is required; anything else is 403 with code 10000.
- Records are validated as Cloudflare does: content per type, ``ttl`` 1 (automatic) or
  60-86400, ``proxied`` only on A, AAAA and CNAME (a proxied record's TTL reads back 1),
  a CNAME shares its name with no A, AAAA or CNAME, no exact duplicates, no unknown fields.
- A test can make the next requests fail (429 with Retry-After, a 502 HTML page from the
  edge), revoke the token, and edit records "by hand", and reads every call made.

It runs in a thread of the test process (uvicorn on 127.0.0.x) and is stopped when the
``serve`` block ends.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support import free_port, loopback

BASE = "/client/v4"
PROXIABLE = {"A", "AAAA", "CNAME"}
TYPES = {"A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SRV", "TXT", "HTTPS", "SVCB"}
WRITABLE = {"type", "name", "content", "ttl", "proxied", "comment", "tags", "priority", "data", "settings"}
READ_ONLY = {"id", "zone_id", "zone_name", "proxiable", "created_on", "modified_on", "meta", "locked"}
INTERNAL = {"zone_id", "zone_name"}  # the fake keeps them; the 2024 document shows neither
_ID = re.compile(r"[0-9a-f]{32}")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Call:
    method: str
    path: str  # after /client/v4, e.g. /zones/<id>/dns_records
    query: dict[str, str]
    body: Any
    status: int
    at: float

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.query.items())
        body = "" if self.body is None else " " + json.dumps(self.body, sort_keys=True)
        return f"{self.method} {self.path}{'?' + query if query else ''}{body} -> {self.status}"


@dataclass
class Failure:
    status: int
    retry_after: str | None = None


@dataclass
class FakeCloudflare:
    token: str
    zones: dict[str, str] = field(default_factory=dict)  # id -> name
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> record
    calls: list[Call] = field(default_factory=list)
    revoked: bool = False
    _failures: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        self.app = Starlette(routes=[Route(BASE + "/{path:path}", self._endpoint, methods=methods)])

    # -- the test's side ------------------------------------------------------------------

    def add_zone(self, name: str) -> str:
        zone_id = uuid.uuid4().hex
        with self.lock:
            self.zones[zone_id] = name
        return zone_id

    def add_record(self, zone_id: str, rtype: str, name: str, content: str, **fields: Any) -> dict[str, Any]:
        """A record created "by hand" (in Cloudflare's dashboard)."""
        with self.lock:
            record = self._create(zone_id, {"type": rtype, "name": name, "content": content, **fields})
            return _out(record)

    def edit(self, record_id: str, **fields: Any) -> None:
        """Someone edits a record in the dashboard."""
        with self.lock:
            record = self.records[record_id]
            self._update(record, {**record, **fields}, replace=False)

    def find(self, name: str, rtype: str) -> list[dict[str, Any]]:
        with self.lock:
            found = [r for r in self.records.values() if r["name"] == name and r["type"] == rtype]
            return [_out(r) for r in sorted(found, key=lambda r: r["content"])]

    def contents(self, name: str, rtype: str) -> list[str]:
        return [r["content"] for r in self.find(name, rtype)]

    def fail(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """The next ``times`` requests get ``status`` (429: with ``retry_after``)."""
        with self.lock:
            self._failures += [Failure(status, retry_after)] * times

    def heal(self) -> None:
        """Forget the failures still queued by ``fail``."""
        with self.lock:
            self._failures.clear()

    def api_calls(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def clear_calls(self) -> None:
        with self.lock:
            self.calls.clear()

    # -- the API --------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        raw = await request.body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        query = dict(request.query_params)
        with self.lock:
            response = self._handle(request.method, path, query, body, bad_json, request.headers)
            self.calls.append(Call(request.method, path, query, body, response.status_code, time.time()))
        return response

    def _handle(
        self, method: str, path: str, query: dict[str, str], body: Any, bad_json: bool, headers: Any
    ) -> Response:
        if self._failures:
            failure = self._failures.pop(0)
            if failure.status == 429:
                extra = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
                return _failure(429, 971, "Please wait and consider throttling your request speed", extra)
            return Response(
                f"<html><body><h1>{failure.status} Bad Gateway</h1>cloudflare</body></html>",
                status_code=failure.status,
                media_type="text/html",
            )
        if self.revoked or headers.get("authorization") != f"Bearer {self.token}":
            return _failure(403, 10000, "Authentication error")
        if bad_json:
            return _failure(400, 9207, "Request body is invalid.")
        try:
            result, info = self._route(method, path, query, body)
        except ApiError as error:
            return _failure(error.status, error.code, error.message)
        envelope: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
        if info is not None:
            envelope["result_info"] = info
        return JSONResponse(envelope)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[Any, dict[str, Any] | None]:
        parts = path.strip("/").split("/")
        if parts == ["zones"] and method == "GET":
            zones = [self._zone(i) for i, n in sorted(self.zones.items(), key=lambda z: z[1])]
            if "name" in query:
                zones = [z for z in zones if z["name"] == query["name"].lower()]
            return _page(zones, query, default_per_page=20)
        if len(parts) < 2 or parts[0] != "zones":
            raise ApiError(404, 7000, "No route for that URI")
        zone_id = parts[1]
        if zone_id not in self.zones:
            message = f"Could not route to /zones/{zone_id}, perhaps your object identifier is invalid?"
            raise ApiError(404, 7003, message)
        rest = parts[2:]
        if rest == [] and method == "GET":
            return self._zone(zone_id), None
        if rest == ["dns_records"] and method == "GET":
            return self._list(zone_id, query)
        if rest == ["dns_records"] and method == "POST":
            return _out(self._create(zone_id, _object(body))), None
        if rest == ["dns_records", "batch"] and method == "POST":
            return self._batch(zone_id, _object(body)), None
        if len(rest) == 2 and rest[0] == "dns_records":
            record = self.records.get(rest[1])
            if record is None or record["zone_id"] != zone_id:
                raise ApiError(404, 81044, "Record does not exist.")
            if method == "GET":
                return _out(record), None
            if method == "DELETE":
                del self.records[record["id"]]
                return {"id": record["id"]}, None
            if method in ("PATCH", "PUT"):
                fields = _object(body)
                merged = fields if method == "PUT" else {**record, **fields}
                self._update(record, merged, replace=method == "PUT")
                return _out(record), None
        raise ApiError(405 if rest[:1] == ["dns_records"] else 404, 7001, "Method not allowed for this URI")

    def _zone(self, zone_id: str) -> dict[str, Any]:
        return {
            "id": zone_id,
            "name": self.zones[zone_id],
            "status": "active",
            "paused": False,
            "type": "full",
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        }

    def _list(self, zone_id: str, query: dict[str, str]) -> tuple[Any, dict[str, Any]]:
        zone = self.zones[zone_id]
        found = [r for r in self.records.values() if r["zone_id"] == zone_id]
        if "name" in query:
            name = query["name"].lower().rstrip(".")
            name = zone if name == "@" else name
            found = [r for r in found if r["name"] == name]
        if "type" in query:
            if query["type"] not in TYPES:
                raise ApiError(400, 1004, "DNS Validation Error: invalid record type")
            found = [r for r in found if r["type"] == query["type"]]
        if "content" in query:
            found = [r for r in found if r["content"] == query["content"]]
        if "proxied" in query:
            found = [r for r in found if r["proxied"] == (query["proxied"] == "true")]
        found.sort(key=lambda r: (r["type"], r["name"], r["content"]))
        return _page([_out(r) for r in found], query, default_per_page=100)

    def _create(self, zone_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        for key in ("type", "name", "content"):
            if key not in fields:
                raise ApiError(400, 1004, f"DNS Validation Error: {key} is required")
        now = _now()
        record = {
            "id": uuid.uuid4().hex,
            "zone_id": zone_id,
            "zone_name": self.zones[zone_id],
            "created_on": now,
            "modified_on": now,
        }
        defaults = {"ttl": 1, "proxied": False, "comment": None, "tags": []}
        self._update(record, {**defaults, **fields}, replace=True)
        self.records[record["id"]] = record
        return record

    def _update(self, record: dict[str, Any], fields: dict[str, Any], *, replace: bool) -> None:
        """Validate the record as it would be after the change, then apply it."""
        unknown = set(fields) - WRITABLE - READ_ONLY
        if unknown:
            raise ApiError(400, 9207, f"Request body is invalid: unknown field {sorted(unknown)[0]}")
        zone = self.zones[record["zone_id"]]
        rtype = fields.get("type")
        if rtype not in TYPES:
            raise ApiError(400, 1004, f"DNS Validation Error: invalid record type {rtype!r}")
        name = fields.get("name")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise ApiError(400, 9005 if not name else 1004, "DNS Validation Error: name is invalid")
        name = name.lower().rstrip(".")
        if name == "@":
            name = zone
        elif name != zone and not name.endswith("." + zone):
            name = f"{name}.{zone}"  # Cloudflare reads a name outside the zone as relative
        content = fields.get("content")
        if not isinstance(content, str):
            raise ApiError(400, 9005, "Content is required.")
        content = _content(rtype, content, name)
        ttl = fields.get("ttl", 1)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not (ttl == 1 or 60 <= ttl <= 86400):
            message = "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."
            raise ApiError(400, 9021, message)
        proxied = fields.get("proxied", False if replace else record.get("proxied", False))
        if not isinstance(proxied, bool):
            raise ApiError(400, 9003, "Invalid 'proxied' value, must be a boolean")
        if proxied and rtype not in PROXIABLE:
            raise ApiError(400, 9004, "This record type cannot be proxied.")
        comment = fields.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > 100):
            raise ApiError(400, 9102, "DNS record comment is too long (at most 100 characters).")
        for other in self.records.values():
            if other["id"] == record.get("id") or other["zone_id"] != record["zone_id"]:
                continue
            if other["name"] != name:
                continue
            if rtype in PROXIABLE and other["type"] in PROXIABLE and "CNAME" in (rtype, other["type"]):
                raise ApiError(400, 81053, "An A, AAAA, or CNAME record with that host already exists.")
            if other["type"] == rtype and other["content"] == content:
                raise ApiError(400, 81058, "A record with the same settings already exists.")
        record.update(
            type=rtype,
            name=name,
            content=content,
            proxiable=rtype in PROXIABLE,
            proxied=proxied,
            ttl=1 if proxied else ttl,  # a proxied record's TTL is Cloudflare's: automatic
            comment=comment or None,
            tags=fields.get("tags") or [],
            meta={"auto_added": False, "source": "primary"},
            modified_on=_now(),
        )

    def _batch(self, zone_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """deletes, patches, puts, posts: in that order, all or nothing."""
        unknown = set(body) - {"deletes", "patches", "puts", "posts"}
        if unknown:
            raise ApiError(400, 9207, f"Request body is invalid: unknown field {sorted(unknown)[0]}")
        saved = copy.deepcopy(self.records)
        result: dict[str, list[Any]] = {"deletes": [], "patches": [], "puts": [], "posts": []}
        try:
            for kind in ("deletes", "patches", "puts", "posts"):
                items = body.get(kind, [])
                if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                    raise ApiError(400, 9207, f"Request body is invalid: {kind} must be a list of objects")
                for index, item in enumerate(items):
                    try:
                        result[kind].append(self._batch_one(zone_id, kind, item))
                    except ApiError as error:
                        message = f"{kind}[{index}]: {error.message}"
                        raise ApiError(error.status, error.code, message) from None
        except ApiError:
            self.records = saved  # one transaction: nothing happened
            raise
        return result

    def _batch_one(self, zone_id: str, kind: str, item: dict[str, Any]) -> dict[str, Any]:
        if kind == "posts":
            return _out(self._create(zone_id, item))
        record = self.records.get(str(item.get("id")))
        if record is None or record["zone_id"] != zone_id:
            raise ApiError(404, 81044, "Record does not exist.")
        if kind == "deletes":
            del self.records[record["id"]]
            return _out(record)
        fields = {k: v for k, v in item.items() if k != "id"}
        self._update(record, fields if kind == "puts" else {**record, **fields}, replace=kind == "puts")
        return _out(record)


def _content(rtype: str, content: str, name: str) -> str:
    if rtype in ("A", "AAAA"):
        try:
            address = ipaddress.ip_address(content)
        except ValueError:
            address = None
        if address is None or address.version != (4 if rtype == "A" else 6):
            version = "IPv4" if rtype == "A" else "IPv6"
            message = f"Content for {rtype} record is invalid. Must be a valid {version} address."
            raise ApiError(400, 9005, message)
        return str(address)
    if rtype == "CNAME":
        host = content.lower().rstrip(".")
        if not re.fullmatch(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*", host):
            raise ApiError(400, 9007, "Content for CNAME record is invalid.")
        if host == name:
            raise ApiError(400, 9039, "CNAME content cannot reference itself.")
        return host
    return content


def _out(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API shows it: the documented properties only (the zone is internal)."""
    return {k: copy.deepcopy(v) for k, v in record.items() if k not in INTERNAL}


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, 9207, "Request body is invalid.")
    return body


def _page(items: list[Any], query: dict[str, str], default_per_page: int) -> tuple[Any, dict[str, Any]]:
    try:
        page = int(query.get("page", 1))
        per_page = int(query.get("per_page", default_per_page))
    except ValueError:
        raise ApiError(400, 1004, "page and per_page must be numbers") from None
    if page < 1 or not 1 <= per_page <= 5_000_000:
        raise ApiError(400, 1004, "page must be at least 1 and per_page from 1 to 5000000")
    chunk = items[(page - 1) * per_page : page * per_page]
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": len(items),
        "total_pages": max(1, -(-len(items) // per_page)),
    }
    return chunk, info


def _failure(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return JSONResponse(body, status_code=status, headers=headers)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@contextmanager
def serve(fake: FakeCloudflare, host: str | None = None) -> Iterator[str]:
    """Run the fake on 127.0.0.x in a thread; yield its API base URL; stop it after."""
    host = host or loopback()
    port = free_port(host)
    config = uvicorn.Config(fake.app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake cloudflare", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Cloudflare API did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}{BASE}"
    finally:
        server.should_exit = True
        thread.join(10)
