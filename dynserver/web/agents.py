"""The agents' endpoints: GET /api/v1/agent/stream (checks, as NDJSON lines) and POST
/api/v1/agent/results. HTTP only: who the agent is and what its input may do is the hub's
(dynserver.locations.hub); errors are the API's JSON bodies."""

from __future__ import annotations

import contextlib

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dynserver.locations import protocol
from dynserver.locations.hub import AgentRefused, Hub, Session
from dynserver.web.api import error_response
from dynserver.web.client import client_address
from dynserver.web.schema import ErrorCode

API = "/api/v1"  # where dynserver.web.app mounts the API, and these routes with it

_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    429: ErrorCode.TOO_MANY_REQUESTS,
}


def routes(hub: Hub) -> list[Route]:
    """The agents' routes, relative to the API's mount (create_api's ``more``)."""

    async def stream(request: Request) -> Response:
        client = client_address(request)
        try:
            agent = await hub.authenticate(request.headers.get("authorization"), client)
            session = hub.open(agent, request.headers.get("user-agent"), client)
        except AgentRefused as refused:
            return _refusal(refused)
        return _Stream(hub, session)

    async def results(request: Request) -> Response:
        client = client_address(request)
        try:
            agent = await hub.authenticate(request.headers.get("authorization"), client)
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > protocol.MAX_BODY:
                raise hub.oversized(agent, client)
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > protocol.MAX_BODY:  # stop reading: the rest is never buffered
                    raise hub.oversized(agent, client)
            accepted = await hub.results(agent, bytes(body), client)
        except AgentRefused as refused:
            return _refusal(refused)
        return Response(msgspec.json.encode(protocol.Accepted(accepted)), media_type="application/json")

    return [
        Route(protocol.STREAM_PATH.removeprefix(API), stream, methods=["GET"]),
        Route(protocol.RESULTS_PATH.removeprefix(API), results, methods=["POST"]),
    ]


def _refusal(refused: AgentRefused) -> Response:
    headers: dict[str, str] = {}
    if refused.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dynserver"'
    if refused.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(refused.retry_after)))
    code = _CODES.get(refused.status, ErrorCode.ERROR)
    return error_response(refused.status, code, refused.detail, headers or None)


class _Stream(StreamingResponse):
    """The hub's lines as they come, without buffering. Unlike StreamingResponse, it hears
    the agent hang up while nothing is sent (the session ends at once, not at the next
    ping), and closes the hub's generator itself, so the session always ends here."""

    def __init__(self, hub: Hub, session: Session) -> None:
        self._hub = hub
        self._session = session
        super().__init__(
            iter(()), media_type=protocol.STREAM_CONTENT_TYPE, headers={"Cache-Control": "no-store"}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def hangup() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        lines = self._hub.stream(self._session, hangup)
        async with contextlib.aclosing(lines):
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            try:
                async for line in lines:
                    await send({"type": "http.response.body", "body": line, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the agent is gone (ASGI 2.4 servers raise on send)
                return
