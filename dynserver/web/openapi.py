"""The OpenAPI 3 document of ``/api/v1``, written by hand so it says what we mean.

Served at ``/api/v1/openapi.json``; tests/update/test_openapi.py drives every route with
schemathesis from this document, so a route and its description cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from dynserver import __version__


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
                "description": "health, answer, maintenance, update, credential, mirror, notify, system.",
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
