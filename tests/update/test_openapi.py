"""The OpenAPI document against the routes: schemathesis generates requests from the
document (valid and invalid), sends them to a live listener on 127.0.0.x, and checks
that every answer is documented: status code, content type, headers and JSON schema,
and never a server error. A route and its description cannot drift apart."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import missing_required_header, positive_data_acceptance
from starlette.routing import Mount, Route

from dynserver import config
from dynserver.app import App
from dynserver.update import credentials
from dynserver.update.limits import LimitPolicy
from dynserver.web import openapi
from dynserver.web.app import create_app
from tests.support import free_port, loopback
from tests.update.common import live_server, write_config

# Schemathesis sends thousands of requests from one address: the limits are lifted here
# (they have their own tests); lockout stays on, at a level these requests never reach.
GENEROUS = LimitPolicy(
    burst=1_000_000, rate=1_000_000.0, client_failures=1_000_000, credential_failures=1_000_000
)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live listener whose config has the document's example record and target."""
    # The propagation route asks the resolvers: one on 127.0.0.x where nothing listens
    # (refused at once), never the public defaults.
    quiet = loopback()
    web = f'\n[web]\nresolvers = ["{quiet}:{free_port(quiet)}"]\npropagation_timeout = 0.5\n'
    with live_server(tmp_path_factory.mktemp("openapi"), limits=GENEROUS, extra=web) as server:
        server.add(ADMIN)
        yield server.url


# The document as the code holds it; test_the_served_document_is_this_one checks that the
# listener serves exactly this. (schemathesis.pytest.from_fixture would load it from the
# listener, but does not work with pytest 9 yet.)
schema = schemathesis.openapi.from_dict(openapi.DOCUMENT)
# An edit's If-Match is evaluated before its body (RFC 9110 13.2.2): a body that breaks the
# schema, sent with an ETag that is not the file's, is answered 412 (documented).
schema.config.checks.negative_data_rejection.expected_statuses.append("412")
# Made before collection (schemathesis builds some cases then); stored by the fixture.
ADMIN, ADMIN_SECRET = credentials.create("root", admin=True, targets=(), now=0.0)


@schema.auth()
class Bearer:
    """Registered as the schema's auth, so schemathesis knows the header it adds and can
    still test what happens without it (401) instead of having it put back."""

    def get(self, case: Case, context: schemathesis.AuthContext) -> str:
        return ADMIN_SECRET

    def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_answers_as_documented(case: Case, url: str) -> None:
    excluded = []
    if case.operation.label == "PUT /records/{fqdn}/targets/{name}":
        # Whether a value is valid depends on the record's type (an IPv4 address for A,
        # IPv6 for AAAA, a host name for CNAME), which one schema for every record cannot
        # say; such a value is answered 422, as documented, not accepted.
        excluded.append(positive_data_acceptance)
    if case.operation.path.startswith("/config/") and case.method.upper() != "GET":
        # Whether a definition is valid depends on the rest of the config file (the monitor
        # a record names, the record type of a target's value...), and whether If-Match
        # is the file's ETag on the file as earlier cases left it: such a request is
        # answered 412 or 422, as documented, not accepted. And an edit without If-Match
        # is 428 Precondition Required (RFC 6585, documented), the status for exactly that.
        excluded += [positive_data_acceptance, missing_required_header]
    if case.operation.path.startswith("/agent/"):
        # This server has no [locations] table: the agents' endpoints answer 404 (documented)
        # to every request, with a token or without.
        excluded.append(missing_required_header)
    case.call_and_validate(base_url=f"{url}/api/v1", excluded_checks=excluded)


def test_the_document_covers_every_api_route(tmp_path: Path) -> None:
    """Every route the app has is in the document, with the same methods."""
    app = create_app(App(config.load(write_config(tmp_path))).runtime)
    [api] = [r for r in app.routes if isinstance(r, Mount) and r.path == "/api/v1"]
    # The agents' endpoints (dynserver.web.agents) are mounted beside the API, under its prefix.
    beside = [r for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/v1/")]
    routes: dict[str, set[str]] = {}
    for route in [*api.routes, *beside]:
        assert isinstance(route, Route)
        path = route.path.removeprefix("/api/v1")
        routes.setdefault(path, set()).update(m.lower() for m in route.methods or () if m != "HEAD")
    documented = {
        path: {m for m in item if m in ("get", "put", "post", "delete", "patch")}
        for path, item in openapi.DOCUMENT["paths"].items()
    }
    assert routes == documented


def test_the_served_document_is_this_one(url: str) -> None:
    with urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=10) as response:
        assert json.loads(response.read()) == json.loads(json.dumps(openapi.DOCUMENT))
