"""The OpenAPI 3 document of ``/api/v1``, written by hand so it says what we mean.

Served at ``/api/v1/openapi.json``; tests/update/test_openapi.py drives every route with
schemathesis from this document, so a route and its description cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from dynserver import __version__
from dynserver.propagation import HOSTNAME_PATTERN, MAX_HOSTNAME, SOURCES, STATUSES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


MAX_ID = 2**63 - 1  # SQLite's largest integer: event ids never reach it

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_INTEGER = {"type": ["integer", "null"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_STATUS = {
    "type": "string",
    "enum": list(STATUSES),
    "description": "in_sync: our answer (and, for a nameserver, one of our serials); stale: it "
    "answers, but an older serial or another answer; error: no usable reply (timeout, refused, "
    "SERVFAIL, REFUSED, lame).",
}

# Every authenticated operation can answer these.
_AUTH_ERRORS = {"401": _error("Unauthorized"), "429": _error("TooManyRequests"), "500": _error("ServerError")}
_ADMIN_ERRORS = {**_AUTH_ERRORS, "403": _error("Forbidden")}

_FQDN = {
    "name": "fqdn",
    "in": "path",
    "required": True,
    "description": "The dynamic record's name, e.g. app.dyn.example.test (a trailing dot is allowed).",
    "schema": {"type": "string"},
    "example": "app.dyn.example.test",
}
_TARGET = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The target's name within the record, e.g. bravo.",
    "schema": {"type": "string"},
    "example": "bravo",
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {
                "type": "string",
                "description": "A short code: bad_request, unauthorized, forbidden, not_found, "
                "method_not_allowed, conflict, invalid, too_many_requests, server_error.",
            },
            "detail": {"type": "string", "description": "What went wrong and what was expected."},
        },
    },
    "Zone": {
        "type": "object",
        "required": ["name", "serial", "records"],
        "properties": {
            "name": {"type": "string"},
            "serial": {"type": "integer"},
            "records": {"type": "array", "items": {"type": "string"}, "description": "Dynamic records."},
        },
    },
    "LastResult": {
        "type": ["object", "null"],
        "required": ["ok", "reason", "at", "latency"],
        "properties": {
            "ok": {"type": "boolean"},
            "reason": {"type": "string", "description": 'e.g. "status 200", "timeout", "refused".'},
            "at": {"type": "number", "description": "Unix time of the check."},
            "latency": _NULLABLE_NUMBER,
        },
    },
    "Target": {
        "type": "object",
        "required": [
            "name",
            "hostname",
            "value",
            "configured_value",
            "value_set_at",
            "priority",
            "health",
            "observed",
            "maintenance",
            "since",
            "last_result",
        ],
        "properties": {
            "name": {"type": "string"},
            "hostname": {"type": "string", "description": "<target>.<record>: answers the value in DNS."},
            "value": {**_NULLABLE_STRING, "description": "The current value (null until the first update)."},
            "configured_value": _NULLABLE_STRING,
            "value_set_at": {**_NULLABLE_NUMBER, "description": "Unix time of the last update, if any."},
            "priority": {"type": "integer", "description": "Lower is preferred."},
            "health": {"type": "string", "enum": ["unknown", "up", "down", "pending", "maintenance"]},
            "observed": {
                "type": "string",
                "enum": ["unknown", "up", "down", "pending"],
                "description": "What checks observe, maintenance aside.",
            },
            "maintenance": {"type": "boolean"},
            "since": {**_NULLABLE_NUMBER, "description": "Unix time the health last changed."},
            "last_result": _ref("LastResult"),
        },
    },
    "Answer": {
        "type": "object",
        "required": ["values", "targets", "reason", "priority", "ttl"],
        "properties": {
            "values": {"type": "array", "items": {"type": "string"}},
            "targets": {"type": "array", "items": {"type": "string"}},
            "reason": {"type": "string", "description": "Why these values are answered."},
            "priority": {"type": ["integer", "null"], "description": "The priority group answered."},
            "ttl": {"type": "integer"},
        },
    },
    "Record": {
        "type": "object",
        "required": ["name", "zone", "type", "ttl", "monitor", "policy", "fallback", "answer", "targets"],
        "properties": {
            "name": {"type": "string"},
            "zone": {"type": "string"},
            "type": {"type": "string", "enum": ["A", "AAAA", "CNAME"]},
            "ttl": {"type": "integer"},
            "monitor": _NULLABLE_STRING,
            "policy": {"type": "string", "enum": ["failover", "check-only"]},
            "fallback": {"type": "string", "enum": ["preferred", "all", "none"]},
            "answer": _ref("Answer"),
            "targets": {"type": "array", "items": _ref("Target")},
        },
    },
    "ValueUpdate": {
        "type": "object",
        "description": 'The new value: {"value": ...}, or seed 000\'s {"ip": ..., "name": ...}. '
        'An empty string means "the address this request comes from".',
        "anyOf": [{"required": ["value"]}, {"required": ["ip"]}],
        "properties": {
            "value": {"type": "string", "examples": ["192.0.2.10"]},
            "ip": {"type": "string"},
            "name": {"type": "string", "description": "If given, must be the target named in the URL."},
        },
    },
    "UpdateResult": {
        "type": "object",
        "required": ["changed", "previous", "target"],
        "properties": {
            "changed": {"type": "boolean", "description": "False: the target had this value already."},
            "previous": _NULLABLE_STRING,
            "target": _ref("Target"),
        },
    },
    "Maintenance": {
        "type": "object",
        "required": ["maintenance"],
        "properties": {"maintenance": {"type": "boolean"}},
    },
    "MaintenanceResult": {
        "type": "object",
        "required": ["changed", "target"],
        "properties": {"changed": {"type": "boolean"}, "target": _ref("Target")},
    },
    "Event": {
        "type": "object",
        "required": [
            "id",
            "at",
            "kind",
            "record",
            "target",
            "result",
            "reason",
            "previous",
            "current",
            "actor",
            "detail",
        ],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "number", "description": "Unix time."},
            "kind": {
                "type": "string",
                "description": (
                    "health, answer, maintenance, update, check, auth, credential, mirror, notify, system."
                ),
            },
            "record": _NULLABLE_STRING,
            "target": _NULLABLE_STRING,
            "result": _NULLABLE_STRING,
            "reason": _NULLABLE_STRING,
            "previous": _NULLABLE_STRING,
            "current": _NULLABLE_STRING,
            "actor": {**_NULLABLE_STRING, "description": "The credential (or key) that caused it."},
            "detail": {"type": ["object", "null"]},
        },
    },
    "PropagationNameserver": {
        "type": "object",
        "required": ["name", "addresses", "error"],
        "properties": {
            "name": {"type": "string"},
            "addresses": _STRINGS,
            "error": {**_NULLABLE_STRING, "description": "Why no address was found."},
        },
    },
    "PropagationServer": {
        "type": "object",
        "description": "An authoritative server, asked directly (RD=0) for the record and the SOA.",
        "required": [
            "address",
            "port",
            "names",
            "sources",
            "status",
            "reason",
            "rcode",
            "aa",
            "answer",
            "ttl",
            "serial",
            "latency",
        ],
        "properties": {
            "address": {**_NULLABLE_STRING, "description": "null: the name has no address."},
            "port": {"type": "integer"},
            "names": {**_STRINGS, "description": "The NS names with this address."},
            "sources": {
                "type": "array",
                "items": {"type": "string", "enum": list(SOURCES)},
                "description": "delegation: the parent's NS set; zone: our apex NS; secondary: configured.",
            },
            "status": _STATUS,
            "reason": {"type": "string"},
            "rcode": {**_NULLABLE_STRING, "description": "null: no reply."},
            "aa": {"type": ["boolean", "null"]},
            "answer": _STRINGS,
            "ttl": _NULLABLE_INTEGER,
            "serial": _NULLABLE_INTEGER,
            "latency": {**_NULLABLE_NUMBER, "description": "Seconds."},
        },
    },
    "PropagationResolver": {
        "type": "object",
        "description": "A configured resolver, asked with recursion (RD=1).",
        "required": ["address", "port", "status", "reason", "rcode", "answer", "ttl", "latency"],
        "properties": {
            "address": {"type": "string"},
            "port": {"type": "integer"},
            "status": _STATUS,
            "reason": {"type": "string"},
            "rcode": _NULLABLE_STRING,
            "answer": _STRINGS,
            "ttl": {**_NULLABLE_INTEGER, "description": "What the resolver has left of its cache."},
            "latency": _NULLABLE_NUMBER,
        },
    },
    "PropagationMirror": {
        "type": "object",
        "description": "A mirrored name: the provider's last known record and last reply.",
        "required": [
            "mirror",
            "kind",
            "name",
            "type",
            "status",
            "state",
            "desired",
            "provider",
            "records",
            "last_reply",
            "last_error",
            "last_attempt",
            "last_ok",
        ],
        "properties": {
            "mirror": {"type": "string"},
            "kind": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "status": _STATUS,
            "state": {"type": "string", "enum": ["pending", "ok", "retrying", "failed"]},
            "desired": _STRINGS,
            "provider": {"type": ["array", "null"], "items": {"type": "string"}},
            "records": {"type": "array", "items": {"type": "object"}},
            "last_reply": {"type": "string"},
            "last_error": _NULLABLE_STRING,
            "last_attempt": _NULLABLE_NUMBER,
            "last_ok": _NULLABLE_NUMBER,
        },
    },
    "CnameCheck": {
        "type": ["object", "null"],
        "description": "The hostname's CNAME chain, through the first resolver (null: no hostname given).",
        "required": [
            "hostname",
            "resolver",
            "hops",
            "end",
            "answer",
            "rcode",
            "reaches_record",
            "reason",
            "error",
        ],
        "properties": {
            "hostname": {"type": "string"},
            "resolver": _NULLABLE_STRING,
            "hops": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "cname", "ttl"],
                    "properties": {
                        "name": {"type": "string"},
                        "cname": {"type": "string"},
                        "ttl": {"type": "integer"},
                    },
                },
            },
            "end": {"type": "string"},
            "answer": _STRINGS,
            "rcode": _NULLABLE_STRING,
            "reaches_record": {"type": "boolean"},
            "reason": {"type": "string"},
            "error": _NULLABLE_STRING,
        },
    },
    "Propagation": {
        "type": "object",
        "required": [
            "record",
            "type",
            "zone",
            "checked_at",
            "duration",
            "timeout",
            "age",
            "expected",
            "summary",
            "warnings",
            "delegation",
            "zone_nameservers",
            "nameservers",
            "resolvers",
            "mirrors",
            "cname_check",
        ],
        "properties": {
            "record": {"type": "string"},
            "type": {"type": "string", "enum": ["A", "AAAA", "CNAME"]},
            "zone": {"type": "string"},
            "checked_at": {"type": "number", "description": "Unix time the check finished."},
            "duration": {"type": "number", "description": "Seconds the check took."},
            "timeout": {"type": "number", "description": "Seconds each query may take."},
            "age": {"type": "number", "description": "Seconds since the check (results are shared briefly)."},
            "expected": {
                "type": "object",
                "description": "What dynserver answers now.",
                "required": ["answer", "ttl", "serial", "rcode"],
                "properties": {
                    "answer": _STRINGS,
                    "ttl": _NULLABLE_INTEGER,
                    "serial": {"type": "integer"},
                    "rcode": {"type": "string"},
                },
            },
            "summary": {
                "type": "object",
                "required": list(STATUSES),
                "properties": {status: {"type": "integer"} for status in STATUSES},
            },
            "warnings": {**_STRINGS, "description": "Where the delegation and the zone's NS set disagree."},
            "delegation": {
                "type": "object",
                "required": ["parent", "source", "nameservers", "error"],
                "properties": {
                    "parent": _NULLABLE_STRING,
                    "source": {"type": "string", "enum": ["parent", "resolver", "none"]},
                    "nameservers": {"type": "array", "items": _ref("PropagationNameserver")},
                    "error": _NULLABLE_STRING,
                },
            },
            "zone_nameservers": {"type": "array", "items": _ref("PropagationNameserver")},
            "nameservers": {"type": "array", "items": _ref("PropagationServer")},
            "resolvers": {"type": "array", "items": _ref("PropagationResolver")},
            "mirrors": {"type": "array", "items": _ref("PropagationMirror")},
            "cname_check": _ref("CnameCheck"),
        },
    },
}


def _error_body(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_RESPONSES = {
    "BadRequest": _error_body("The request cannot be read (not JSON, a bad parameter)."),
    "Unauthorized": {
        **_error_body("No Bearer token, or not the secret of any credential."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "Forbidden": _error_body("The credential may not do this."),
    "NotFound": _error_body("No such record or target."),
    "Conflict": _error_body("The request contradicts the resource."),
    "Invalid": _error_body("Readable, but not a valid value."),
    "TooManyRequests": {
        **_error_body("Rate-limited, or locked out after failed authentications."),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    "ServerError": _error_body("Our fault (e.g. the database did not commit); try again."),
}

_TARGET_PARAMETERS = [_FQDN, _TARGET]

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "dynserver API",
        "version": __version__,
        "description": "Zones, dynamic records and their targets; address updates, maintenance, "
        "check now and the event log. Authenticate with `Authorization: Bearer <secret>` of a "
        "credential made by `dynserver credential add`.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
        "/zones": {
            "get": {
                "operationId": "listZones",
                "summary": "Zones served, with their serials and dynamic records",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["zones"],
                            "properties": {"zones": {"type": "array", "items": _ref("Zone")}},
                        },
                        "The zones.",
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/records": {
            "get": {
                "operationId": "listRecords",
                "summary": "Dynamic records, their targets' states and the current answer",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["records"],
                            "properties": {"records": {"type": "array", "items": _ref("Record")}},
                        },
                        "The records.",
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/records/{fqdn}": {
            "parameters": [_FQDN],
            "get": {
                "operationId": "getRecord",
                "summary": "One dynamic record with its targets",
                "responses": {
                    "200": _json(_ref("Record"), "The record."),
                    "404": _error("NotFound"),
                    **_AUTH_ERRORS,
                },
            },
        },
        "/records/{fqdn}/propagation": {
            "parameters": [_FQDN],
            "get": {
                "operationId": "getPropagation",
                "summary": "Who answers what dynserver answers: nameservers, resolvers, mirrors",
                "description": "Every authoritative server (the parent's delegation, the zone's NS set, "
                "the configured secondaries) asked directly, every configured resolver asked with "
                "recursion, each marked in_sync, stale or error. Queries run concurrently with a short "
                "timeout ([web] propagation_timeout). A check is shared for 2 s, and new checks are "
                "budgeted (429 with Retry-After when spent).",
                "parameters": [
                    {
                        "name": "hostname",
                        "in": "query",
                        "description": "A static hostname whose CNAME chain is followed through the "
                        "first resolver, to see whether it reaches this record (cname_check).",
                        "schema": {
                            "type": "string",
                            "pattern": HOSTNAME_PATTERN,
                            "minLength": 3,
                            "maxLength": MAX_HOSTNAME,
                        },
                        "example": "www.example.com",
                    }
                ],
                "responses": {
                    "200": _json(_ref("Propagation"), "The record's propagation."),
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    **_AUTH_ERRORS,
                },
            },
        },
        "/records/{fqdn}/check": {
            "parameters": [_FQDN],
            "post": {
                "operationId": "checkRecord",
                "summary": "Check the record's targets now (admin)",
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "required": ["checking"],
                            "properties": {"checking": {"type": "array", "items": {"type": "string"}}},
                        },
                        "Checks started; results arrive as health events.",
                    ),
                    "404": _error("NotFound"),
                    "409": _error("Conflict"),
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/records/{fqdn}/targets/{name}": {
            "parameters": _TARGET_PARAMETERS,
            "get": {
                "operationId": "getTarget",
                "summary": "One target's value and state",
                "responses": {
                    "200": _json(_ref("Target"), "The target."),
                    "404": _error("NotFound"),
                    **_AUTH_ERRORS,
                },
            },
            "put": {
                "operationId": "setTargetValue",
                "summary": "Set the target's value (admin, or a credential scoped to it)",
                "description": "Stored before the reply, live in DNS at once (also when the target "
                "is the one answered now), and checked at once.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ValueUpdate")}},
                },
                "responses": {
                    "200": _json(_ref("UpdateResult"), "Set (or already so)."),
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "409": _error("Conflict"),
                    "422": _error("Invalid"),
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/records/{fqdn}/targets/{name}/maintenance": {
            "parameters": _TARGET_PARAMETERS,
            "put": {
                "operationId": "startMaintenance",
                "summary": "Drain the target (admin)",
                "responses": {
                    "200": _json(_ref("MaintenanceResult"), "In maintenance."),
                    "404": _error("NotFound"),
                    **_ADMIN_ERRORS,
                },
            },
            "delete": {
                "operationId": "endMaintenance",
                "summary": "End the target's maintenance (admin)",
                "responses": {
                    "200": _json(_ref("MaintenanceResult"), "Out of maintenance."),
                    "404": _error("NotFound"),
                    **_ADMIN_ERRORS,
                },
            },
            "post": {
                "operationId": "setMaintenance",
                "summary": "Set maintenance on or off (admin)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Maintenance")}},
                },
                "responses": {
                    "200": _json(_ref("MaintenanceResult"), "Set."),
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "422": _error("Invalid"),
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/events": {
            "get": {
                "operationId": "listEvents",
                "summary": "The event log, newest first (admin)",
                "parameters": [
                    {
                        "name": "record",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Record FQDN.",
                    },
                    {"name": "target", "in": "query", "schema": {"type": "string"}},
                    {"name": "kind", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "since",
                        "in": "query",
                        "schema": _TIME,
                        "description": "From this time: Unix seconds or ISO 8601.",
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "schema": _TIME,
                        "description": "Before this time: Unix seconds or ISO 8601.",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        "description": "Only events with a smaller id (the next page: next_before).",
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["events", "next_before"],
                            "properties": {
                                "events": {"type": "array", "items": _ref("Event")},
                                "next_before": {"type": ["integer", "null"]},
                            },
                        },
                        "Events.",
                    ),
                    "400": _error("BadRequest"),
                    **_ADMIN_ERRORS,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "A credential's secret."}
        },
        "schemas": _SCHEMAS,
        "responses": _RESPONSES,
    },
}
