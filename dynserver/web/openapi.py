"""The OpenAPI 3.1 document of ``/api/v1``: paths, parameters and responses are declared
here; the schema of every body is derived from its type in dynserver.web.schema.

Served at ``/api/v1/openapi.json``; tests/update/test_openapi.py drives every route with
schemathesis from this document, so a route and its description cannot drift apart, and
tests/web/test_schema.py checks the handlers' JSON against the same types.
"""

from __future__ import annotations

from typing import Any

import msgspec

from dynserver import __version__
from dynserver.locations import protocol
from dynserver.propagation import HOSTNAME_PATTERN, MAX_HOSTNAME
from dynserver.web import schema

REF_TEMPLATE = "#/components/schemas/{name}"

# The bodies the paths below name; each type's schema is a $ref into SCHEMAS, which also
# holds every type they use (records, targets, enums...).
_BODIES: tuple[Any, ...] = (
    *schema.RESPONSES,
    schema.ValueUpdateBody,
    schema.Maintenance,
    schema.Force,
    protocol.ResultsBatch,
    schema.ChallengeChange,
)
_BODY_SCHEMAS, SCHEMAS = msgspec.json.schema_components(_BODIES, ref_template=REF_TEMPLATE)


def _schema(body: Any) -> dict[str, Any]:
    """The schema of one of _BODIES (Annotated types compare equal, so index works)."""
    return _BODY_SCHEMAS[_BODIES.index(body)]


def _json(body: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _schema(body)}}}


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


MAX_ID = 2**63 - 1  # SQLite's largest integer: event ids never reach it

# A query parameter's time (parameters are declared here, bodies in dynserver.web.schema).
_TIME = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}

# Every authenticated operation can answer these.
_AUTH_ERRORS = {"401": _error("Unauthorized"), "429": _error("TooManyRequests"), "500": _error("ServerError")}
_ADMIN_ERRORS = {**_AUTH_ERRORS, "403": _error("Forbidden")}


def _in_path(name: str, description: str, example: str) -> dict[str, Any]:
    """A path parameter (a string)."""
    schema = {"type": "string"}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
        "example": example,
    }


_FQDN = _in_path(
    "fqdn",
    "The dynamic record's name, e.g. app.dyn.example.test (a trailing dot is allowed).",
    "app.dyn.example.test",
)
_TARGET = _in_path("name", "The target's name within the record, e.g. bravo.", "bravo")


def _error_body(description: str) -> dict[str, Any]:
    return _json(schema.Error, description)


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
    "TooLarge": _error_body("The body is larger than the endpoint takes."),
    "NoLocations": _error_body("This server has no [locations] table: it takes no agents."),
}

_TARGET_PARAMETERS = [_FQDN, _TARGET]
_MONITOR = _in_path("name", "The monitor's name, e.g. web.", "web")

# -- definitions: the config file, edited (admin) --------------------------------------

_ETAG = {
    "ETag": {
        "description": "The config file's strong ETag (of the whole file): send it as If-Match to change it.",
        "schema": {"type": "string"},
    }
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": True,
    "description": "The ETag of a GET: the change is made only if the file is still that one (else 412).",
    "schema": {"type": "string"},
    "example": '"5d41402abc4b2a76b9719d911017c592..."',
}
_EDIT_ERRORS = {
    "400": _error("BadRequest"),
    "409": _error_body("Editing is off: the config file cannot be written (the detail says why)."),
    "412": _error_body("The config file changed since the ETag sent in If-Match was read."),
    "422": _error_body(
        "The change does not load as a start-up load would (detail: file:line: key: reason); "
        "nothing was written."
    ),
    "428": _error_body("No If-Match: an edit must say which version of the file it changes."),
    **_ADMIN_ERRORS,
}


def _definition_path(
    what: str, body: Any, operation: str, parameters: list[dict[str, Any]]
) -> dict[str, Any]:
    """GET, PUT and DELETE of one definition in the config file."""
    written = {**_json(body, f"The {what} as now written (and live)."), "headers": _ETAG}
    return {
        "parameters": parameters,
        "get": {
            "operationId": f"get{operation}Definition",
            "summary": f"The {what} as the config file has it, with the file's ETag (admin)",
            "responses": {
                "200": {**_json(body, f"The {what}."), "headers": _ETAG},
                "404": _error("NotFound"),
                **_ADMIN_ERRORS,
            },
        },
        "put": {
            "operationId": f"put{operation}Definition",
            "summary": f"Create or replace the {what} in the config file, then reload (admin)",
            "description": "Validated as a start-up load is, written atomically with the file's "
            "comments and layout kept, then reloaded: answered once the change is live.",
            "parameters": [_IF_MATCH],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _schema(body)}}},
            "responses": {
                "200": written,
                "201": {**written, "description": f"The {what} was created, and is live."},
                "404": _error("NotFound"),
                **_EDIT_ERRORS,
            },
        },
        "delete": {
            "operationId": f"delete{operation}Definition",
            "summary": f"Remove the {what} from the config file, then reload (admin)",
            "parameters": [_IF_MATCH],
            "responses": {
                "200": {**_json(schema.Deleted, "Removed, and live."), "headers": _ETAG},
                "404": _error("NotFound"),
                **_EDIT_ERRORS,
            },
        },
    }


