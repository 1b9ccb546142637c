"""The mirror worker: pushes answer changes to providers, off the DNS and check paths.

``submit`` only records the latest desired set of each mirrored name and wakes its task:
nothing the DNS server or the checker does ever waits on a provider (design principle 6).
One task per mirrored name (mirror, name, type) then

- coalesces: a burst of changes becomes one push of the latest set, after a short settle;
  a change that arrives during a push is pushed next, with whatever is newest by then;
- retries with exponential backoff after 5xx and network errors, and waits out a 429's
  Retry-After (every name of that provider pauses, since the limit is per token);
- stops retrying after a permanent error (bad token, missing zone, refused request) until
  the answer changes or the next periodic reconcile, so a broken mirror is visible but
  never hammers the API;
- reconciles every ``reconcile_interval`` seconds: a provider's records that no longer
  match the answer (someone edited them by hand) are restored, and that is an event.

Every push result is an event of kind "mirror" and a log line, and each name's last
known provider records and last reply are kept for the dashboard (``status()``). Secrets
(API tokens) are redacted from every string that leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynserver.backoff import Backoff
from dynserver.dns import wire
from dynserver.mirror.base import Desired, MirrorError, Outcome, Provider, canonical_values, redact
from dynserver.mirror.cloudflare import Cloudflare
from dynserver.mirror.dyndns2 import Dyndns2
from dynserver.mirror.lexicon import Lexicon
from dynserver.mirror.rfc2136 import Rfc2136
from dynserver.model import Config, DynamicRecord, MirrorRecord
from dynserver.store.db import EventRow

log = logging.getLogger(__name__)

SETTLE = 0.5  # seconds a change waits for the rest of its burst before it is pushed
FIRST_BACKOFF = 1.0  # after a failure: 1, 2, 4... s, up to MAX_BACKOFF (or a 429's Retry-After)
MAX_BACKOFF = 300.0
# Which reason wins when several wake one name before it runs (drift is only claimed
# by a reconcile that found nothing else to push).
_RANK = {"reconcile": 0, "start": 1, "change": 2}

EventSink = Callable[[EventRow], None]
# Told (mirror, result) after every push attempt: ok, drift, error or permanent (metrics).
AttemptSink = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class SlotKey:
    mirror: str
    name: str
    type: str


class MirrorState(enum.StrEnum):
    """Where a mirror's push stands: failed is permanent, until the configuration is fixed."""

    PENDING = "pending"  #: not pushed yet, or the answer changed since
    OK = "ok"  #: the last push or reconcile left the provider equal to the answer
    RETRYING = "retrying"  #: the last attempt failed; retried with backoff
    FAILED = "failed"  #: a permanent error: not retried until the answer changes or the next reconcile


@dataclass(frozen=True, slots=True)
class MirrorStatus:
    """One mirrored name as the dashboard and the propagation page show it."""

    mirror: str
    kind: str  # cloudflare | rfc2136 | lexicon | dyndns2
    record: str  # the dynamic record it follows, e.g. "app.dyn.example.test."
    name: str  # the name at the provider
    type: str
    desired: tuple[str, ...]  # the answer it should have
    ttl: int
    state: MirrorState
    in_sync: bool  # the last push or reconcile left the provider equal to ``desired``
    provider: tuple[str, ...] | None  # the values last seen at the provider (None: never)
    records: tuple[dict[str, Any], ...]  # the provider's records (id, content, ttl, ...)
    last_reply: str  # a summary of the provider's last reply
    last_error: str | None
    permanent: bool
    failures: int  # consecutive failed attempts
    last_attempt: float | None  # wall-clock Unix seconds
    last_ok: float | None
    last_change: float | None  # the last time a push changed something at the provider
    drift_restored: int  # how many times a reconcile restored a hand edit


