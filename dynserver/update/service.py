"""The update paths' side effects: who is asking, may they, and set the value.

dyndns2 and the REST API share this: credentials are read from the database on every
request (``dynserver credential add`` and ``revoke`` write from another process, and the
running server obeys them on the next request), limits are counted in memory, and a
value is set through Runtime.update_target, which commits it before the caller answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from dynserver.runtime import Runtime
from dynserver.store.db import Store
from dynserver.types import TargetKey
from dynserver.update import credentials, push
from dynserver.update.credentials import Principal
from dynserver.update.limits import Block, Limiter, LimitPolicy
from dynserver.update.targets import Targets

log = logging.getLogger("dynserver.update")

# last_used is a hint for `credential list`, not an audit trail (events are): writing it
# on every request would cost a commit per update, so once per credential per minute.
LAST_USED_EVERY = 60.0


class Updates:
    def __init__(
        self,
        runtime: Runtime,
        limits: LimitPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.targets = Targets.build(runtime.dynamic_records())
        self.limiter = Limiter(limits)
        self._clock = clock
        self._wall = wall
        self._touched: dict[str, float] = {}
        self._locks: dict[TargetKey, asyncio.Lock] = {}
        self._warned_no_store = False

    def admit(self, client: str) -> Block | None:
        """The general rate limit and the client lockout, before any work is done."""
        block = self.limiter.admit(client, self._clock())
        if block is not None:
            log.warning("event=update_refused client=%s why=%r", client, block.why.value)
        return block

    async def basic(self, name: str, secret: str, client: str) -> Principal | Block | None:
        """HTTP Basic (dyndns2): the named credential, if the secret matches."""
        now = self._clock()
        blocked = self.limiter.credential_blocked(name, now)
        if blocked is not None:
            log.warning(
                "event=update_refused client=%s credential=%s why=%r", client, name, blocked.why.value
            )
            return blocked
        store = self._store()
        stored = None if store is None else await store.credential(name)
        if stored is None or not credentials.verify(stored, secret):
            self._failed(client, name)
            return None
        return await self._succeeded(stored.name, Principal.of(stored))

    async def bearer(self, token: str, client: str) -> Principal | Block | None:
        """A Bearer token (REST API): the credential whose secret it is."""
        store = self._store()
        found = None if store is None else credentials.find_by_secret(await store.credentials(), token)
        if found is None:
            self._failed(client, None)
            return None
        blocked = self.limiter.credential_blocked(found.name, self._clock())
        if blocked is not None:  # locked by guesses at its name: locked on every path
            return blocked
        return await self._succeeded(found.name, Principal.of(found))

    async def push(self, token: str, client: str) -> TargetKey | None:
        """The target a push token beats for (None: no such token, counted as a failed
        authentication towards the client's lockout). The token is never logged."""
        store = self._store()
        found = None
        if store is not None and push.looks_like_token(token):
            found = await store.push_token(push.digest(token))
        key = None if found is None else self.targets.by_ref(found.record, found.target)
        if found is None or key is None or key[1] != found.type:
            self._failed(client, None)
            return None
        now = self._wall()
        touched = f"push:{found.record}/{found.target}"
        if store is not None and now - self._touched.get(touched, 0.0) >= LAST_USED_EVERY:
            self._touched[touched] = now
            with contextlib.suppress(Exception):  # a hint only: never fail a heartbeat for it
                await store.touch_push_token(found.digest, now)
        return key

    async def update(
        self, principal: Principal, key: TargetKey, value: str, *, client: str, via: str
    ) -> tuple[bool, str | None]:
        """Set the target's value for this principal: (changed, previous value).

        Updates of one target are applied one at a time, so the order on disk is the
        order of the answers; the update is shielded from a client that hangs up, so
        once started it ends with the value both on disk and live, never half-way."""
        if not principal.may_update(key):
            raise PermissionError(f"{principal.name} may not update {self.targets.hostname(key)}")
        lock = self._locks.setdefault(key, asyncio.Lock())

        async def apply() -> tuple[bool, str | None]:
            async with lock:
                return await self.runtime.update_target(
                    key, value, actor=principal.name, source=client, via=via
                )

        return await asyncio.shield(asyncio.ensure_future(apply()))

    def _failed(self, client: str, name: str | None) -> None:
        self.limiter.failed(client, name, self._clock())
        log.warning("event=update_auth_failed client=%s credential=%s", client, name or "-")

    async def _succeeded(self, name: str, principal: Principal) -> Principal:
        now = self._wall()
        store = self._store()
        if store is not None and now - self._touched.get(name, 0.0) >= LAST_USED_EVERY:
            self._touched[name] = now
            with contextlib.suppress(Exception):  # a hint only: never fail a request for it
                await store.touch_credentials({name: now})
        return principal

    def _store(self) -> Store | None:
        store = self.runtime.database()
        if store is None and not self._warned_no_store:
            self._warned_no_store = True
            log.warning("event=updates_disabled reason='no database: credentials live in it'")
        return store