ACME_PATH = "/acme/challenges"  # dynserver.web.acme's, relative to the API's mount


def _push(method: str) -> dict[str, Any]:
    """A push monitor's heartbeat: GET for cron one-liners (curl), POST alike."""
    query: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            "status",
            "Up (default) or down: a down heartbeat takes the target down at once.",
            "up",
            {"enum": ["up", "down"]},
        ),
        ("msg", "A message, kept (200 characters) in the heartbeat's reason.", "backup done", {}),
        (
            "ping",
            "A latency to record, in milliseconds (Uptime Kuma's).",
            "42",
            {"pattern": "^[0-9]{1,9}(\\.[0-9]{1,6})?$"},
        ),
    ]
    return {
        "operationId": f"pushHeartbeat{method.capitalize()}",
        "summary": "A push monitor's heartbeat (the token is the secret: no Authorization)",
        "description": "Uptime Kuma's push URL: the target is up while heartbeats arrive within "
        "its monitor's interval x consecutive_down. Tokens come from `dynserver push add`. A "
        "refused token counts towards the client's lockout like a wrong credential.",
        "security": [],
        "parameters": [
            _in_path("token", "The target's push token (printed once by `dynserver push add`).", "k3J...Zq"),
            *(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": text,
                    "schema": {"type": "string", **more},
                    "example": example,
                }
                for name, text, example, more in query
            ),
        ],
        "responses": {
            "200": _json(schema.PushResult, "Taken."),
            "400": _error("BadRequest"),
            "404": _error_body("No target has this token."),
            "409": _error_body("The token's target has no push monitor now (the config changed)."),
            "429": _error("TooManyRequests"),
            "500": _error("ServerError"),
        },
    }


