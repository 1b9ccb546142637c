"""A background writer: health results arrive hundreds of times a second, so state
upserts are coalesced per target and everything pending goes to disk in one
transaction every ``interval`` seconds. Nothing on the DNS or check path awaits it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dynserver.store.db import EventRow, JournalRow, Sample, Store, StoredState

log = logging.getLogger(__name__)


class Writer:
    def __init__(self, store: Store, interval: float = 0.25) -> None:
        self.store = store
        self._interval = interval
        self._states: dict[tuple[str, str, str], StoredState] = {}
        self._events: list[EventRow] = []
        self._samples: list[Sample] = []
        self._serials: dict[str, tuple[int, str]] = {}
        self._journal: list[tuple[str, JournalRow]] = []
        self._journal_first: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: a second one would run its statements inside the first's
        # transaction, and a caller's flush must wait for the batch the loop has taken.
        self._flushing = asyncio.Lock()
        self._closing = False
        self.failures = 0

    def state(self, state: StoredState) -> None:
        self._states[(state.record, state.type, state.target)] = state

    def event(self, event: EventRow) -> None:
        self._events.append(event)
        self._wake.set()  # events are worth writing soon

    def sample(self, sample: Sample) -> None:
        self._samples.append(sample)

    def serial(self, zone: str, serial: int, digest: str) -> None:
        self._serials[zone] = (serial, digest)

    def journal(self, zone: str, row: JournalRow, first: int) -> None:
        """An IXFR journal entry, and the oldest seq the zone still keeps (older go)."""
        self._journal.append((zone, row))
        self._journal_first[zone] = first

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store writer")

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # disk full etc.: keep serving, retry later (tests/store/test_writer.py)
                self.failures += 1
                log.exception("event=store_write_failed")

    async def flush(self) -> None:
        """Return once everything queued before the call is committed (or raise why not).

        A batch the background loop took earlier is waited for first; if it failed, it was
        put back and this flush writes it again.
        """
        async with self._flushing:
            await self._write_pending()

    async def _write_pending(self) -> None:
        states, self._states = list(self._states.values()), {}
        events, self._events = self._events, []
        samples, self._samples = self._samples, []
        serials, self._serials = self._serials, {}
        journal, self._journal = self._journal, []
        journal_first, self._journal_first = self._journal_first, {}
        if not (states or events or samples or serials or journal or journal_first):
            return
        async with self.store.transaction:
            try:
                if states:
                    await self.store.save_states(states, commit=False, with_value=False)
                if events:
                    await self.store.add_events(events, commit=False)
                if samples:
                    await self.store.add_samples(samples, commit=False)
                if serials:
                    await self.store.save_serials(serials, commit=False)
                if journal:
                    await self.store.add_journal(journal, commit=False)
                if journal_first:
                    await self.store.keep_journal(journal_first, commit=False)
                await self.store.commit()
            except Exception:
                # Undo what this batch sent before the failure: left in the open transaction,
                # the retry would commit its events twice. Then put it all back (newer states
                # win) so the next flush retries. The first error is the one worth raising.
                with contextlib.suppress(Exception):
                    await self.store.rollback()
                for state in states:
                    self._states.setdefault((state.record, state.type, state.target), state)
                self._events[:0] = events
                self._samples[:0] = samples
                for zone, value in serials.items():
                    self._serials.setdefault(zone, value)
                self._journal[:0] = journal
                for zone, first in journal_first.items():
                    self._journal_first.setdefault(zone, first)
                raise

    async def stop(self) -> None:
        # The loop is asked to end, not cancelled: a flush cancelled half-way would lose
        # the batch it had taken (the last changes before a stop: states, events, the
        # IXFR journal) while its statements still ran in SQLite's thread.
        if self._task is not None:
            self._closing = True
            self._wake.set()
            await self._task
        await self.flush()
