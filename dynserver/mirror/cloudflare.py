"""Cloudflare's API v4 as a mirror: the records of one name and type follow an answer.

Every sync lists the records by name and type first and plans from what is really
there (never from an id remembered from an earlier push: records get deleted and
recreated by hand, and a stale id is how seed 000's service got stuck "in error"). One
change is one call (POST, PATCH or DELETE); several go to the batch endpoint, which
applies deletes, patches, puts and posts in that order in one transaction, so a
round-robin set never shows a half-applied state.

Errors are classified for the worker: 429 (with its Retry-After), 5xx and network
errors are worth retrying; a bad token (403, code 10000), a missing zone or a refused
request (other 4xx) is permanent until the config or the account changes. The token is
sent only in the Authorization header and is redacted from every message.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx

from dynserver import __version__
from dynserver.mirror import diff
from dynserver.mirror.base import Desired, MirrorError, Outcome, canonical, retry_after_seconds
from dynserver.model import MirrorConfig

PER_PAGE = 100  # Cloudflare's default; one page holds every record of a name and type
MAX_PAGES = 50  # a safety net against a server that never says "last page"
AUTH_CODES = {10000, 9103, 9106, 9109}  # authentication error, unknown/missing/unauthorized
_ZONE_ID = re.compile(r"[0-9a-f]{32}")


class Cloudflare:
    """One [mirrors.NAME] of type cloudflare."""

    kind = "cloudflare"

    def __init__(self, config: MirrorConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if config.api_token is None:
            raise ValueError(f"mirror {config.name}: no API token")
        self.config = config
        self._token = config.api_token.reveal()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._zone_id: str | None = None
        self._zone_name: str | None = None
        self._last_reply = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    async def start(self) -> None:
        # Building a client loads the CA bundle: a quarter of a second of CPU, in a thread.
        self._client = await asyncio.to_thread(
            httpx.AsyncClient,
            base_url=self.config.api_base.rstrip("/"),
            timeout=self.config.timeout,
            trust_env=False,
            transport=self._transport,
            headers={"User-Agent": f"dynserver/{__version__}", "Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def sync(self, desired: Desired) -> Outcome:
        try:
            return await self._sync(desired)
        except MirrorError as error:
            if error.permanent:
                self._zone_id = None  # a deleted or moved zone: look it up again next time
            raise error.redacted(self.secrets) from None

    async def _sync(self, desired: Desired) -> Outcome:
        zone_id, zone_name = await self._zone()
        if desired.name != zone_name and not desired.name.endswith("." + zone_name):
            raise MirrorError(
                f"{desired.name} is not in the zone {zone_name}; expected a name ending in {zone_name}",
                permanent=True,
            )
        found = await self._list(zone_id, desired)
        existing = [_existing(desired.type, r) for r in found]
        before = tuple(sorted(e.content for e in existing))
        steps = diff.plan(existing, desired)
        records = {r["id"]: r for r in found}
        if steps.operations == 0:
            return Outcome((), before, before, self._last_reply, _summaries(desired.type, records))
        base = f"/zones/{zone_id}/dns_records"
        if steps.operations == 1:
            if steps.deletes:
                await self._call("DELETE", f"{base}/{steps.deletes[0].id}", "delete")
                records.pop(steps.deletes[0].id, None)
            elif steps.patches:
                patch = steps.patches[0]
                result = await self._call("PATCH", f"{base}/{patch.id}", "patch", json=patch.body())
                records[patch.id] = result
            else:
                body = steps.creates[0].body(desired.name, desired.type)
                result = await self._call("POST", base, "create", json=body)
                records[str(result["id"])] = result
        else:
            batch: dict[str, list[dict[str, Any]]] = {}
            if steps.deletes:
                batch["deletes"] = [{"id": d.id} for d in steps.deletes]
            if steps.patches:
                batch["patches"] = [{"id": p.id, **p.body()} for p in steps.patches]
            if steps.creates:
                batch["posts"] = [c.body(desired.name, desired.type) for c in steps.creates]
            result = await self._call("POST", f"{base}/batch", "batch", json=batch)
            for deleted in steps.deletes:
                records.pop(deleted.id, None)
            for key in ("patches", "puts", "posts"):
                for record in result.get(key) or []:
                    records[str(record["id"])] = record
        after = tuple(sorted(canonical(desired.type, str(r.get("content", ""))) for r in records.values()))
        return Outcome(steps.describe(), before, after, self._last_reply, _summaries(desired.type, records))

    # -- the API ----------------------------------------------------------------------

    async def _zone(self) -> tuple[str, str]:
        """The zone's id and name: looked up once, again after a permanent error."""
        if self._zone_id is not None and self._zone_name is not None:
            return self._zone_id, self._zone_name
        zone = self.config.zone
        if _ZONE_ID.fullmatch(zone):
            result = await self._call("GET", f"/zones/{zone}", "zone")
            zone_id, name = zone, str(result.get("name", "")).lower()
        else:
            found = await self._call("GET", "/zones", "zone lookup", params={"name": zone})
            if not found:
                raise MirrorError(
                    f"zone {zone} not found: is it in this Cloudflare account, and may the token "
                    "read it (Zone:Read or Zone.DNS:Edit for this zone)?",
                    permanent=True,
                    reply=self._last_reply,
                )
            zone_id, name = str(found[0]["id"]), str(found[0].get("name", zone)).lower()
        self._zone_id, self._zone_name = zone_id, name
        return zone_id, name

    async def _list(self, zone_id: str, desired: Desired) -> list[dict[str, Any]]:
        """Every record of this name and type, through every page."""
        records: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            params = {"name": desired.name, "type": desired.type, "page": page, "per_page": PER_PAGE}
            result, info = await self._call_paged(f"/zones/{zone_id}/dns_records", params)
            # The filters are Cloudflare's; checking them again costs nothing and means a
            # record of another name is never patched, whatever the server did.
            records += [
                r
                for r in result
                if str(r.get("name", "")).lower() == desired.name and r.get("type") == desired.type
            ]
            total_pages = info.get("total_pages")
            if len(result) < PER_PAGE or (isinstance(total_pages, int) and page >= total_pages):
                break
        return records

    async def _call_paged(
        self, path: str, params: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        body = await self._request("GET", path, "list", params=params)
        result = body.get("result")
        info = body.get("result_info")
        if not isinstance(result, list):
            raise MirrorError("list reply without a result list", reply=self._last_reply)
        return result, info if isinstance(info, dict) else {}

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        return (await self._request(method, path, what, params=params, json=json)).get("result")

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One call: the parsed envelope of a success, or a classified MirrorError."""
        if self._client is None:
            raise MirrorError("not started")
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            response = await self._client.request(method, path, params=params, json=json, headers=headers)
        except httpx.TimeoutException:
            self._last_reply = f"{what}: timeout after {self.config.timeout:g} s"
            raise MirrorError(self._last_reply) from None
        except httpx.HTTPError as error:
            self._last_reply = f"{what}: network error: {type(error).__name__}: {error}"
            raise MirrorError(self._last_reply) from None
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        errors = _errors(body)
        self._last_reply = f"{what}: HTTP {status}" + (f" {errors}" if errors else "")
        if status == 429:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), time.time())
            raise MirrorError(
                f"rate limited (HTTP 429){errors and ' ' + errors}; Retry-After {retry_after:g} s",
                retry_after=retry_after,
                reply=self._last_reply,
            )
        if status >= 500 or status in (408, 425):
            raise MirrorError(f"Cloudflare error: {self._last_reply}", reply=self._last_reply)
        codes = {e.get("code") for e in body.get("errors") or [] if isinstance(e, dict)}
        if status in (401, 403) or codes & AUTH_CODES:
            raise MirrorError(
                f"authentication failed ({self._last_reply}): the API token is invalid, expired or "
                "revoked, or lacks the Zone.DNS:Edit permission for this zone",
                permanent=True,
                reply=self._last_reply,
            )
        if status >= 400 or body.get("success") is not True:
            raise MirrorError(
                f"Cloudflare refused the {what}: {self._last_reply}", permanent=True, reply=self._last_reply
            )
        return body


def _existing(rtype: str, record: dict[str, Any]) -> diff.Existing:
    ttl = record.get("ttl")
    comment = record.get("comment")
    return diff.Existing(
        id=str(record["id"]),
        content=canonical(rtype, str(record.get("content", ""))),
        ttl=ttl if isinstance(ttl, int) else 1,
        proxied=record.get("proxied") is True,
        comment=comment if isinstance(comment, str) and comment else None,
    )


def _summaries(rtype: str, records: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The records as the dashboard shows them (sorted by content)."""
    rows = [
        {
            "id": str(r.get("id")),
            "content": canonical(rtype, str(r.get("content", ""))),
            "ttl": r.get("ttl"),
            "proxied": r.get("proxied"),
            "comment": r.get("comment"),
            "modified_on": r.get("modified_on"),
        }
        for r in records.values()
    ]
    return tuple(sorted(rows, key=lambda r: (r["content"], r["id"])))


def _errors(body: dict[str, Any]) -> str:
    """'[10000 Authentication error]': Cloudflare's error codes and messages, short."""
    parts = []
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            parts.append(f"{error.get('code')} {str(error.get('message', ''))[:200]}".strip())
    return "[" + "; ".join(parts) + "]" if parts else ""
