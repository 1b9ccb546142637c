"""ACME DNS-01 over HTTP (issue 18), for clients that prefer it to RFC 2136 (acme.sh's
hook style): POST and DELETE ``/api/v1/acme/challenges`` with the challenge's FQDN and
value, GET lists them. The same rules and runtime step as RFC 2136 (dynserver.update.acme,
Runtime.change_challenges): stored before the answer, served at once.

A Bearer credential that is admin or scoped ``acme:NAME`` (NAME and the names under it)
may use them; the routes are mounted inside the API app (create_api's ``more``), so its
errors are the API's JSON errors.
"""

from __future__ import annotations

import logging
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dynserver.config import parse_name
from dynserver.dns import wire
from dynserver.dns.names import name_text
from dynserver.runtime import Runtime
from dynserver.types import Name
from dynserver.update import acme
from dynserver.update.credentials import Principal
from dynserver.update.limits import Block
from dynserver.update.service import Updates
from dynserver.web import schema
from dynserver.web.api import ApiError, _encoded, _json_object, _too_many, _unauthorized
from dynserver.web.client import client_address
from dynserver.web.openapi import ACME_PATH as PATH
from dynserver.web.schema import ErrorCode

log = logging.getLogger("dynserver.update")


def routes(runtime: Runtime, updates: Updates) -> list[Route]:
    """The challenge routes, relative to the API's mount (create_api's ``more``)."""

    async def principal(request: Request) -> Principal:
        client = client_address(request)
        block = updates.admit(client)
        if block is not None:
            raise _too_many(block)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("send Authorization: Bearer <credential secret>")
        found = await updates.bearer(token.strip(), client)
        if isinstance(found, Block):
            raise _too_many(found)
        if found is None:
            raise _unauthorized("the token is not the secret of any credential")
        return found

    async def change(request: Request, op: Literal["add", "delete"]) -> Response:
        who = await principal(request)
        body = await _json_object(request)
        fqdn, value = body.get("fqdn"), body.get("value")
        if not isinstance(fqdn, str) or not isinstance(value, str):
            raise ApiError(
                400, ErrorCode.BAD_REQUEST, 'expected {"fqdn": "_acme-challenge.NAME", "value": "..."}'
            )
        try:
            name = parse_name(acme.check_name(fqdn))
            value = acme.check_value(value)
        except acme.InvalidChallenge as error:
            raise ApiError(422, ErrorCode.INVALID, str(error)) from None
        except Exception:  # dnspython's word on a label too long, an empty label...
            raise ApiError(422, ErrorCode.INVALID, f"{fqdn[:80]!r} is not a domain name") from None
        zone = _zone(runtime, name)
        if zone is None:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"{name_text(name)!r} is in no zone served here")
        if not who.may_challenge(name):
            raise ApiError(
                403,
                ErrorCode.FORBIDDEN,
                f"credential {who.name!r} may not change challenges of {name_text(name)}",
            )
        try:
            rcode = await runtime.change_challenges(
                zone,
                [acme.Change(op, name, value)],
                actor=who.name,
                source=client_address(request) or None,
                via="api",
                max_age=acme.MAX_AGE,
            )
        except Exception:
            log.exception("event=update_failed via=api credential=%s", who.name)
            raise ApiError(
                500, ErrorCode.SERVER_ERROR, "the challenge could not be stored; try again"
            ) from None
        if rcode != wire.NOERROR:
            raise ApiError(
                409,
                ErrorCode.CONFLICT,
                f"{name_text(name)} holds other data or is delegated: no challenge there",
            )
        challenge = runtime.challenges.get((name, value))
        changed = schema.ChallengeChanged(
            fqdn=name_text(name),
            value=value,
            served=challenge is not None,
            expires=challenge.expires if challenge is not None else msgspec.UNSET,
        )
        return _encoded(changed, 201 if op == "add" else 200)

    async def listing(request: Request) -> Response:
        who = await principal(request)
        items = [
            schema.Challenge(
                fqdn=name_text(c.name), value=c.value, added=c.added, expires=c.expires, by=c.actor
            )
            for c in runtime.challenge_list()
            if who.may_challenge(c.name)
        ]
        return _encoded(schema.ChallengeList(challenges=items))

    async def endpoint(request: Request) -> Response:
        # One route for the three methods, so that a 405 lists all of them in Allow.
        if request.method == "POST":
            return await change(request, "add")
        if request.method == "DELETE":
            return await change(request, "delete")
        return await listing(request)

    return [Route(PATH, endpoint, methods=["GET", "POST", "DELETE"])]


def _zone(runtime: Runtime, name: Name) -> Name | None:
    """The most specific served zone that holds ``name``."""
    holding = [origin for origin in runtime.zone_configs if name[len(name) - len(origin) :] == origin]
    return max(holding, key=len, default=None)