def _challenge(operation: str, summary: str, status: str) -> dict[str, Any]:
    """POST or DELETE of an ACME challenge (admin, or a credential scoped acme:NAME)."""
    return {
        "operationId": operation,
        "summary": f"{summary} (admin or acme:NAME)",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _schema(schema.ChallengeChange)}},
        },
        "responses": {
            status: _json(schema.ChallengeChanged, "Stored and served"),
            "400": _error("BadRequest"),
            "403": _error("Forbidden"),
            "404": _error("NotFound"),
            "409": _error("Conflict"),
            "422": _error("Invalid"),
            **_AUTH_ERRORS,
        },
    }


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "dynserver API",
        "version": __version__,
        "description": "Zones, dynamic records and their targets; address updates, maintenance, "
        "check now, the event log and the locations checks run from; the config file's records, targets "
        "and monitors edited in place (GET with an ETag, PUT and DELETE with If-Match) and reloaded. "
        "Authenticate with "
        "`Authorization: Bearer <secret>` of a credential made by `dynserver credential add` "
        "(agents: the token of `dynserver agent add`).",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        ACME_PATH: {
            "get": {
                "operationId": "listChallenges",
                "summary": "The ACME challenges served that the credential may change",
                "responses": {"200": _json(schema.ChallengeList, "Challenges"), **_AUTH_ERRORS},
            },
            "post": _challenge("addChallenge", "Add (or renew) an ACME challenge TXT value", "201"),
            "delete": _challenge("deleteChallenge", "Delete an ACME challenge TXT value", "200"),
        },
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
                    "200": _json(schema.ZoneList, "The zones."),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/records": {
            "get": {
                "operationId": "listRecords",
                "summary": "Dynamic records, their targets' states and the current answer",
                "responses": {
                    "200": _json(schema.RecordList, "The records."),
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
                    "200": _json(schema.Record, "The record."),
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
                    "200": _json(schema.Propagation, "The record's propagation."),
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
                    "202": _json(schema.Checking, "Checks started; results arrive as health events."),
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
                    "200": _json(schema.Target, "The target."),
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
                    "content": {"application/json": {"schema": _schema(schema.ValueUpdateBody)}},
                },
                "responses": {
                    "200": _json(schema.UpdateResult, "Set (or already so)."),
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
                    "200": _json(schema.MaintenanceResult, "In maintenance."),
                    "404": _error("NotFound"),
                    **_ADMIN_ERRORS,
                },
            },
            "delete": {
                "operationId": "endMaintenance",
                "summary": "End the target's maintenance (admin)",
                "responses": {
                    "200": _json(schema.MaintenanceResult, "Out of maintenance."),
                    "404": _error("NotFound"),
                    **_ADMIN_ERRORS,
                },
            },
            "post": {
                "operationId": "setMaintenance",
                "summary": "Set maintenance on or off (admin)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(schema.Maintenance)}},
                },
                "responses": {
                    "200": _json(schema.MaintenanceResult, "Set."),
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "422": _error("Invalid"),
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/records/{fqdn}/targets/{name}/forced": {
            "parameters": _TARGET_PARAMETERS,
            "put": {
                "operationId": "forceTarget",
                "summary": "Force the target up or down, for a while or until cleared (admin)",
                "description": "gdnsd's admin_state: the target is answered (up) or not (down) whatever "
                "its checks say, which go on meanwhile; maintenance still wins. Kept across restarts; "
                "shown on the target (`forced`: who, since, until, why), in the events (kind forced) "
                "and in /metrics (dynserver_target_forced). A new PUT replaces the forced state.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(schema.Force)}},
                },
                "responses": {
                    "200": _json(schema.ForcedResult, "Forced."),
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "422": _error("Invalid"),
                    **_ADMIN_ERRORS,
                },
            },
            "delete": {
                "operationId": "clearForced",
                "summary": "Clear the target's forced state: back to its checks (admin)",
                "responses": {
                    "200": _json(schema.ForcedResult, "Cleared (changed false: it was not forced)."),
                    "404": _error("NotFound"),
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/reload": {
            "post": {
                "operationId": "reload",
                "summary": "Reload the config file (admin)",
                "description": "The file and every master file are loaded and validated completely "
                "first; on an error nothing changes. What changed is applied as a difference: health "
                "states, values set by updates and check history are kept.",
                "responses": {
                    "200": _json(schema.Reloaded, "The config file is live."),
                    "422": _json(schema.ReloadFailed, "The file does not load; nothing changed."),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/config/records/{fqdn}": _definition_path("record", schema.RecordDefinition, "Record", [_FQDN]),
        "/config/records/{fqdn}/targets/{name}": _definition_path(
            "target", schema.TargetDefinition, "Target", _TARGET_PARAMETERS
        ),
        "/config/monitors/{name}": _definition_path(
            "monitor", schema.MonitorDefinition, "Monitor", [_MONITOR]
        ),
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
                    "200": _json(schema.EventList, "Events."),
                    "400": _error("BadRequest"),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/agent/stream": {
            "get": {
                "operationId": "agentStream",
                "summary": "An agent's stream: who it is, the checks to run, pings (agents only)",
                "description": "One JSON object per line (`type` says which): first `hello` (the "
                "agent's name, the session to name in results, the server's version, the heartbeat, "
                "the canary and every check), then `checks` with the whole set whenever it changes, "
                f"and `ping` every `heartbeat` seconds ({protocol.HEARTBEAT:g}); an agent that hears "
                f"nothing for {protocol.MISSED_HEARTBEATS} heartbeats reconnects. The response ends "
                "at once when the agent is removed (`dynserver agent remove`) or a newer stream of the "
                "same agent opens: one session per agent. Agents send `User-Agent: "
                f"{protocol.AGENT_PRODUCT}/<version>`.",
                "security": [{"agent": []}],
                "responses": {
                    "200": {
                        "description": "The stream, until it is cut.",
                        "content": {
                            protocol.STREAM_CONTENT_TYPE: {"schema": _schema(protocol.StreamMessage)}
                        },
                    },
                    "404": _error("NoLocations"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/agent/results": {
            "post": {
                "operationId": "agentResults",
                "summary": "An agent's results for the checks of its stream (agents only)",
                "description": "The whole batch is checked before any result is applied: a batch "
                "refused for any reason changes nothing. The server stamps each result's arrival "
                "time (the agent's clock is never used) and clamps its latency to the monitor's "
                "timeout. `seq` increases strictly within a session; the canary, when the server "
                "names one, is the agent's own connectivity.",
                "security": [{"agent": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(protocol.ResultsBatch)}},
                },
                "responses": {
                    "200": _json(protocol.Accepted, "Applied: how many results."),
                    "400": _error("BadRequest"),
                    "403": _error_body("A check that was not handed to this agent (recorded as an event)."),
                    "409": _error_body(
                        "An unknown or ended session (the agent opens its stream again), or a seq "
                        "not greater than the last accepted (a replay, recorded as an event)."
                    ),
                    "404": _error("NoLocations"),
                    "413": _error("TooLarge"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/push/{token}": {method: _push(method) for method in ("get", "post")},
        "/locations": {
            "get": {
                "operationId": "listLocations",
                "summary": "The locations checks run from (this server and each agent) and how each is doing",
                "description": "With a [locations] table, each target's health is the vote of the fresh, "
                "non-excluded locations (records and targets then also carry `locations` and `vote`). "
                "Without one, `locations` is empty and `quorum` null: this server alone decides.",
                "responses": {
                    "200": _json(schema.LocationList, "The locations."),
                    **_AUTH_ERRORS,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "A credential's secret."},
            "agent": {
                "type": "http",
                "scheme": "bearer",
                "description": "An agent's token, the last line `dynserver agent add` prints.",
            },
        },
        "schemas": SCHEMAS,
        "responses": _RESPONSES,
    },
}
