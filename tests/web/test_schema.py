"""The API's typed bodies (dynserver.web.schema) against the OpenAPI document and the
handlers: every field and enum value of the types is in the document, the document is
valid OpenAPI 3.1, and what each handler sends both validates against the document and
decodes into its type exactly (no field more, none less), so none of the three can drift."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, cast

import httpx
import jsonschema_rs
import msgspec
import msgspec.inspect as mi
import pytest
import schemathesis

from dynserver import propagation
from dynserver.health.state import Health
from dynserver.mirror.worker import MirrorState
from dynserver.propagation.body import Summary
from dynserver.update import credentials
from dynserver.web import openapi, schema
from tests.support import free_port, loopback
from tests.update.common import APP, live_server

COMPONENTS: dict[str, Any] = openapi.DOCUMENT["components"]["schemas"]


def _walk(info: mi.Type, seen: dict[type, mi.Type]) -> None:
    """Every Struct and enum reachable from ``info``, by class."""
    if isinstance(info, (mi.StructType, mi.EnumType)):
        if info.cls in seen:
            return
        seen[info.cls] = info
    children: list[mi.Type] = []
    if isinstance(info, mi.StructType):
        children = [f.type for f in info.fields]
    elif isinstance(info, (mi.ListType, mi.Metadata)):
        children = [info.item_type if isinstance(info, mi.ListType) else info.type]
    elif isinstance(info, mi.UnionType):
        children = list(info.types)
    elif isinstance(info, mi.DictType):
        children = [info.key_type, info.value_type]
    for child in children:
        _walk(child, seen)


def _reachable() -> dict[type, mi.Type]:
    seen: dict[type, mi.Type] = {}
    for info in mi.multi_type_info((*schema.RESPONSES, *schema.REQUESTS)):
        _walk(info, seen)
    return seen


def test_the_document_is_valid_openapi_3_1() -> None:
    assert openapi.DOCUMENT["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(openapi.DOCUMENT).validate()


def test_every_field_and_enum_value_of_the_types_is_in_the_document() -> None:
    reachable = _reachable()
    assert schema.Target in reachable and Health in reachable  # the walk goes deep
    for cls, info in reachable.items():
        component = COMPONENTS[cls.__name__]
        if isinstance(info, mi.EnumType):
            assert sorted(component["enum"]) == sorted(member.value for member in info.cls), cls
        else:
            assert isinstance(info, mi.StructType)
            # A tagged Struct (the agent stream's lines) has its tag as its first property.
            tag = [info.tag_field] if info.tag_field else []
            assert list(component["properties"]) == [*tag, *(f.encode_name for f in info.fields)], cls
            assert component["required"] == [*tag, *(f.encode_name for f in info.fields if f.required)], cls
    # and the document names no body schema that is not one of the types
    assert set(COMPONENTS) == {cls.__name__ for cls in reachable}


def test_every_body_of_the_document_is_a_type() -> None:
    """No operation writes a body's schema inline: each is a $ref to a type's component."""
    for path, item in openapi.DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            bodies = [r.get("content", {}) for r in operation["responses"].values()]
            bodies.append(operation.get("requestBody", {}).get("content", {}))
            for content in bodies:
                for media in content.values():
                    if media:
                        # one type, or one of several (the agent stream's lines)
                        body = media["schema"]
                        options = [body] if "$ref" in body else body["anyOf"]
                        for option in options:
                            assert option["$ref"].startswith("#/components/schemas/"), (path, method)


def test_the_propagation_values_are_propagations_own() -> None:
    """The document's closed sets are the ones the domain sets (no copy in web), and the
    summary counts each status."""
    reachable = _reachable()
    domain = (propagation.PropagationStatus, propagation.NameserverSource, propagation.DelegationSource)
    for cls in (*domain, MirrorState):
        assert cls in reachable, cls
    assert {cls.__module__ for cls in domain} == {"dynserver.propagation.model"}
    assert MirrorState.__module__ == "dynserver.mirror.worker"
    assert tuple(Summary.__struct_fields__) == tuple(propagation.PropagationStatus)


# -- what the handlers send -------------------------------------------------------------

ADMIN, SECRET = credentials.create("root", admin=True, targets=(), now=time.time())


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A live listener; its propagation checks ask one resolver on 127.0.0.x where nothing
    listens (refused at once), never the public defaults."""
    quiet = loopback()
    web = f'\n[web]\nresolvers = ["{quiet}:{free_port(quiet)}"]\npropagation_timeout = 0.5\n'
    with live_server(tmp_path_factory.mktemp("schema"), extra=web) as server:
        server.add(ADMIN)
        headers = {"Authorization": f"Bearer {SECRET}"}
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=10) as client:
            yield client


