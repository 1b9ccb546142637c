"""The dyndns2 route: ``GET /nic/update`` and ``/v3/update`` for ddclient, inadyn, routers.

Thin: the protocol is dynserver.update.dyndns2, authentication and limits are
dynserver.update.service. This adds HTTP and the order of the steps.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dynserver.update import dyndns2
from dynserver.update.dyndns2 import Code, Update
from dynserver.update.limits import Block
from dynserver.update.service import Updates
from dynserver.web.client import client_address

log = logging.getLogger("dynserver.update")


def routes(updates: Updates) -> list[Route]:
    def count(result: str) -> None:
        """/metrics: a request refused before any target was looked at (applied updates
        are counted by Runtime.update_target)."""
        updates.runtime.count_update("dyndns2", result)

    async def nic_update(request: Request) -> Response:
        client = client_address(request)
        query = dyndns2.parse(request.query_params.multi_items(), client)
        hostnames = len(query.hostnames)
        block = updates.admit(client)
        if block is not None:
            count("limited")
            return _send(dyndns2.refused(Code.ABUSE, hostnames, block.retry_after))
        auth = dyndns2.credentials(request.headers.get("authorization"))
        if auth is None:
            count("unauthorized")
            return _send(dyndns2.badauth())
        try:
            principal = await updates.basic(*auth, client)
        except Exception:
            log.exception("event=update_failed via=dyndns2 step=credentials client=%s", client)
            count("failed")
            return _send(dyndns2.refused(Code.SERVER_ERROR, hostnames))
        if isinstance(principal, Block):
            count("limited")
            return _send(dyndns2.refused(Code.ABUSE, hostnames, principal.retry_after))
        if principal is None:
            count("unauthorized")
            return _send(dyndns2.badauth())
        steps = dyndns2.plan(query, find=updates.targets.by_hostname, may_update=principal.may_update)
        lines: list[str] = []
        failed = False
        for step in steps:
            if not isinstance(step, Update):
                count("refused")  # nohost, notfqdn, numhost: one per hostname line
                lines.append(dyndns2.line(step))
            elif failed:
                count("failed")
                lines.append(Code.SERVER_ERROR.value)  # the store is failing: do not try more
            else:
                try:
                    changed, _ = await updates.update(
                        principal, step.key, step.value, client=client, via="dyndns2"
                    )
                except Exception:
                    log.exception(
                        "event=update_failed via=dyndns2 credential=%s client=%s target=%s",
                        principal.name,
                        client,
                        updates.targets.hostname(step.key),
                    )
                    failed = True
                    lines.append(Code.SERVER_ERROR.value)
                    continue
                lines.append(dyndns2.line(Code.GOOD if changed else Code.NOCHG, step.value))
        return _send(dyndns2.reply(lines))

    return [Route("/nic/update", nic_update), Route("/v3/update", nic_update)]


def _send(reply: dyndns2.Reply) -> Response:
    response = PlainTextResponse(reply.body, status_code=reply.status)
    for name, value in reply.headers:
        response.headers[name] = value
    return response