@dataclass(eq=False)
class _Slot:
    key: SlotKey
    record: DynamicRecord
    target: MirrorRecord
    desired: Desired | None = None
    applied: Desired | None = None  # what the provider was last made (or found) equal to
    reason: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    provider_values: tuple[str, ...] | None = None
    records: tuple[dict[str, Any], ...] = ()
    last_reply: str = ""
    last_error: str | None = None
    reported_error: str | None = None  # the last error recorded as an event
    permanent: bool = False
    failures: int = 0
    last_attempt: float | None = None
    last_ok: float | None = None
    last_change: float | None = None
    drift_restored: int = 0

    def want(self, reason: str) -> None:
        if self.reason is None or _RANK[reason] > _RANK[self.reason]:
            self.reason = reason
        self.wake.set()


def desired_for(record: DynamicRecord, target: MirrorRecord, values: Sequence[str]) -> Desired:
    """The provider state that mirrors ``values`` (a record's current answer). Pure."""
    return Desired(
        name=target.name,
        type=record.type,
        values=canonical_values(record.type, values),
        ttl=target.ttl,
        proxied=target.proxied,
        comment=target.comment,
    )


class MirrorWorker:
    def __init__(
        self,
        records: Iterable[DynamicRecord],
        providers: Mapping[str, Provider],
        intervals: Mapping[str, float],
        *,
        event: EventSink | None = None,
        attempt: AttemptSink | None = None,
        settle: float = SETTLE,
        first_backoff: float = FIRST_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self._providers = dict(providers)
        self._intervals = dict(intervals)
        self._event = event or (lambda row: None)
        self._attempt = attempt or (lambda mirror, result: None)
        self._settle = settle
        self._backoff = Backoff(first_backoff, cap=max_backoff)
        self._slots: dict[SlotKey, _Slot] = {}
        for record in records:
            for target in record.mirror:
                if target.to in self._providers:
                    key = SlotKey(target.to, target.name, record.type)
                    self._slots[key] = _Slot(key, record, target)
        self._secrets = tuple(s for p in self._providers.values() for s in p.secrets)
        self._paused_until: dict[str, float] = {}  # a 429 pauses a whole provider (loop time)
        self._tasks: list[asyncio.Task[None]] = []
        self._started: list[Provider] = []

    @classmethod
    def from_config(cls, config: Config, *, event: EventSink | None = None, **options: Any) -> MirrorWorker:
        """Providers for every [mirrors.NAME] a dynamic record uses."""
        records = [r for zone in config.zones for r in zone.records]
        used = {t.to for r in records for t in r.mirror}
        keys = {k.name: k for k in config.keys}
        providers: dict[str, Provider] = {}
        for mirror in config.mirrors:
            if mirror.name not in used:
                continue
            if mirror.type == "cloudflare":
                providers[mirror.name] = Cloudflare(mirror)
            elif mirror.type == "rfc2136" and mirror.key is not None:
                providers[mirror.name] = Rfc2136(mirror, keys[mirror.key])
            elif mirror.type == "lexicon":
                providers[mirror.name] = Lexicon(mirror)
            elif mirror.type == "dyndns2":
                providers[mirror.name] = Dyndns2(mirror)
        intervals = {m.name: m.reconcile_interval for m in config.mirrors}
        return cls(records, providers, intervals, event=event, **options)

    @property
    def enabled(self) -> bool:
        return bool(self._slots)

    # -- the application's side: never blocks -------------------------------------------

    def submit(self, record: DynamicRecord, values: Sequence[str]) -> None:
        """A record's answer is now ``values``: queue a push to each of its mirrors."""
        for target in record.mirror:
            slot = self._slots.get(SlotKey(target.to, target.name, record.type))
            if slot is None:
                continue
            desired = desired_for(record, target, values)
            if desired == slot.desired:
                continue  # a TTL-only change of the served answer (pending): nothing to mirror
            slot.desired = desired
            if self._tasks:
                slot.want("change")

    def status(self) -> list[MirrorStatus]:
        """Every mirrored name: what it should be, what the provider had, the last reply."""
        result = []
        for slot in sorted(self._slots.values(), key=lambda s: (s.key.mirror, s.key.name, s.key.type)):
            desired = slot.desired
            in_sync = desired is not None and slot.applied == desired and slot.failures == 0
            if slot.permanent:
                state = MirrorState.FAILED
            elif slot.failures:
                state = MirrorState.RETRYING
            elif in_sync:
                state = MirrorState.OK
            else:
                state = MirrorState.PENDING
            result.append(
                MirrorStatus(
                    mirror=slot.key.mirror,
                    kind=self._providers[slot.key.mirror].kind,
                    record=wire.name_to_text(slot.record.name),
                    name=slot.key.name,
                    type=slot.key.type,
                    desired=desired.values if desired else (),
                    ttl=slot.target.ttl,
                    state=state,
                    in_sync=in_sync,
                    provider=slot.provider_values,
                    records=slot.records,
                    last_reply=slot.last_reply,
                    last_error=slot.last_error,
                    permanent=slot.permanent,
                    failures=slot.failures,
                    last_attempt=slot.last_attempt,
                    last_ok=slot.last_ok,
                    last_change=slot.last_change,
                    drift_restored=slot.drift_restored,
                )
            )
        return result

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, initial: Iterable[tuple[DynamicRecord, Sequence[str]]] = ()) -> None:
        """Push the current answers (found in place: nothing is sent but the lookups), then
        keep following changes and reconciling."""
        if not self._slots:
            return
        for record, values in initial:
            self.submit(record, values)
        for name in sorted({key.mirror for key in self._slots}):
            provider = self._providers[name]
            await provider.start()
            self._started.append(provider)
            interval = self._intervals.get(name, 300.0)
            self._tasks.append(asyncio.create_task(self._reconcile(name, interval), name=f"mirror {name}"))
        for slot in self._slots.values():
            if slot.desired is not None:
                slot.want("start")
            self._tasks.append(asyncio.create_task(self._run(slot), name=f"mirror {slot.key.name}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        started, self._started = self._started, []
        for provider in started:
            with contextlib.suppress(Exception):
                await provider.close()

    # -- the work -----------------------------------------------------------------------

    async def _reconcile(self, mirror: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for slot in self._slots.values():
                if slot.key.mirror == mirror and slot.desired is not None:
                    slot.want("reconcile")

    async def _run(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        provider = self._providers[slot.key.mirror]
        failures = 0  # retryable failures in a row: the backoff's attempt number
        while True:
            await slot.wake.wait()
            if slot.reason in ("change", "start") and slot.failures == 0 and self._settle > 0:
                await asyncio.sleep(self._settle)  # let the rest of a burst arrive
            pause = self._paused_until.get(slot.key.mirror, 0.0) - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)  # another name of this provider was told to wait
            slot.wake.clear()
            reason, slot.reason = slot.reason or "reconcile", None
            desired = slot.desired
            if desired is None:
                continue
            slot.last_attempt = time.time()
            try:
                outcome = await provider.sync(desired)
            except MirrorError as error:
                retry = self._failed(slot, desired, reason, error)
            except Exception as error:  # a bug must not end the mirror: log, back off, retry
                log.exception("event=mirror_bug mirror=%s name=%s", slot.key.mirror, slot.key.name)
                retry = self._failed(slot, desired, reason, MirrorError(f"{type(error).__name__}: {error}"))
            else:
                self._succeeded(slot, desired, reason, outcome)
                failures = 0
                continue
            if retry is None:
                failures = 0
                continue  # permanent: wait for a change or the next reconcile
            failures += 1
            if retry > 0:
                self._paused_until[slot.key.mirror] = loop.time() + retry
            await asyncio.sleep(self._backoff.delay(failures, retry_after=retry))
            slot.want(reason)

    def _succeeded(self, slot: _Slot, desired: Desired, reason: str, outcome: Outcome) -> None:
        was_in_sync = slot.applied == desired  # a failed attempt does not change it
        recovered = slot.failures > 0 or slot.permanent
        attempts = slot.failures + 1
        slot.applied = desired
        slot.failures = 0
        slot.permanent = False
        slot.last_error = None
        slot.reported_error = None
        slot.provider_values = outcome.after
        slot.records = tuple(self._clean_record(r) for r in outcome.records)
        slot.last_reply = self._clean(outcome.reply)
        slot.last_ok = time.time()
        if outcome.changed:
            slot.last_change = slot.last_ok
        drift = reason == "reconcile" and outcome.changed and was_in_sync
        if drift:
            slot.drift_restored += 1
        self._attempt(slot.key.mirror, "drift" if drift else "ok")
        if reason == "reconcile" and not outcome.changed and not recovered:
            return  # a quiet periodic check: nothing to tell
        actions = "; ".join(outcome.actions) or "already in place"
        summary = f"drift restored: {actions}" if drift else actions
        if recovered:
            summary += f" (after {attempts} attempts)"
        result = "drift" if drift else "ok"
        self._record(slot, result, summary, outcome.before, outcome.after, reason, attempts)
        level = logging.WARNING if drift else logging.INFO
        log.log(
            level,
            "event=mirror_%s mirror=%s record=%s name=%s type=%s before=%s after=%s actions=%r reply=%r",
            "drift" if drift else "push",
            slot.key.mirror,
            wire.name_to_text(slot.record.name),
            slot.key.name,
            slot.key.type,
            ",".join(outcome.before) or "-",
            ",".join(outcome.after) or "-",
            actions,
            slot.last_reply,
        )

    def _failed(self, slot: _Slot, desired: Desired, reason: str, error: MirrorError) -> float | None:
        """Record a failure; return None (permanent: no retry), 0 (retry after the
        backoff) or the seconds the provider asked us to wait."""
        message = self._clean(error.message)
        slot.failures += 1
        slot.permanent = error.permanent
        slot.last_error = message
        slot.last_reply = self._clean(error.reply)
        retry: float | None = None if error.permanent else (error.retry_after or 0.0)
        self._attempt(slot.key.mirror, "permanent" if error.permanent else "error")
        if error.permanent:
            note = "permanent: fix it, then it is retried at the next change or reconcile"
        elif retry:
            note = f"retrying after {retry:g} s (Retry-After)"
        else:
            note = "retrying with backoff"
        if message != slot.reported_error:
            slot.reported_error = message
            result = "permanent" if error.permanent else "error"
            before = slot.provider_values or ()
            self._record(slot, result, f"{message} ({note})", before, before, reason, slot.failures)
        log.log(
            logging.ERROR if error.permanent else logging.WARNING,
            "event=mirror_failed mirror=%s name=%s type=%s attempt=%d permanent=%s error=%r reply=%r",
            slot.key.mirror,
            slot.key.name,
            slot.key.type,
            slot.failures,
            "yes" if error.permanent else "no",
            message,
            slot.last_reply,
        )
        return retry

    def _record(
        self,
        slot: _Slot,
        result: str,
        summary: str,
        before: tuple[str, ...],
        after: tuple[str, ...],
        reason: str,
        attempts: int,
    ) -> None:
        provider = self._providers[slot.key.mirror]
        self._event(
            EventRow(
                kind="mirror",
                record=wire.name_to_text(slot.record.name),
                target=slot.key.mirror,
                result=result,
                reason=self._clean(f"{slot.key.name} {slot.key.type} at {slot.key.mirror}: {summary}"),
                previous=",".join(before),
                current=",".join(after),
                detail={
                    "mirror": slot.key.mirror,
                    "provider": provider.kind,
                    "name": slot.key.name,
                    "type": slot.key.type,
                    "trigger": reason,
                    "attempts": attempts,
                    "reply": slot.last_reply,
                },
            )
        )

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    def _clean_record(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: self._clean(v) if isinstance(v, str) else v for k, v in record.items()}
