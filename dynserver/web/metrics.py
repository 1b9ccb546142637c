"""``GET /metrics``: the Prometheus text format of dynserver.metrics.

Who may read it (docs/operations.md):

- with ``[web] metrics_token`` (or DYNSERVER_METRICS_TOKEN) set: only a request with
  ``Authorization: Bearer <token>``, whatever else is configured. Prometheus sends it
  with ``authorization: {credentials_file: ...}``; wrong tokens count as failed logins
  and lock the client out like them;
- without a token: whoever may read the pages. That is anyone when they are public
  (``public = true``, or no admin password), else a logged-in admin. /metrics never
  shows more than the dashboard already does (record, target and monitor names, states,
  counts), so it is never more open than the dashboard.
"""

from __future__ import annotations

import hmac
import logging
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dynserver.metrics import CONTENT_TYPE
from dynserver.runtime import Runtime
from dynserver.web.auth import Auth
from dynserver.web.client import client_address

log = logging.getLogger("dynserver.web")


def routes(runtime: Runtime, auth: Auth) -> list[Route]:
    def refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
        return PlainTextResponse(detail + "\n", status_code=status, headers=headers)

    async def metrics(request: Request) -> Response:
        # DYNSERVER_METRICS_TOKEN, when set, is already in the config: the loader applies
        # it. Read per request: a reload may set or change the token.
        token = runtime.web_settings().metrics_token
        if token is not None:
            client = client_address(request)
            now = time.monotonic()
            block = auth.limiter.admit(client, now)
            if block is not None:
                retry = str(max(1, round(block.retry_after)))
                return refuse(429, f"too many requests ({block.why.value})", {"Retry-After": retry})
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                auth.limiter.failed(client, None, now)
                log.warning("event=metrics_refused client=%s", client)
                challenge = {"WWW-Authenticate": 'Bearer realm="dynserver metrics"'}
                return refuse(401, "send Authorization: Bearer <[web] metrics_token>", challenge)
        elif not auth.may_read(request):
            return refuse(401, "log in, or set [web] metrics_token for a scraper")
        return Response(runtime.metrics_text(), media_type=CONTENT_TYPE)

    return [Route("/metrics", metrics)]