def _operation(template: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = openapi.DOCUMENT["paths"][template][method.lower()]
    return operation


def _response_schema(template: str, method: str, status: int) -> dict[str, Any]:
    response = _operation(template, method)["responses"][str(status)]
    if "$ref" in response:  # a shared error response
        response = openapi.DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    body: dict[str, Any] = response["content"]["application/json"]["schema"]
    return body


def _validator(body_schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A JSON Schema 2020-12 validator (OpenAPI 3.1's dialect) that resolves the $refs."""
    return jsonschema_rs.Draft202012Validator({**body_schema, "components": openapi.DOCUMENT["components"]})


def _type(body_schema: dict[str, Any]) -> type[schema.ResponseBody]:
    found = getattr(schema, body_schema["$ref"].rsplit("/", 1)[1])
    assert issubclass(found, schema.ResponseBody)
    return cast(type[schema.ResponseBody], found)


def check_body(template: str, response: httpx.Response) -> msgspec.Struct:
    """The response against its operation in the document and against the type the
    document names: valid, and exactly that type's encoding."""
    body_schema = _response_schema(template, response.request.method, response.status_code)
    validator = _validator(body_schema)
    validator.validate(response.json())
    decoded = msgspec.json.decode(response.content, type=_type(body_schema))
    assert json.loads(msgspec.json.encode(decoded)) == response.json()
    return decoded


RECORD = "/records/{fqdn}"
TARGET = RECORD + "/targets/{name}"
MAINTENANCE = TARGET + "/maintenance"
BRAVO = f"/records/{APP}/targets/bravo"

# (path template, method, URL, JSON body, expected status): every operation with a body,
# and every error response the document names for it, in an order that leaves events.
CASES: list[tuple[str, str, str, Any, int]] = [
    ("/zones", "GET", "/zones", None, 200),
    ("/records", "GET", "/records", None, 200),
    (RECORD, "GET", f"/records/{APP}", None, 200),
    (RECORD, "GET", "/records/nope.dyn.example.test", None, 404),
    (TARGET, "GET", BRAVO, None, 200),
    (TARGET, "PUT", BRAVO, {"value": "192.0.2.23"}, 200),
    (TARGET, "PUT", BRAVO, {"ip": "", "name": "bravo"}, 200),
    (TARGET, "PUT", BRAVO, {"value": "not an address"}, 422),
    (TARGET, "PUT", BRAVO, {"value": "192.0.2.23", "name": "zulu"}, 409),
    (MAINTENANCE, "PUT", f"{BRAVO}/maintenance", None, 200),
    (MAINTENANCE, "DELETE", f"{BRAVO}/maintenance", None, 200),
    (MAINTENANCE, "POST", f"{BRAVO}/maintenance", {"maintenance": True}, 200),
    (MAINTENANCE, "POST", f"{BRAVO}/maintenance", {"maintenance": "yes"}, 422),
    (RECORD + "/check", "POST", "/records/mon.dyn.example.test/check", None, 202),
    (RECORD + "/check", "POST", f"/records/{APP}/check", None, 409),
    ("/events", "GET", "/events?limit=2", None, 200),
    ("/events", "GET", "/events?colour=red", None, 400),
    (RECORD + "/propagation", "GET", f"/records/{APP}/propagation", None, 200),
    (RECORD + "/propagation", "GET", f"/records/{APP}/propagation?hostname=www.example.com", None, 200),
]


def test_every_handler_sends_its_documented_type(api: httpx.Client) -> None:
    sent: dict[str, msgspec.Struct] = {}
    for template, method, url, body, status in CASES:
        response = api.request(method, url, json=body)
        assert response.status_code == status, (method, url, response.text)
        sent[f"{method} {url}"] = check_body(template, response)
    # the bodies reached the parts of the types that are often empty or null
    events = sent["GET /events?limit=2"]
    assert isinstance(events, schema.EventList) and len(events.events) == 2
    assert events.next_before is not None
    chained = sent[f"GET /records/{APP}/propagation?hostname=www.example.com"]
    assert isinstance(chained, schema.Propagation) and chained.cname_check is not None
    unauthorized = httpx.get(f"{api.base_url}zones", timeout=10)
    assert isinstance(check_body("/zones", unauthorized), schema.Error)


def test_a_drifted_body_fails_both_checks(api: httpx.Client) -> None:
    """What the checks above catch: a field more (or less) than the type has."""
    target = api.get(BRAVO).json()
    body_schema = _response_schema(TARGET, "GET", 200)
    validator = _validator(body_schema)
    for drifted in ({**target, "colour": "red"}, {k: v for k, v in target.items() if k != "since"}):
        assert not validator.is_valid(drifted)
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(json.dumps(drifted), type=schema.Target)
    assert not validator.is_valid({**target, "observed": "maintenance"})
