"""The running state that the DNS transports, the web and the update paths call into:
zones and serials, the answer snapshot and its publishing, target updates, maintenance,
check now, and the events, alerts and persistence that follow a change.

The data flow of a failover: probe result -> engine (state machine transition) ->
policy recomputes the record -> new zone with serial + 1 -> new snapshot swapped in ->
the next query gets the new answer -> events stored, notifications queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from msgspec import structs

from dynserver import config as configuration
from dynserver.config import parse_name
from dynserver.config.diff import describe
from dynserver.dns import wire
from dynserver.dns.names import name_text
from dynserver.dns.packet import FLAGS, NOT_QUERY
from dynserver.dns.serial import next_serial, serial_gt
from dynserver.dns.snapshot import Snapshot
from dynserver.dns.zone import APEX_TYPES, RRset, Zone, soa_fields
from dynserver.dnssec import keystore
from dynserver.dnssec.keys import Key, generate
from dynserver.dnssec.signer import Policy, ZoneSigner
from dynserver.errors import ConfigError
from dynserver.health.conditions import expiry_reason
from dynserver.health.engine import Change, Engine, Forcing, checked_address, target_key
from dynserver.health.policy import Decision
from dynserver.health.probes import Check
from dynserver.health.scheduler import Load, Scheduler
from dynserver.health.state import Health, Result, TargetState
from dynserver.locations.protocol import check_id
from dynserver.locations.quorum import Connectivity, LocationStatus, LocationView, Tally
from dynserver.metrics import Metrics, TargetSample
from dynserver.mirror.worker import MirrorStatus, MirrorWorker
from dynserver.model import (
    Config,
    DynamicRecord,
    Heartbeat,
    LocationsConfig,
    MonitorType,
    WebConfig,
    ZoneConfig,
    is_checked,
    monitors_of,
)
from dynserver.notify.sender import Alert, Notifier
from dynserver.store.db import (
    EventRow,
    JournalRow,
    Sample,
    Store,
    StoredChallenge,
    StoredForced,
    StoredState,
)
from dynserver.store.writer import Writer
from dynserver.types import CheckKey, Name, RecordKey, Stream, TargetKey
from dynserver.update import acme, rfc2136
from dynserver.update.targets import record_text
from dynserver.xfr import journal
from dynserver.xfr.notify import SecondaryNotifier
from dynserver.xfr.transfer import Transfers

log = logging.getLogger("dynserver")

# How often stale results and old history are looked for.
SWEEP_INTERVAL = 1.0
# Signed zones: how often keys are read again (a rollover's new key or times) and the
# signatures near expiry renewed, and how many names' signatures at most per zone and
# turn (the work is spread: a zone signed at once comes due over a tenth of the validity).
DNSSEC_TICK = 60.0
DNSSEC_SLICE = 500
PRUNE_INTERVAL = 3600.0
# A check result that changes no target's health goes to disk at most this often (its
# history sample goes at once). Transitions, maintenance and addresses are written at
# once, and a clean stop writes everything: a crash loses at most this much of the
# counters and last results, never a health state.
STATE_REFRESH = 30.0
# QR clear and opcode UPDATE, as the first flags byte of a message holds them.
_UPDATE = wire.OPCODE_UPDATE << 3


@functools.lru_cache(maxsize=1 << 16)  # every check result names its record (state, sample)
def _text(name: Name) -> str:
    return wire.name_to_text(name)


@functools.lru_cache(maxsize=1 << 16)  # every transition and every /metrics scrape names them
def _label(name: Name) -> str:
    """A name as /metrics labels show it: as the API writes it, without the final dot."""
    return name_text(name) or "."


class Runtime:
    """A running dynserver's state: the current snapshot, the engine, and what a change
    sets off. The composition root (dynserver.app) builds it, attaches the scheduler,
    notifier, mirrors and secondaries, and gives it the database at start."""

    # Set by attach(), which the composition root calls right after construction: they
    # call back into the runtime, so they are built after it.
    scheduler: Scheduler[CheckKey]
    notifier: Notifier
    mirrors: MirrorWorker
    secondaries: SecondaryNotifier

    def __init__(self, config: Config, transfers: Transfers) -> None:
        self.config = config
        self.zone_configs: dict[Name, ZoneConfig] = {zone.name: zone for zone in config.zones}
        records = [record for zone in config.zones for record in zone.records]
        self.locations = config.locations
        self.engine = Engine(
            records,
            {m.name: m for m in config.monitors},
            locations=self.locations,
            location_names=self._location_names(()),
        )
        self.serials: dict[Name, int] = {}
        # Signed zones' signers (their keys): those with a key_directory now, the ones
        # whose keys are in the database when it is opened (restore).
        self.signers: dict[Name, ZoneSigner] = self._directory_signers(config)
        self._signed_state: dict[Name, object] = {}  # what the keys said when last signed
        self._last_dnssec_tick = 0.0
        self.challenges: dict[tuple[Name, str], acme.Challenge] = {}  # ACME DNS-01, served in zones
        self._challenges_lock = asyncio.Lock()  # one change at a time: disk order is answer order
        for origin, zone_config in self.zone_configs.items():
            soa = next(r for r in zone_config.rrsets if r.rtype == wire.TYPE_SOA)
            self.serials[origin] = soa_fields(soa).serial
        self.zones: dict[Name, Zone] = {origin: self._build_zone(origin) for origin in self.zone_configs}
        # /metrics: target states and serials are read from here when scraped.
        self.metrics = Metrics(
            targets=self._target_samples,
            serials=self._serial_texts,
            locations=self.location_statuses,
            checks=self.check_load,
        )
        # Transfers (and signed queries) are answered by `transfers`, which keeps each
        # zone's IXFR journal.
        self.transfers = transfers
        self.snapshot = self._snapshot()
        # Called by swap after the new snapshot is in place, each returning once no reply
        # from the old one can still go out (the UDP receive threads: UdpServer.fence).
        self.swap_fences: list[Callable[[], None]] = []
        self.store: Store | None = None
        self.writer: Writer | None = None
        self._check_targets: dict[CheckKey, list[TargetKey]] = {}
        self._wake_sweeper = asyncio.Event()
        self._unsaved: set[TargetKey] = set()  # newer result than on disk (STATE_REFRESH)
        self._dns_listening = False
        self._value_set_at: dict[TargetKey, float] = {}
        # [locations]: the agents registered, what each last said of itself, and which
        # locations lost their own connectivity. The checks handed to agents have an id
        # (protocol.check_id) and a generation that changes with the set.
        self._agents: dict[str, _Agent] = {}
        self._local = _Agent(connected=True)
        # A location that sent no result for stale_after of the longest interval (and a
        # timeout) is stale for every target: said once, as an event.
        stale_after = self.locations.stale_after if self.locations is not None else 3
        longest = max((m.interval for m in config.monitors), default=10.0)
        timeout = max((m.timeout for m in config.monitors), default=2.0)
        self._location_window = stale_after * longest + timeout
        self.connectivity = Connectivity(window=self._location_window)
        self._check_ids: dict[str, CheckKey] = {}
        self._agent_checks: dict[str, tuple[Check, float]] = {}
        self._generation = 0
        self._generation_changed: asyncio.Future[None] | None = None
        self._silent: set[str] = set()  # locations with no result within the window
        self._reload_lock = asyncio.Lock()
        self._certificates: dict[CheckKey, float] = {}  # expiring ones already said
        self._reconfigure: Callable[[Config], Awaitable[list[str]]] = self._apply_only
        self._prepare: Callable[[Config], Config] = lambda loaded: loaded

    def attach(
        self,
        *,
        scheduler: Scheduler[CheckKey],
        notifier: Notifier,
        mirrors: MirrorWorker,
        secondaries: SecondaryNotifier,
        reconfigure: Callable[[Config], Awaitable[list[str]]] | None = None,
        prepare: Callable[[Config], Config] | None = None,
    ) -> None:
        """The parts that report back into the runtime (results, deliveries, mirror
        events); `secondaries` is sent NOTIFY on every change. ``reconfigure`` applies a
        reloaded config to the parts around the runtime (listeners, mirrors...) and calls
        apply_config; ``prepare`` puts the command line's overrides on a config read anew."""
        self.scheduler = scheduler
        self.notifier = notifier
        self.mirrors = mirrors
        self.secondaries = secondaries
        if reconfigure is not None:
            self._reconfigure = reconfigure
        if prepare is not None:
            self._prepare = prepare

    async def restore(self, store: Store) -> None:
        """Resume target states, zone serials and IXFR journals from the database, which
        then also holds credentials and the event log."""
        self.store = store
        await self._restore_challenges(store)  # before the zones are rebuilt: they serve them
        await self._load_keys(self.config)  # keys kept in the database: now they can be read
        await self._restore(store)
        await self._restore_journal(store)

    def record_to(self, writer: Writer) -> None:
        """From now on, states, samples, events and journals are written by ``writer``."""
        self.writer = writer
        self._event(EventRow(kind="system", reason="started", detail={"zones": len(self.zones)}))

    def dns_listening(self) -> None:
        """The DNS listeners are bound: /readyz may say so."""
        self._dns_listening = True

    def save_at_stop(self) -> None:
        """A clean stop: the latest results, and what each current serial stands for."""
        if self.writer is not None:
            self._save_unsaved()  # the latest results, for the next start
            for origin, zone in self.zones.items():  # what the current serial stands for
                self.writer.serial(_text(origin), self.serials[origin], _digest(zone))

    # -- DNS ------------------------------------------------------------------------

    def answer(
        self, data: bytes, tcp: bool, peer: tuple[str, int] | None = None
    ) -> bytes | Stream | Awaitable[bytes | None] | None:
        # Opcode UPDATE (5) waits for the disk; everything else is answered from the
        # snapshot, whose reference is read once per query (a swap is atomic).
        if len(data) > FLAGS and data[FLAGS] & NOT_QUERY == _UPDATE:  # a reply (QR=1) is dropped
            return self._update(data, tcp, peer)
        return self.snapshot.answer(data, tcp, peer)

    async def _update(self, data: bytes, tcp: bool, peer: tuple[str, int] | None) -> bytes | None:
        reply = await self._apply_update(data, peer)
        self.metrics.queries.count(data, reply, tcp)
        return reply

    async def _apply_update(self, data: bytes, peer: tuple[str, int] | None) -> bytes | None:
        """RFC 2136: verify and plan (pure), commit every new value, then acknowledge."""
        outcome = rfc2136.handle(
            data,
            keys={k.name: k for k in self.config.keys},
            zones=self.snapshot.zones,
            records=self.engine.records,
            now=int(time.time()),
        )
        if not isinstance(outcome, rfc2136.Plan):
            if outcome is not None:  # NOTAUTH: a signature that does not verify, mostly
                unauthorized = len(outcome) >= 4 and outcome[3] & 0xF == wire.NOTAUTH
                self.metrics.update("rfc2136", "unauthorized" if unauthorized else "refused")
            return outcome
        source = peer[0] if peer else None
        try:
            for key, value in outcome.changes:
                await self.update_target(
                    key, value, actor=f"tsig:{outcome.key}", source=source, via="rfc2136"
                )
            if outcome.challenges:
                rcode = await self.change_challenges(
                    outcome.zone,
                    outcome.challenges,
                    actor=f"tsig:{outcome.key}",
                    source=source,
                    via="rfc2136",
                    max_age=next(k.acme_max_age for k in self.config.keys if k.name == outcome.key),
                )
                if rcode != wire.NOERROR:
                    return outcome.reply(rcode)
        except Exception:
            log.exception("event=update_failed via=rfc2136 key=%s", outcome.key)
            return outcome.reply(wire.SERVFAIL)
        return outcome.reply(wire.NOERROR)

    def swap(self, snapshot: Snapshot) -> None:
        """Serve ``snapshot`` from now on: when this returns, no reply from the one it
        replaces goes out (a receive thread's batch in flight has been sent)."""
        self.snapshot = snapshot
        for fence in self.swap_fences:
            fence()

    def _snapshot(self, *, warm: bool = True) -> Snapshot:
        """A snapshot built from scratch, counting queries into the same /metrics counters."""
        chaos = {}
        if self.config.server.chaos_version:
            chaos["version"] = self.config.server.chaos_version
        if self.config.server.chaos_hostname:
            chaos["hostname"] = self.config.server.chaos_hostname
        return Snapshot(
            dict(self.zones), chaos=chaos, warm=warm, transfers=self._transfer, stats=self.metrics.queries
        )

    def _build_zone(self, origin: Name, *, sign: bool = True) -> Zone:
        """Static data + the current answers of the zone's dynamic records (signed, if
        the zone is and ``sign``; unsigned, it still has its DNSKEY, CDS... at the apex)."""
        zone_config = self.zone_configs[origin]
        rrsets: list[RRset] = [r for r in zone_config.rrsets if r.rtype != wire.TYPE_SOA]
        empty: list[Name] = []
        for record in zone_config.records:
            rrset = self.engine.rrset((record.name, record.type))
            if rrset is None:
                empty.append(record.name)  # fallback none: the name exists, with no data
            else:
                rrsets.append(rrset)
            rrsets.extend(self.engine.target_rrsets(record))
        rrsets.extend(acme.rrsets(self.challenges, origin).values())
        soa = next(r for r in zone_config.rrsets if r.rtype == wire.TYPE_SOA)
        signer = self.signers.get(origin)
        if signer is not None:
            rrsets = [r for r in rrsets if not (r.name == origin and r.rtype in APEX_TYPES)]
            rrsets.extend(signer.apex_rrsets(soa.ttl, time.time()))
        zone = Zone.build(origin, [soa, *rrsets], empty_names=empty).with_serial(self.serials[origin])
        return self._sign(origin, zone) if sign else zone

    # -- DNSSEC (dynserver/dnssec) -------------------------------------------------------

    def _directory_signers(self, config: Config) -> dict[Name, ZoneSigner]:
        """Signers of the zones whose keys are in a key_directory (a key made if none)."""
        signers = {}
        for zone in config.zones:
            if zone.dnssec is None or zone.dnssec.key_directory is None:
                continue
            directory = keystore.DirectoryKeys(zone.dnssec.key_directory)
            keys = directory.load(zone.name)
            if not keys:
                key = generate(zone.name, zone.dnssec.algorithm)
                directory.save(key)
                _key_made(key, str(zone.dnssec.key_directory))
                keys = [key]
            signers[zone.name] = _signer(zone, keys)
        return signers

    async def _load_keys(self, config: Config) -> bool:
        """Read every signed zone's keys again (a key made for a zone that has none);
        True if any zone's keys changed."""
        signers: dict[Name, ZoneSigner] = {}
        for zone in config.zones:
            if zone.dnssec is None:
                continue
            if zone.dnssec.key_directory is None and self.store is None:
                continue  # the database is not open yet (restore reads them)
            keys = await keystore.load_keys(zone, self.store)
            if not keys and zone.name in self.signers:
                # Keys that were there are gone (a directory emptied by mistake?): a new key
                # would not match the parent's DS. Keep signing with the ones in use.
                log.warning("event=dnssec_keys_missing zone=%s kept=current", _text(zone.name))
                signers[zone.name] = self.signers[zone.name]
                continue
            if not keys:
                key = generate(zone.name, zone.dnssec.algorithm)
                await keystore.save_key(zone, self.store, key)
                _key_made(key, str(zone.dnssec.key_directory or "the database"))
                keys = [key]
            signers[zone.name] = _signer(zone, keys)
        changed = {o: _key_texts(s) for o, s in signers.items()} != {
            o: _key_texts(s) for o, s in self.signers.items()
        } or any(s.policy != self.signers[o].policy for o, s in signers.items() if o in self.signers)
        self.signers = signers
        return changed

    def _key_event_passed(self, now: float) -> bool:
        """A key time (publish, activate, inactive, delete, sync_...) fell between the last
        signing tick and ``now``: the sweeper (once a second) signs at once, not within 60 s."""
        last = self._last_dnssec_tick
        return any(
            last < at <= now
            for signer in self.signers.values()
            for key in signer.keys
            for at in key_times(key)
            if at
        )

    def dnssec_keys(self, origin: Name) -> list[Key]:
        """The keys a signed zone is signed with now (empty for an unsigned zone)."""
        signer = self.signers.get(origin)
        return list(signer.keys) if signer is not None else []

    def _sign(
        self, origin: Name, zone: Zone, previous: Zone | None = None, names: Iterable[Name] | None = None
    ) -> Zone:
        """``zone`` signed: all of it, or (``previous`` signed with the same cuts, and
        ``names`` the names that changed) only what changed. Adds the names whose DNSSEC
        records changed to ``names`` when it is a set."""
        signer = self.signers.get(origin)
        if signer is None:
            if zone.signed is None:
                return zone
            return Zone(origin=zone.origin, nodes=zone.nodes, cuts=zone.cuts, soa=zone.soa)
        now = time.time()
        state = signer.state(now)
        # Other keys publish or sign than when the zone was last signed (a rollover's
        # step): every RRset needs the signatures of the keys that sign now.
        keys_moved = state != self._signed_state.get(origin)
        self._signed_state[origin] = state
        if (
            keys_moved
            or previous is None
            or previous.signed is None
            or names is None
            or previous.cuts != zone.cuts
        ):
            signed_zone = signer.sign(zone, now)
            if isinstance(names, set):  # every name, and every NSEC3 owner before and after
                names |= set(zone.nodes) | _signed_owners(previous) | _signed_owners(signed_zone)
            return signed_zone
        carried = Zone(
            origin=zone.origin, nodes=zone.nodes, cuts=zone.cuts, soa=zone.soa, signed=previous.signed
        )
        signed, changed = signer.update(carried, names, now)
        if isinstance(names, set):
            names |= changed
        return signed

    def publish(self, records: Iterable[RecordKey], *, targets: bool = True) -> None:
        """New answers for these records: serial + 1 in their zones, swap the snapshot.

        Only the records' own names (and, with ``targets``, their targets' names: an
        address changed) are rebuilt, and the new snapshot keeps every template of the
        zones that did not change. A health change moves no address: rewriting every
        target's name made each transition cost O(targets of the record), 93 ms of CPU
        per result for one record of 20,000 targets (bench/check_scale.py table)."""
        changes: dict[Name, dict[Name, dict[int, RRset]]] = {}
        for key in records:
            record = self.engine.records[key]
            nodes = changes.setdefault(record.zone, {})
            rrset = self.engine.rrset(key)
            nodes[record.name] = {rrset.rtype: rrset} if rrset is not None else {}
            self.mirrors.submit(record, self.engine.decisions[key].values)
            if targets:
                for target_rrset in self.engine.target_rrsets(record):
                    nodes[target_rrset.name] = {target_rrset.rtype: target_rrset}
        self._publish_nodes(changes)

    def _publish_nodes(
        self, changes: dict[Name, dict[Name, dict[int, RRset]]], gone: Iterable[Name] = ()
    ) -> None:
        """These names' new data: serial + 1 in their zones, swap the snapshot, journal,
        NOTIFY. ``gone``: names left without data that stop existing (Zone.without)."""
        if not changes:
            return
        before = {origin: self.zones[origin] for origin in changes}
        gone = list(gone)
        names: dict[Name, set[Name]] = {}
        for origin, nodes in changes.items():
            self.serials[origin] = next_serial(self.serials[origin])
            if gone:
                zone = self.zones[origin].with_nodes(nodes).without(gone).with_serial(self.serials[origin])
            else:  # one copy of the zone's name index, not two
                zone = self.zones[origin].with_nodes(nodes, serial=self.serials[origin])
            # Signed before the swap: the new answer is never served without its RRSIG.
            names[origin] = set(nodes) | set(gone)
            self.zones[origin] = self._sign(origin, zone, before[origin], names[origin])
            if self.writer is not None:
                # The content digest is written at a clean stop; "" says "unknown" after a crash.
                self.writer.serial(_text(origin), self.serials[origin], "")
        self.swap(self.snapshot.derive(dict(self.zones), names))
        self._tell_secondaries(before, names)

    async def dnssec_tick(self, now: float | None = None) -> None:
        """Keys read again (a rollover's new key or times: the zone signed anew, DNSKEY,
        CDS and CDNSKEY included) and signatures near their expiry renewed, a slice at a
        time; each change is a new serial, journaled and NOTIFYed like any other."""
        if not any(zone.dnssec is not None for zone in self.config.zones):
            return
        now = time.time() if now is None else now
        keys_changed = await self._load_keys(self.config)
        for origin, signer in self.signers.items():
            if origin not in self.zones:
                continue
            before = self.zones[origin]
            if keys_changed or before.signed is None or signer.state(now) != self._signed_state.get(origin):
                self.serials[origin] = next_serial(self.serials[origin])
                zone = self._build_zone(origin)
                names = set(before.nodes) | set(zone.nodes) | _signed_owners(before) | _signed_owners(zone)
                log.info("event=dnssec_signed zone=%s keys=%s", _text(origin), signer.state(now))
            else:
                due = signer.due(before, now, DNSSEC_SLICE)
                if not due:
                    continue
                self.serials[origin] = next_serial(self.serials[origin])
                zone, names = signer.refresh(before.with_serial(self.serials[origin]), due, now)
                zone, more = signer.update(zone, (), now)  # the new SOA's signature
                names |= more
                log.info("event=dnssec_refreshed zone=%s names=%d", _text(origin), len(due))
            self.zones[origin] = zone
            if self.writer is not None:
                self.writer.serial(_text(origin), self.serials[origin], "")
            self.swap(self.snapshot.derive(dict(self.zones), {origin: names}))
            self._tell_secondaries({origin: before}, {origin: names})

    # -- ACME challenges (dynserver.update.acme) ----------------------------------------

    async def change_challenges(
        self,
        zone: Name,
        changes: Iterable[acme.Change],
        *,
        actor: str,
        source: str | None,
        via: str,
        max_age: float,
    ) -> int:
        """Apply challenge changes in order: on disk first, then served in the same step
        (serial + 1, journal, NOTIFY), as a target update. NOERROR, or REFUSED for a name
        where the zone has other data or that is at or below one of its delegations."""
        changes = list(changes)
        zone_config = self.zone_configs[zone]
        taken = {r.name for r in zone_config.rrsets}
        cuts = self.zones[zone].cuts
        for change in changes:
            if change.name in taken or any(change.name[i:] in cuts for i in range(len(change.name))):
                return wire.REFUSED
        async with self._challenges_lock:
            after = acme.apply(self.challenges, zone, changes, now=time.time(), max_age=max_age, actor=actor)
            try:
                changed = await self._set_challenges(
                    after, actor=actor, reason=f"{via} from {source or 'unknown'}"
                )
            except Exception:
                self.metrics.update(via, "failed")
                raise
        self.metrics.update(via, "changed" if changed else "unchanged")
        return wire.NOERROR

    def challenge_list(self) -> list[acme.Challenge]:
        return sorted(self.challenges.values(), key=lambda c: (c.name[::-1], c.value))

    async def _set_challenges(
        self, after: dict[tuple[Name, str], acme.Challenge], *, actor: str, reason: str
    ) -> bool:
        """Store, then serve ``after`` (the caller holds the lock); an event says what
        changed. False if nothing did."""
        before = self.challenges
        added = [c for key, c in after.items() if before.get(key) != c]  # new or renewed
        removed = [c for key, c in before.items() if key not in after]
        if not added and not removed:
            return False
        if self.store is not None:
            rows = [
                StoredChallenge(_label(c.name), c.value, _label(c.zone), c.added, c.expires, c.actor)
                for c in added
            ]
            event = EventRow(
                kind="acme",
                record=_text((added or removed)[0].name),
                result="ok",
                reason=reason,
                actor=actor,
                detail={
                    "added": [[_label(c.name), c.value] for c in added],
                    "removed": [[_label(c.name), c.value] for c in removed],
                },
            )
            try:
                await self.store.change_challenges(
                    rows, [(_label(c.name), c.value) for c in removed], commit=False
                )
                await self.store.add_events([event], commit=False)
                await self.store.commit()
            except Exception:
                with contextlib.suppress(Exception):  # nothing half-written rides the next commit
                    await self.store.rollback()
                raise
        self.challenges = after
        changed: dict[Name, dict[Name, dict[int, RRset]]] = {}
        gone: list[Name] = []
        for challenge in [*added, *removed]:
            if (challenge.name, challenge.value) in before and (challenge.name, challenge.value) in after:
                continue  # renewed: the same answer
            served = acme.rrsets(after, challenge.zone).get(challenge.name)
            nodes = changed.setdefault(challenge.zone, {})
            nodes[challenge.name] = {wire.TYPE_TXT: served} if served is not None else {}
            if served is None:
                gone.append(challenge.name)  # NXDOMAIN again, as before it was added
        log.info(
            "event=acme_challenges added=%d removed=%d actor=%s reason=%r",
            len(added),
            len(removed),
            actor,
            reason,
        )
        self._publish_nodes(changed, gone)
        return True

    async def _expire_challenges(self) -> None:
        """Remove the challenges older than their maximum age (a client that never deleted)."""
        if not acme.expired(self.challenges, time.time()):
            return
        async with self._challenges_lock:
            gone = {(c.name, c.value) for c in acme.expired(self.challenges, time.time())}
            after = {key: c for key, c in self.challenges.items() if key not in gone}
            try:
                await self._set_challenges(after, actor="system", reason="maximum age reached")
            except Exception:
                log.exception("event=acme_expiry_failed")  # tried again on the next sweep

    async def _restore_challenges(self, store: Store) -> None:
        """Serve again the challenges stored before a restart, in zones still served."""
        origins = {_label(origin): origin for origin in self.zone_configs}
        for row in await store.challenges():
            zone = origins.get(row.zone)
            if zone is None:
                continue
            name = parse_name(row.name)
            self.challenges[(name, row.value)] = acme.Challenge(
                zone, name, row.value, row.added, row.expires, row.actor
            )

    # -- reads, for the web and the update paths --------------------------------------

    def web_settings(self) -> WebConfig:
        """[web]: login, public pages, propagation resolvers and timeout, limits, tokens."""
        return self.config.web

    def dynamic_records(self) -> list[DynamicRecord]:
        """Every dynamic record of every zone, in config order."""
        return [record for zone in self.config.zones for record in zone.records]

    def count_update(self, via: str, result: str) -> None:
        """An update request's outcome for /metrics: the web counts the ones it refuses,
        update_target the ones it applies or finds unchanged."""
        self.metrics.update(via, result)

    def count_login(self, result: str) -> None:
        """A dashboard login's outcome for /metrics: ok, fail or limited."""
        self.metrics.logins.labels(result).inc()

    def metrics_text(self) -> bytes:
        """/metrics in the Prometheus text format, read now."""
        return self.metrics.render()

    def current_snapshot(self) -> Snapshot:
        """The snapshot queries are answered from now (read once per use: a swap is atomic)."""
        return self.snapshot

    def zone(self, origin: Name) -> Zone:
        """A zone as it is now (the secondaries' NOTIFY reads its serial)."""
        return self.zones[origin]

    def zone_config(self, origin: Name) -> ZoneConfig:
        return self.zone_configs[origin]

    def served_zones(self) -> list[tuple[Zone, ZoneConfig | None]]:
        """The zones of the current snapshot with their config, in DNS order (by labels
        from the root), as the dashboard and the API list them."""
        zones = sorted(self.snapshot.zones.items(), key=lambda item: item[0][::-1])
        return [(zone, self.zone_configs.get(origin)) for origin, zone in zones]

    def target_state(self, key: TargetKey) -> TargetState:
        return self.engine.states[key]

    def monitor_states(self, key: TargetKey) -> list[tuple[str, TargetState]]:
        """Combined checks: each monitor's own state of the target (empty: one monitor)."""
        return self.engine.monitor_states(key)

    def monitors_required(self, key: TargetKey) -> int:
        """Combined checks: how many of the target's monitors must be up."""
        combination = self.engine.combined.get(key)
        return combination.need if combination is not None else 1

    def value(self, key: TargetKey) -> str | None:
        """The target's current value: the configured one, or the last update's."""
        return self.engine.values[key]

    def value_set_at(self, key: TargetKey) -> float | None:
        """When an update last set the target's value (Unix time), if one did."""
        return self._value_set_at.get(key)

    def decision(self, key: RecordKey) -> Decision:
        """The record's current answer, and why."""
        return self.engine.decisions[key]

    def ttl(self, key: RecordKey) -> int:
        """The TTL the record is answered with now (it may be lowered while pending)."""
        return self.engine.ttl(key)

    def mirror_status(self) -> list[MirrorStatus]:
        return self.mirrors.status()

    def current_answers(self) -> list[tuple[DynamicRecord, tuple[str, ...]]]:
        """Every record with the values it answers now (the mirrors adopt them at start)."""
        return [(r, self.engine.decisions[k].values) for k, r in self.engine.records.items()]

    def database(self) -> Store | None:
        """The open database (None without [database] or before start): credentials and
        the event log live in it."""
        return self.store

    async def events(self, **filters: Any) -> list[EventRow]:
        """The event log, newest first, with Store.events' filters (record, target,
        kind, since, until, limit, before_id); none without a database."""
        if self.store is None:
            return []
        return await self.store.events(**filters)

    async def samples(self, record: DynamicRecord, since: float) -> list[Sample]:
        """A record's check history since ``since`` (Unix time); none without a database."""
        if self.store is None:
            return []
        return await self.store.samples(_text(record.name), since)

    def ready(self) -> dict[str, bool]:
        """Ready = answering DNS, the database open (when one is configured) and every
        monitored target being checked: a load balancer should not send traffic before."""
        dns_listening = self._dns_listening
        database_open = self.config.database is None or self.store is not None
        pushed = self.engine.pushed  # heartbeats come in: nothing to wait for
        monitored = sum(
            1
            for r in self.engine.records.values()
            if any(n not in pushed for t in r.targets for n in monitors_of(r, t))
        )
        if self.locations is not None and not self.locations.local:
            # Only agents check: ready once one of them is connected.
            checking = any(agent.connected for agent in self._agents.values())
        else:
            checking = self.scheduler.running > 0
        checks_running = monitored == 0 or (dns_listening and checking)
        return {
            "ready": dns_listening and database_open and checks_running,
            "dns_listening": dns_listening,
            "database_open": database_open,
            "checks_running": checks_running,
        }

    def check_load(self) -> Load | None:
        """The scheduler's load (None before it is attached): /metrics and the dashboard."""
        scheduler = getattr(self, "scheduler", None)
        return scheduler.load() if scheduler is not None else None

    def on_checks_behind(self, behind: bool, load: Load) -> None:
        """The scheduler fell behind (checks start over a second late: the machine, or the
        cap of checks in flight, cannot keep up) or caught up again: said, not hidden."""
        if behind:
            reason = (
                f"checks are running late: the last started {load.late:.1f} s after its due time; "
                f"{load.in_flight} of at most {load.max_in_flight} in flight, {load.waiting} waiting"
            )
            log.warning(
                "event=checks_behind late=%.3f in_flight=%d max_in_flight=%d waiting=%d",
                load.late,
                load.in_flight,
                load.max_in_flight,
                load.waiting,
            )
        else:
            reason = "checks start on time again"
            log.info("event=checks_caught_up in_flight=%d waiting=%d", load.in_flight, load.waiting)
        detail = {"late": round(load.late, 3), "in_flight": load.in_flight, "waiting": load.waiting}
        self._event(
            EventRow(
                kind="scheduler", result="behind" if behind else "caught_up", reason=reason, detail=detail
            )
        )

    # -- secondaries: AXFR/IXFR and NOTIFY ---------------------------------------------

    def _transfer(
        self, query: wire.Query, data: bytes, tcp: bool, peer: tuple[str, int] | None, snapshot: Snapshot
    ) -> bytes | Stream | None:
        return self.transfers.answer(query, data, tcp, peer, snapshot, int(time.time()))

    def _tell_secondaries(self, before: dict[Name, Zone], changes: Mapping[Name, Iterable[Name]]) -> None:
        """Journal what each changed zone's new serial changed (IXFR), and NOTIFY."""
        for origin, old in before.items():
            zone_journal = self.transfers.journals.get(origin)
            if zone_journal is None:
                continue  # no [zones.X.transfer]: nobody copies this zone
            delta = journal.diff(old, self.zones[origin], changes[origin])
            seq = zone_journal.add(delta)
            if self.writer is not None:
                row = JournalRow(seq, delta.serial_from, delta.serial_to, journal.encode(delta))
                self.writer.journal(_text(origin), row, zone_journal.first_seq)
            self.secondaries.changed(origin)

    async def _restore_journal(self, store: Store) -> None:
        """Load the stored journals that still lead to each zone's current serial.

        A journal that ends elsewhere (the zone was rebuilt with a new serial after a
        crash, or its master file changed) cannot be continued: it is dropped, and a
        secondary that is behind gets a full transfer."""
        stored = await store.journal()
        drop: dict[str, int] = {}
        for origin, zone_journal in self.transfers.journals.items():
            rows = stored.get(_text(origin), [])
            try:
                entries = [(r.seq, journal.decode(r.serial_from, r.serial_to, r.data)) for r in rows]
            except ValueError:
                entries = []
            restored = journal.Journal(zone_journal.limit, entries)
            if restored.last_serial != self.serials[origin]:
                if rows:
                    log.info(
                        "event=journal_dropped zone=%s journal_ends=%s serial=%d",
                        _text(origin),
                        restored.last_serial,
                        self.serials[origin],
                    )
                restored = journal.Journal(zone_journal.limit, [])
            if rows:
                drop[_text(origin)] = restored.first_seq if len(restored) else rows[-1].seq + 1
            self.transfers.journals[origin] = restored
        if drop:
            await store.keep_journal(drop)

    # -- health ---------------------------------------------------------------------

    def on_result(self, key: CheckKey, result: Result) -> None:
        """A check's result, for every target sharing the check."""
        self.on_results([(key, result)])

    def on_results(self, results: list[tuple[CheckKey, Result]]) -> None:
        """Check results in the order they came (the scheduler hands over those of one
        event-loop pass at once), then every health change among them published
        together: one recompute, one new serial, one snapshot swap, then each
        transition's event, log line and alert, as _handle_changes does for one.

        The answer still changes in the call that decides the transition. At start
        every target's first result is a transition (unknown -> up): one swap each (a
        copy of the zone's name index, 1-3 ms at 20,000 targets) made the first cycle of
        20,000 targets a backlog of over a minute (docs/benchmarks.md, issue 19)."""
        if self.locations is not None:  # the vote of locations: each result as it comes
            for key, result in results:
                targets = self._count_result(key, result)
                self._location_result(self.locations.name, self._local, key, targets, result)
            return
        changes: list[Change] = []
        for key, result in results:
            targets = self._count_result(key, result)
            found = self.engine.apply(targets, result, monitor=key.monitor)
            self._record_result(targets, result, found)
            changes += found
        self._publish_changes(changes)

    def _count_result(self, key: CheckKey, result: Result) -> list[TargetKey]:
        """A check's result in /metrics (and its certificate's expiry): the targets it covers."""
        monitor = self.engine.monitors.get(key.monitor)
        if monitor is not None:
            self.metrics.check_result(key.monitor, monitor.type, result.ok, result.latency)
        targets = self._check_targets.get(key, [])
        if result.certificate_expires is not None and monitor is not None:
            self._certificate(key, targets, result.certificate_expires)
        return targets

    def _after_result(self, targets: list[TargetKey], result: Result, changes: list[Change]) -> None:
        self._record_result(targets, result, changes)
        self._publish_changes(changes)

    def _record_result(
        self, targets: list[TargetKey], result: Result, changes: list[Change], now: float | None = None
    ) -> None:
        """To the database: a history sample per target, the state of a changed target
        now, an unchanged one's on the next refresh. ``now``: the wall clock of the
        samples (an agent's batch, which arrived at one moment, reads it once)."""
        writer = self.writer
        if writer is None:
            return
        if now is None:
            now = time.time()
        states = self.engine.states
        changed = {target_key(c.record, c.target) for c in changes} if changes else ()
        for target in targets:
            state = states.get(target)
            if state is None:
                continue
            if target in changed:
                self._save_state(target)
            else:
                self._unsaved.add(target)
            health = state.health.value
            writer.sample(Sample(now, _text(target[0]), target[2], result.ok, result.latency, health))

    def _publish_changes(self, changes: list[Change]) -> None:
        self._handle_changes(changes)
        if any(c.transition.current is Health.PENDING for c in changes):
            self._wake_sweeper.set()  # a failback wait started: wake exactly when it ends

    def _certificate(self, key: CheckKey, targets: list[TargetKey], expires: float) -> None:
        """A target's certificate expires within its monitor's certificate_expiry_days: an
        event and a notification, once for each certificate (a renewed one is new)."""
        days = self.engine.monitors[key.monitor].certificate_expiry_days
        if days is None or self._certificates.get(key) == expires:
            return
        reason = expiry_reason(expires, time.time(), days)
        if reason is None:
            self._certificates.pop(key, None)
            return
        self._certificates[key] = expires
        until = datetime.datetime.fromtimestamp(expires, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        for target in targets:
            record, name = _text(target[0]), target[2]
            self._event(
                EventRow(
                    kind="certificate",
                    record=record,
                    target=name,
                    reason=f"{reason}: valid until {until} ({key.address}:{key.port or 443})",
                    detail={"type": target[1], "expires": expires, "days": days, "address": key.address},
                )
            )
            log.warning("event=certificate_expiring record=%s target=%s expires=%s", record, name, until)
            if self.notifier.enabled:
                self.notifier.notify(
                    Alert.now(
                        event="certificate",
                        record=record,
                        type=target[1],
                        target=name,
                        value=self.engine.values.get(target),
                        previous=self.engine.states[target].health.value,
                        current=self.engine.states[target].health.value,
                        reason=f"{reason}: valid until {until}",
                    )
                )

    def _handle_changes(
        self, changes: list[Change], actor: str | None = None, kind: str | None = None
    ) -> None:
        """Republish changed answers, then record events and alerts for the transitions
        (``kind``: the events' kind when not health or maintenance; then no alert)."""
        if not changes:
            return
        before = {key: self.engine.decisions[key].values for key in self._keys(changes)}
        changed = self.engine.recompute(before)
        self.publish(changed, targets=False)  # the answer first: events, alerts and logs may not delay it
        for change in changes:
            self._event_for(change, actor, kind)
            if kind is None:
                self._alert_for(change)
            record = change.record
            state = change.transition.current.value
            self.metrics.transition(_label(record.name), record.type, change.target.name, state)
        for key in changed:
            self._answer_changed(key, before[key], actor)

    def _answer_changed(self, key: RecordKey, before: tuple[str, ...], actor: str | None) -> None:
        """A record answers differently (values or TTL): an event, a log line, a count."""
        decision = self.engine.decisions[key]
        self._event(
            EventRow(
                kind="answer",
                record=_text(key[0]),
                previous=",".join(before),
                current=",".join(decision.values),
                reason=decision.reason,
                actor=actor,
                detail={"type": key[1], "ttl": self.engine.ttl(key)},
            )
        )
        log.info(
            "event=answer_changed record=%s type=%s previous=%s current=%s reason=%r actor=%s",
            _text(key[0]),
            key[1],
            ",".join(before) or "-",
            ",".join(decision.values) or "-",
            decision.reason,
            actor or "-",
        )
        self.metrics.answer_changed(_label(key[0]), key[1])

    def heartbeat(
        self, key: TargetKey, ok: bool, reason: str, latency: float | None = None, *, updates: bool = False
    ) -> tuple[str, ...]:
        """A heartbeat for a target's push monitors (its push URL, or with ``updates`` an
        address update, for the monitors whose heartbeat = "updates"): the monitors that
        took it (none: the target has no such monitor)."""
        names = self.engine.push_monitors(key)
        if updates:
            names = tuple(n for n in names if self.engine.monitors[n].heartbeat is Heartbeat.UPDATES)
        if not names:
            return ()
        result = Result(ok=ok, reason=reason, at=asyncio.get_running_loop().time(), latency=latency)
        changes = []
        for name in names:
            self.metrics.check_result(name, MonitorType.PUSH, ok, latency)
            change = self.engine.heartbeat(key, name, result)
            if change is not None:
                changes.append(change)
        self._after_result([key], result, changes)  # states of changed targets saved there
        return names

    async def force(
        self,
        key: TargetKey,
        state: Health | None,
        *,
        actor: str,
        until: float | None = None,
        reason: str = "",
    ) -> bool:
        """Force a target up or down (gdnsd's admin_state) until ``until`` (Unix time) or
        until cleared (``state`` None clears): on disk first, then live in the same step,
        as an update. The checks go on meanwhile; clearing returns to what they say.
        False: nothing to change (clearing a target that is not forced)."""
        current = self.engine.forcing.get(key)
        if state is None and current is None:
            return False
        forcing = None if state is None else Forcing(state, actor, time.time(), until, reason)
        record = _text(key[0])
        if self.store is not None:
            if forcing is None:
                await self.store.delete_forced(record, key[1], key[2])
            else:
                await self.store.save_forced(
                    StoredForced(
                        record, key[1], key[2], forcing.state.value, actor, forcing.at, until, reason
                    )
                )
        previous = self.engine.states[key].health
        ended = forcing is None and actor == "system"  # its end time came (_expire_forcing)
        change = self.engine.force(key, forcing, asyncio.get_running_loop().time(), ended)
        self._save_state(key)
        log.info(
            "event=force_request record=%s target=%s state=%s until=%s actor=%s",
            record,
            key[2],
            "cleared" if forcing is None else forcing.state.value,
            "-" if until is None else until,
            actor,
        )
        if change is not None:
            self._handle_changes([change], actor=actor, kind="forced")
            return True
        # The same health as before (forced up while up, or drained): still an event.
        self._event(
            EventRow(
                kind="forced",
                record=record,
                target=key[2],
                reason=forcing.text() if forcing is not None else "forced state cleared: back to its checks",
                previous=previous.value,
                current=self.engine.states[key].health.value,
                actor=actor,
                detail={"type": key[1], **({"forced": _forced_detail(forcing)} if forcing else {})},
            )
        )
        return True

    def forcing(self, key: TargetKey) -> Forcing | None:
        """A target's forced state, if an admin set one."""
        return self.engine.forcing.get(key)

    async def _expire_forcing(self) -> None:
        for key in self.engine.expired_forcing(time.time()):
            try:
                await self.force(key, None, actor="system")
            except Exception:
                log.exception("event=forced_expiry_failed target=%s", key[2])  # tried again next sweep

    def set_maintenance(self, key: TargetKey, on: bool, actor: str | None = None) -> bool:
        change = self.engine.set_maintenance(key, on, asyncio.get_running_loop().time())
        if change is None:
            return False
        self._save_state(key)
        self._handle_changes([change], actor=actor)
        return True

    async def update_target(
        self, key: TargetKey, value: str, *, actor: str, source: str | None = None, via: str = "api"
    ) -> tuple[bool, str | None]:
        """Set a target's address: on disk first, then live in the same step.

        Returns (changed, previous value). The database commit is awaited before the
        answer changes and before the caller acknowledges, so an acknowledged update
        survives a crash; the new address is checked at once.
        """
        previous = self.engine.values[key]
        # heartbeat = "updates": every update of the target is a heartbeat, a changed
        # address or not (a dial-up backup that keeps its address still says it lives).
        self.heartbeat(key, True, f"heartbeat: update via {via}", updates=True)
        if previous == value:
            self.metrics.update(via, "unchanged")
            return False, previous
        now = time.time()
        if self.store is not None:
            event = EventRow(
                kind="update",
                record=_text(key[0]),
                target=key[2],
                previous=previous,
                current=value,
                actor=actor,
                reason=f"{via} from {source or 'unknown'}",
                detail={"type": key[1], "source": source, "via": via},
            )
            try:
                await self.store.save_states(
                    [self._stored_state(key, value=value, value_set_at=now)], commit=False
                )
                await self.store.add_events([event], commit=False)
                await self.store.commit()
            except Exception:
                # Not on disk, so not applied: and the half-written rows must not ride
                # along with the writer's next commit.
                with contextlib.suppress(Exception):
                    await self.store.rollback()
                self.metrics.update(via, "failed")
                raise
        self.metrics.update(via, "changed")
        self._value_set_at[key] = now
        self.engine.set_value(key, value)
        log.info(
            "event=target_update record=%s target=%s previous=%s current=%s actor=%s source=%s via=%s",
            _text(key[0]),
            key[2],
            previous or "-",
            value,
            actor,
            source or "-",
            via,
        )
        record_key = (key[0], key[1])
        before = self.engine.decisions[record_key].values
        for changed in self.engine.recompute([record_key]):  # the new address is answered now
            self._answer_changed(changed, before, actor)
        self.publish([record_key])  # the target's own name answers the new address in any case
        self.refresh_checks()
        self.check_now([key])
        return True, previous

    def check_now(self, targets: Iterable[TargetKey]) -> None:
        """Run now the checks of these targets (each check once, however many share it)."""
        wanted = set(targets)
        self.scheduler.check_now([k for k, ts in self._check_targets.items() if wanted & set(ts)])

    def check_record(self, record: DynamicRecord, *, actor: str, client: str) -> list[str]:
        """Check now, asked for a record (dashboard or API): its targets that have an
        address to check are checked at once, and the request is an event. Returns the targets checked;
        a record without a monitor has none, but the request is still recorded."""
        checked: list[str] = []
        if is_checked(record):
            keys = [target_key(record, t) for t in record.targets]
            checked = [
                t.name
                for t, k in zip(record.targets, keys, strict=True)
                if checked_address(t, self.engine.values[k]) is not None
            ]
            self.check_now(keys)
        self._event(
            EventRow(
                kind="check",
                record=_text(record.name),
                reason=f"check now requested from {client}",
                actor=actor,
                detail={"type": record.type, "targets": checked, "client": client},
            )
        )
        log.info("event=check_now record=%s actor=%s client=%s", record_text(record), actor, client)
        return checked

    def refresh_checks(self) -> None:
        """Hand the scheduler the checks the engine needs now (at start, after an update)."""
        checks = self.engine.checks()
        self._check_targets = {key: targets for key, (_, _, targets) in checks.items()}
        specs = {key: (check, monitor.interval) for key, (check, monitor, _) in checks.items()}
        if self.locations is not None:
            if not self.engine.joined:  # start: every location joins now (quorum.joining)
                now = asyncio.get_running_loop().time()
                self._handle_changes(self.engine.set_locations(self.engine.location_names, now))
            self._hand_to_agents(specs)
            if not self.locations.local:
                specs = {}  # only the agents check
        self.scheduler.set_checks(specs)

    async def sweep(self) -> None:
        """End failback waits on time and notice stalled checkers (staleness)."""
        loop = asyncio.get_running_loop()
        last_prune = 0.0
        last_refresh = loop.time()
        while True:
            deadline = self.engine.next_deadline()
            wait = (
                SWEEP_INTERVAL if deadline is None else max(0.0, min(SWEEP_INTERVAL, deadline - loop.time()))
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake_sweeper.wait()
            self._wake_sweeper.clear()
            changes = self.engine.tick(loop.time())
            changes += self.engine.tick_windows(time.time(), loop.time())
            self._check_silence(loop.time())
            for change in changes:
                self._save_state(target_key(change.record, change.target))
            self._handle_changes(changes)
            await self._expire_challenges()
            await self._expire_forcing()
            if time.time() - self._last_dnssec_tick >= DNSSEC_TICK or self._key_event_passed(time.time()):
                self._last_dnssec_tick = time.time()
                try:
                    await self.dnssec_tick()
                except Exception:  # keys unreadable, a disk error: said, tried again next tick
                    log.exception("event=dnssec_tick_failed")
            if loop.time() - last_refresh >= STATE_REFRESH:
                last_refresh = loop.time()
                self._save_unsaved()
            if self.store is not None and time.time() - last_prune > PRUNE_INTERVAL:
                last_prune = time.time()
                cutoff = time.time() - self.config.history_hours * 3600
                with contextlib.suppress(Exception):
                    await self.store.prune(cutoff)

    # -- reload -----------------------------------------------------------------------

    def config_path(self) -> Path:
        return self.config.path

    async def reload(self, config: Config | None = None, *, actor: str, via: str) -> ReloadOutcome:
        """Apply a new config as a difference, or nothing at all.

        ``config=None`` reads the file again, with every check of a start-up load; an error
        changes nothing and is returned, logged and an event. One reload at a time."""
        async with self._reload_lock:
            started = time.monotonic()
            old = self.config
            try:
                # The command line's overrides apply to a handed config too (an edit's).
                if config is None:  # read in a thread: a big zone's master file takes a while
                    config = await asyncio.to_thread(configuration.load, old.path)
                config = self._prepare(config)
                await self._load_keys(config)  # DNSSEC keys: a zone signed anew, a key added
                changes = await self._reconfigure(config)
                await self.dnssec_tick()  # a key whose times say it now signs: signed at once
            except (ConfigError, OSError) as error:
                duration = time.monotonic() - started
                text = str(error) if isinstance(error, ConfigError) else f"cannot apply: {error}"
                self._event(
                    EventRow(
                        kind="reload",
                        result="fail",
                        reason=f"reload refused ({via}): {text}",
                        actor=actor,
                        detail={"via": via, "errors": [text]},
                    )
                )
                log.warning("event=reload_failed via=%s actor=%s error=%r", via, actor, text)
                return ReloadOutcome(ok=False, errors=(text,), duration=duration)
            duration = time.monotonic() - started
            summary = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
            self._event(
                EventRow(
                    kind="reload",
                    result="ok",
                    reason=f"reloaded ({via}): {summary or 'no change'}",
                    actor=actor,
                    detail={"via": via, "changes": changes, "duration": round(duration, 4)},
                )
            )
            log.info(
                "event=reloaded via=%s actor=%s changes=%d duration=%.4f", via, actor, len(changes), duration
            )
            return ReloadOutcome(ok=True, changes=tuple(changes), duration=duration)

    async def _apply_only(self, config: Config) -> list[str]:
        return self.apply_config(config)

    def apply_config(self, new: Config) -> list[str]:
        """Swap in a validated config: every target that still exists keeps its state,
        its update-set value and its check (same monitor and address: same schedule); a
        zone whose content changed gets serial + 1 and a journal entry (IXFR); the
        snapshot is rebuilt and swapped at once, so no query sees half of it. Returns the
        changes in words."""
        changes = describe(self.config, new)
        loop_now = asyncio.get_running_loop().time()
        old_engine = self.engine
        old_zones = dict(self.zones)
        records = [record for zone in new.zones for record in zone.records]
        restored: dict[TargetKey, TargetState] = {}
        values: dict[TargetKey, str | None] = {}
        maintenance: dict[TargetKey, bool] = {}
        for record in records:
            for target in record.targets:
                key = target_key(record, target)
                if key not in old_engine.states:
                    continue
                before = old_engine._target(old_engine.records[(key[0], key[1])], key)
                restored[key] = old_engine.states[key]
                # The operator's maintenance (API, dashboard) stays unless the file's own changed.
                same = before.maintenance == target.maintenance
                maintenance[key] = old_engine.states[key].maintenance if same else target.maintenance
                if before.value == target.value:  # else the file's newer word wins
                    values[key] = old_engine.values[key]
                elif key in self._value_set_at:
                    del self._value_set_at[key]
        self.config = new
        self.zone_configs = {zone.name: zone for zone in new.zones}
        locations_changed = self.locations != new.locations
        self.locations = new.locations
        names = self._location_names(self._agents) if new.locations is not None else []
        engine = Engine(
            records,
            {m.name: m for m in new.monitors},
            restored=restored,
            values=values,
            locations=new.locations,
            location_names=names,
            parts=old_engine.parts,
            forcing=old_engine.forcing,
        )
        for key, on in maintenance.items():
            engine.states[key] = structs.replace(engine.states[key], maintenance=on)
        engine.drained = old_engine.drained & set(engine.windows)  # a window's end lifts them
        if not locations_changed and new.locations is not None:
            engine.excluded = dict(old_engine.excluded)
            engine.joined = {n: at for n, at in old_engine.joined.items() if n in names}
            for key, views in old_engine.views.items():
                if key in engine.views:
                    engine.views[key] = dict(views)
            for part, views in old_engine.part_views.items():
                if part in engine.part_views:
                    engine.part_views[part] = dict(views)
        elif new.locations is not None:
            engine.set_locations(names, loop_now)
        engine.recompute(list(engine.records))
        self.engine = engine
        self._value_set_at = {k: v for k, v in self._value_set_at.items() if k in engine.states}
        self._unsaved &= set(engine.states)
        # Zones: keep the ones whose content is the same (serial and all), give the
        # others serial + 1 (or the master file's, if newer) and journal the difference.
        for origin in list(self.zones):
            if origin not in self.zone_configs:
                del self.zones[origin]
                self.serials.pop(origin, None)
        for origin, zone_config in self.zone_configs.items():
            soa = next(r for r in zone_config.rrsets if r.rtype == wire.TYPE_SOA)
            file_serial = soa_fields(soa).serial
            old = old_zones.get(origin)
            if old is None:
                self.serials[origin] = file_serial
                self.zones[origin] = self._build_zone(origin)
                continue
            built = self._build_zone(origin, sign=False)  # signed below, with what changed
            if _digest(built) == _digest(old) and _soa_rest(built) == _soa_rest(old):
                # The same data: the same serial. Only the order of answers may have
                # changed (a record's order, a target's weight): then its names are
                # rendered again below, and secondaries have nothing new to transfer.
                self.zones[origin] = old if _turns(built) == _turns(old) else built.with_serial(old.serial)
                continue
            serial = next_serial(self.serials[origin])
            if serial_gt(file_serial, serial):
                serial = file_serial
            self.serials[origin] = serial
            self.zones[origin] = built.with_serial(serial)
            changes.append(f"zone {_label(origin)}: serial {old.serial} -> {serial}")
            if self.writer is not None:
                self.writer.serial(_text(origin), serial, "")
        # Transfers: the new rules and keys, each zone's journal carried over.
        journals = self.transfers.journals
        self.transfers = Transfers(new.zones, new.keys)
        for origin, zone_journal in journals.items():
            if origin in self.transfers.journals:
                self.transfers.journals[origin] = journal.Journal(
                    self.transfers.journals[origin].limit, list(zone_journal.entries())
                )
        # Names whose data changed, per changed, added or removed zone: the new snapshot
        # keeps every other reply already rendered (Snapshot.derive, as a failover does),
        # so a reload of a big zone does not stall the DNS loop re-rendering all of it.
        changed: dict[Name, set[Name]] = {}
        signing_changed = False  # a zone signed or unsigned: no DO=1 reply carries over
        for origin in old_zones.keys() | self.zones.keys():
            old, zone = old_zones.get(origin), self.zones.get(origin)
            if old is zone:
                continue
            old_nodes = old.nodes if old is not None else {}
            new_nodes = zone.nodes if zone is not None else {}
            changed[origin] = {
                n for n in old_nodes.keys() | new_nodes.keys() if old_nodes.get(n) != new_nodes.get(n)
            }
            if old is not None and zone is not None:
                zone = self.zones[origin] = self._sign(origin, zone, old, changed[origin])
                signing_changed |= (old.signed is None) != (zone.signed is None)
            if old is None or zone is None or origin not in self.transfers.journals:
                continue
            if zone.serial == old.serial:
                continue  # only the order of answers changed: nothing to journal
            delta = journal.diff(old, zone, changed[origin])
            seq = self.transfers.journals[origin].add(delta)
            if self.writer is not None:
                row = JournalRow(seq, delta.serial_from, delta.serial_to, journal.encode(delta))
                self.writer.journal(_text(origin), row, self.transfers.journals[origin].first_seq)
        fresh = self._snapshot(warm=False)
        if fresh.chaos == self.snapshot.chaos and not signing_changed:
            fresh = self.snapshot.derive(dict(self.zones), changed)
        self.swap(fresh)
        # Answers that changed go to the mirrors and the event log, as any change does.
        for record_key, record in engine.records.items():
            answer = engine.decisions[record_key].values
            was = old_engine.decisions[record_key].values if record_key in old_engine.decisions else None
            if was != answer:
                self.mirrors.submit(record, answer)
                if was is not None:
                    self._answer_changed(record_key, was, "reload")
        self.refresh_checks()
        for origin, zone in self.zones.items():
            if zone is not old_zones.get(origin):
                self.secondaries.changed(origin)
        return changes

    # -- locations: agents and the vote ([locations]) ----------------------------------

    def locations_config(self) -> LocationsConfig | None:
        return self.locations

    def agent_checks(self) -> tuple[int, dict[str, tuple[Check, float]]]:
        """(generation, check id -> (check, interval)): every check, as agents run them."""
        return self._generation, self._agent_checks

    async def checks_changed(self, generation: int) -> int:
        """Wait until the checks handed to agents differ from ``generation``."""
        while self._generation == generation:
            if self._generation_changed is None or self._generation_changed.done():
                self._generation_changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._generation_changed)
        return self._generation

    def _hand_to_agents(self, specs: dict[CheckKey, tuple[Check, float]]) -> None:
        ids = {check_id(key): key for key in specs}
        handed = {ids_key: specs[key] for ids_key, key in ids.items()}
        if handed == self._agent_checks:
            return
        for gone in set(self._check_ids.values()) - set(ids.values()):
            self.connectivity.forget_check(gone)
        self._check_ids = ids
        self._agent_checks = handed
        self._generation += 1
        if self._generation_changed is not None and not self._generation_changed.done():
            self._generation_changed.set_result(None)

    def on_location_result(self, location: str, check: str, result: Result) -> bool:
        """A result from an agent (the hub stamped its arrival time). False: ``check`` is
        not a check handed out now (or the agent is not registered): nothing changes."""
        return self.on_location_results(location, [(check, result)]) == 1

    def on_location_results(self, location: str, results: Sequence[tuple[str, Result]]) -> int:
        """An agent's batch of results, in order, as on_location_result takes each: what
        is the same for the whole batch (the agent's contact, metrics) is done once. The
        number taken: results of checks not handed out now are dropped."""
        agent = self._agents.get(location)
        if agent is None or self.locations is None:
            return 0
        ids = self._check_ids
        taken = [(key, result) for check, result in results if (key := ids.get(check)) is not None]
        if not taken:
            return 0
        failed = sum(not result.ok for _, result in taken)
        agent.results += len(taken)
        agent.last_result = max(result.at for _, result in taken)
        agent.last_contact = time.time()
        self.metrics.location_batch(location, len(taken) - failed, failed)
        if location in self._silent:
            self._location_back(location)
        check_targets = self._check_targets
        now = time.time()
        for key, result in taken:
            self._location_step(location, key, check_targets.get(key, []), result, now)
        return len(taken)

    def _location_result(
        self, location: str, seen: _Agent, key: CheckKey, targets: list[TargetKey], result: Result
    ) -> None:
        seen.results += 1
        seen.last_result = result.at
        seen.last_contact = time.time()
        self.metrics.location_result(location, result.ok)
        if location in self._silent:
            self._location_back(location)
        self._location_step(location, key, targets, result)

    def _location_step(
        self, location: str, key: CheckKey, targets: list[TargetKey], result: Result, now: float | None = None
    ) -> None:
        """One location's result: its connectivity, its views and the vote, the store
        (``now``: the samples' wall clock), and what it changed published at once."""
        self.connectivity.result(location, key, result.ok, result.at)
        changes = self.engine.apply(targets, result, location, key.monitor)
        changes += self._check_connectivity(result.at)
        self._record_result(targets, result, changes, now)
        if changes:  # nearly every result changes nothing: nothing to publish, no waits begin
            self._publish_changes(changes)

    def on_canary(self, location: str, ok: bool, reason: str) -> None:
        """A location's canary check (its own connectivity): failing excludes it from the vote."""
        self.connectivity.canary(location, ok, reason)
        self._handle_changes(self._check_connectivity(asyncio.get_running_loop().time()))

    def set_agents(self, names: Collection[str]) -> None:
        """The registered agents (the hub: at start and when the agents table changes)."""
        if set(names) == set(self._agents):
            return
        for gone in set(self._agents) - set(names):
            del self._agents[gone]
            self.connectivity.forget(gone)
            self._silent.discard(gone)
        for name in names:
            self._agents.setdefault(name, _Agent())
        now = asyncio.get_running_loop().time()
        self._handle_changes(self.engine.set_locations(self._location_names(names), now))

    def agent_connected(self, name: str, version: str, client: str) -> None:
        agent = self._agents.setdefault(name, _Agent())
        agent.connected, agent.version, agent.client, agent.last_contact = True, version, client, time.time()
        self._event(
            EventRow(
                kind="agent",
                reason=f"agent {name} connected from {client} (version {version})",
                detail={"location": name, "client": client, "version": version},
            )
        )
        log.info("event=agent_connected location=%s client=%s version=%s", name, client, version)

    def agent_disconnected(self, name: str, reason: str) -> None:
        agent = self._agents.get(name)
        if agent is None or not agent.connected:
            return
        agent.connected = False
        agent.last_contact = time.time()
        self._event(
            EventRow(
                kind="agent",
                reason=f"agent {name} disconnected: {reason}",
                detail={"location": name, "reason": reason},
            )
        )
        log.info("event=agent_disconnected location=%s reason=%r", name, reason)

    def location_statuses(self) -> list[LocationStatus]:
        """Every location (the server's first, when it checks), as pages and /metrics show it."""
        if self.locations is None:
            return []
        now = asyncio.get_running_loop().time()
        excluded = self.engine.excluded
        fresh = dict.fromkeys(self.engine.location_names, 0)
        targets = 0
        for key in self.engine.views:
            targets += 1
            for view in self.engine.location_views(key, now):
                fresh[view.name] += view.fresh
        out = []
        for name in self.engine.location_names:
            local = name == self.locations.name and self.locations.local
            seen = self._local if local else self._agents.get(name, _Agent())
            out.append(
                LocationStatus(
                    name=name,
                    kind="local" if local else "agent",
                    connected=seen.connected,
                    version=seen.version,
                    client=seen.client,
                    last_contact=seen.last_contact,
                    results=seen.results,
                    fresh_targets=fresh[name],
                    targets=targets,
                    excluded=excluded.get(name),
                    canary_ok=self.connectivity.canary_ok(name),
                )
            )
        return out

    def target_locations(self, key: TargetKey) -> list[LocationView]:
        """Each location's view of a target, in location order (empty without [locations])."""
        return self.engine.location_views(key, asyncio.get_running_loop().time())

    def target_vote(self, key: TargetKey) -> Tally:
        """How a target's vote stands now."""
        return self.engine.tally(key, asyncio.get_running_loop().time())

    def wall(self, loop_time: float) -> float:
        """An event-loop time (results, states) as Unix time."""
        return loop_time + time.time() - asyncio.get_running_loop().time()

    def _location_names(self, agents: Iterable[str]) -> list[str]:
        if self.locations is None:
            return []
        local = [self.locations.name] if self.locations.local else []
        return local + sorted(a for a in agents if a != self.locations.name)

    def _check_connectivity(self, now: float) -> list[Change]:
        """Exclude (or let back) locations whose own connectivity is gone (or back)."""
        before = self.engine.excluded
        if not before and not self.connectivity.suspects:
            return []  # no failed canary, no location whose every check failed: none excluded
        excluded = self.connectivity.excluded(now)
        if excluded == before:
            return []
        changes = self.engine.set_excluded(excluded, now)
        for name in excluded.keys() - before.keys():
            self._location_event(name, f"excluded from the vote: {excluded[name]}")
        for name in before.keys() - excluded.keys():
            self._location_event(name, "counts again: its connectivity is back")
        return changes

    def _check_silence(self, now: float) -> None:
        """A location with no result within the window stops counting: say so, once."""
        if self.locations is None:
            return
        for name in self.engine.location_names:
            local = name == self.locations.name and self.locations.local
            seen = self._local if local else self._agents.get(name)
            if seen is None or name in self._silent or seen.last_result is None:
                continue
            if now - seen.last_result > self._location_window:
                self._silent.add(name)
                self._location_event(name, f"stale: no result for {now - seen.last_result:.0f} s")

    def _location_back(self, name: str) -> None:
        self._silent.discard(name)
        self._location_event(name, "reports again")

    def _location_event(self, name: str, what: str) -> None:
        counting = [
            n for n in self.engine.location_names if n not in self._silent and n not in self.engine.excluded
        ]
        total = len(self.engine.location_names)
        reason = f"location {name} {what}; deciding from {len(counting)} of {total} locations"
        self._event(
            EventRow(
                kind="location",
                reason=reason,
                detail={"location": name, "counting": counting, "total": total},
            )
        )
        log.info("event=location location=%s what=%r counting=%d total=%d", name, what, len(counting), total)

    # -- events, alerts, persistence -----------------------------------------------

    def _keys(self, changes: list[Change]) -> list[RecordKey]:
        return list(dict.fromkeys((c.record.name, c.record.type) for c in changes))

    def _event(self, event: EventRow) -> None:
        if self.writer is not None:
            self.writer.event(event)

    def add_event(self, event: EventRow) -> None:
        """Record an event from outside the engine (a login, a mirror push)."""
        self._event(event)

    def _event_for(self, change: Change, actor: str | None, kind: str | None = None) -> None:
        transition = change.transition
        key = target_key(change.record, change.target)
        last = self.engine.states[key].last_result
        if kind is None:
            kind = (
                "maintenance" if Health.MAINTENANCE in (transition.previous, transition.current) else "health"
            )
        self._event(
            EventRow(
                kind=kind,
                record=_text(change.record.name),
                target=change.target.name,
                result=None if last is None else ("ok" if last.ok else "fail"),
                reason=transition.reason,
                previous=transition.previous.value,
                current=transition.current.value,
                actor=actor,
                detail=self._transition_detail(change, last),
            )
        )
        log.info(
            "event=target_%s record=%s target=%s previous=%s current=%s reason=%r",
            kind,
            _text(change.record.name),
            change.target.name,
            transition.previous.value,
            transition.current.value,
            transition.reason,
        )

    def _transition_detail(self, change: Change, last: Result | None) -> dict[str, Any]:
        """What an event stores beside its reason; with [locations], what each location saw."""
        detail: dict[str, Any] = {
            "type": change.record.type,
            "latency": None if last is None else last.latency,
        }
        monitors = self.engine.monitor_states(target_key(change.record, change.target))
        if monitors:  # combined checks: what each monitor says (the reason names the failing)
            detail["monitors"] = {
                name: {
                    "health": state.observed.value,
                    "reason": None if state.last_result is None else state.last_result.reason,
                }
                for name, state in monitors
            }
        forcing = self.engine.forcing.get(target_key(change.record, change.target))
        if forcing is not None:  # who forced it, until when (shown on every event meanwhile)
            detail["forced"] = _forced_detail(forcing)
        if self.locations is not None:
            now = asyncio.get_running_loop().time()
            detail["locations"] = {
                view.name: {
                    "health": view.health.value,
                    "fresh": view.fresh,
                    "excluded": view.excluded,
                    "reason": None if view.last_result is None else view.last_result.reason,
                }
                for view in self.engine.location_views(target_key(change.record, change.target), now)
            }
        return detail

    def _alert_for(self, change: Change) -> None:
        transition = change.transition
        if Health.MAINTENANCE in (transition.previous, transition.current):
            return  # maintenance changes do not alert
        event = None
        if transition.current is Health.DOWN:
            event = "failure"
        elif transition.current is Health.UP and transition.previous in (Health.DOWN, Health.PENDING):
            event = "recovery"  # not UNKNOWN -> UP: a start-up is not a recovery
        elif transition.current is Health.PENDING:
            event = "pending"
        if event is None or not self.notifier.enabled:
            return
        key = target_key(change.record, change.target)
        self.notifier.notify(
            Alert.now(
                event=event,
                record=_text(change.record.name),
                type=change.record.type,
                target=change.target.name,
                value=self.engine.values.get(key),
                previous=transition.previous.value,
                current=transition.current.value,
                reason=transition.reason,
            )
        )

    def on_delivery(self, url: str, alert: Alert, ok: bool, detail: str) -> None:
        """A notification was sent or given up on (the notifier's callback)."""
        self.metrics.notifications.labels("ok" if ok else "fail").inc()
        self._event(
            EventRow(
                kind="notify",
                record=alert.record,
                target=alert.target,
                result="ok" if ok else "fail",
                reason=f"{alert.event} to {url}: {detail}",
            )
        )

    def on_mirror_attempt(self, mirror: str, result: str) -> None:
        """A mirror push was tried (the mirror worker's callback)."""
        self.metrics.mirror_pushes.labels(mirror, result).inc()

    def _target_samples(self) -> list[TargetSample]:
        """Every target's current health, for /metrics (read when scraped)."""
        forcing = self.engine.forcing
        return [
            TargetSample(
                _label(key[0]),
                key[1],
                key[2],
                state.health.value,
                None if (forced := forcing.get(key)) is None else forced.state.value,
                None if forced is None else forced.until,
            )
            for key, state in self.engine.states.items()
        ]

    def _serial_texts(self) -> dict[str, int]:
        return {_label(origin): zone.serial for origin, zone in self.snapshot.zones.items()}

    def _save_state(self, key: TargetKey) -> None:
        if self.writer is not None:
            self.writer.state(self._stored_state(key))
            self._unsaved.discard(key)

    def _save_unsaved(self) -> None:
        """Every target with a newer result than on disk (every STATE_REFRESH: 20,000 at
        issue 19's scale, so the clocks' offset is read once for all of them)."""
        writer = self.writer
        if writer is None:
            return
        offset = time.time() - asyncio.get_running_loop().time()
        for key in self._unsaved:
            writer.state(self._stored_state(key, offset=offset))
        self._unsaved.clear()

    def _stored_state(
        self,
        key: TargetKey,
        *,
        value: str | None = None,
        value_set_at: float | None = None,
        offset: float | None = None,
    ) -> StoredState:
        """A target's state as stored; ``offset``: wall clock minus loop clock (read now if None)."""
        state = self.engine.states[key]
        record = self.engine.records[(key[0], key[1])]
        name = key[2]
        configured = record.target(name)
        last = state.last_result
        if offset is None:
            offset = time.time() - asyncio.get_running_loop().time()  # monotonic -> wall clock
        pending_until = state.pending_until
        # Positional, in StoredState's (the table's) order: the keywords cost more than the tuple.
        return StoredState(
            _text(key[0]),
            key[1],
            name,
            state.observed.value,
            state.since + offset,
            state.successes,
            state.failures,
            None if pending_until is None else pending_until + offset,
            state.maintenance,
            configured.maintenance,
            None if last is None else last.ok,
            None if last is None else last.reason,
            None if last is None else last.at + offset,
            None if last is None else last.latency,
            value if value is not None else self.engine.values.get(key),
            value_set_at if value_set_at is not None else self._value_set_at.get(key),
            configured.value,
        )

    async def _restore(self, store: Store) -> None:
        """Resume target states and zone serials from the database."""
        loop_now = asyncio.get_running_loop().time()
        offset = time.time() - loop_now
        records: dict[tuple[str, str], DynamicRecord] = {
            (_text(r.name), r.type): r for r in self.engine.records.values()
        }
        restored: dict[TargetKey, TargetState] = {}
        values: dict[TargetKey, str | None] = {}
        for row in await store.load_states():
            record = records.get((row.record, row.type))
            if record is None or row.target not in record.by_name:
                continue  # the config no longer has it
            target = record.target(row.target)
            maintenance = (
                row.maintenance if row.config_maintenance == target.maintenance else target.maintenance
            )
            last = None
            if row.last_at is not None and row.last_ok is not None:
                last = Result(
                    ok=row.last_ok,
                    reason=row.last_reason or "",
                    at=row.last_at - offset,
                    latency=row.last_latency,
                )
            restored[target_key(record, target)] = TargetState(
                observed=Health(row.observed),
                since=row.since - offset,
                successes=row.successes,
                failures=row.failures,
                pending_until=_resumed_wait(row, loop_now),
                last_result=last,
                maintenance=maintenance,
                watched_since=loop_now,  # checks resume now: the downtime is not staleness
            )
            # An address set by an update survives restarts, unless the config's own
            # value changed since (then the operator's newer word wins).
            if row.value_set_at is not None and row.config_value == target.value:
                values[target_key(record, target)] = row.value
                self._value_set_at[target_key(record, target)] = row.value_set_at
        forcing: dict[TargetKey, Forcing] = {}
        for forced in await store.forced_states():
            record = records.get((forced.record, forced.type))
            if record is not None and forced.target in record.by_name:
                state = Health(forced.state)
                key = (record.name, record.type, forced.target)
                forcing[key] = Forcing(state, forced.actor, forced.at, forced.until, forced.reason)
        records_list = list(self.engine.records.values())
        self.engine = Engine(
            records_list,
            self.engine.monitors,
            restored=restored,
            values=values,
            locations=self.locations,
            location_names=self.engine.location_names,
            forcing=forcing,  # an ended one is cleared by the first sweep, with its event
        )
        stored_serials = await store.serials()
        digests = {}
        for origin in self.zone_configs:
            digests[origin] = _digest(self._build_zone(origin, sign=False))
            stored = stored_serials.get(_text(origin))
            if stored is not None:
                serial, digest = stored
                if serial_gt(serial, self.serials[origin]) or serial == self.serials[origin]:
                    # Continue from the stored serial; a different content needs a new one.
                    self.serials[origin] = serial if digest == digests[origin] else next_serial(serial)
            self.zones[origin] = self._build_zone(origin)
        self.swap(self._snapshot())
        await store.save_serials({_text(o): (self.serials[o], digests[o]) for o in self.zone_configs})


@dataclasses.dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload did: live (ok, with the changes in words) or nothing (errors)."""

    ok: bool
    errors: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    duration: float = 0.0  # seconds, from reading the file to the new snapshot live


def _soa_rest(zone: Zone) -> tuple[object, ...]:
    """A zone's SOA without its serial: a changed refresh or contact is a new serial too."""
    fields = soa_fields(zone.soa)
    return dataclasses.replace(fields, serial=0), zone.soa.ttl


def _resumed_wait(row: StoredState, now: float) -> float | None:
    """When a restored failback wait ends (loop time), or None if there is none.

    The wait is paused while dynserver is stopped: nobody saw the target up meanwhile,
    so what was left of it at the last check before the stop is served after the
    restart. Ending it from the wall clock would answer a target that may have died
    while nobody was watching."""
    if row.pending_until is None:
        return None
    last_seen = row.last_at if row.last_at is not None else row.since
    return now + max(0.0, row.pending_until - last_seen)


def _forced_detail(forcing: Forcing) -> dict[str, Any]:
    return {
        "state": forcing.state.value,
        "actor": forcing.actor,
        "until": forcing.until,
        "reason": forcing.reason,
    }


def _digest(zone: Zone) -> str:
    """A content hash of a zone without its serial: has the data changed since last run?"""
    digest = hashlib.sha256()
    for name in sorted(zone.nodes):
        for rtype, rrset in sorted(zone.nodes[name].items()):
            if rtype == wire.TYPE_SOA:
                continue
            digest.update(repr((name, rtype, rrset.ttl, sorted(rrset.texts()))).encode())
    return digest.hexdigest()


def _turns(zone: Zone) -> dict[tuple[Name, int], tuple[int, ...]]:
    """The rotating RRsets of a zone and their turns (health/policy.rotation), which its
    digest leaves out: they change the order of answers, not the zone's data."""
    return {
        (name, rtype): rrset.turns
        for name, node in zone.nodes.items()
        for rtype, rrset in node.items()
        if rrset.turns
    }


@dataclasses.dataclass(slots=True)
class _Agent:
    """What a location last said of itself (the server's own, or an agent's)."""

    connected: bool = False
    version: str | None = None
    client: str | None = None
    last_contact: float | None = None  # Unix time
    last_result: float | None = None  # loop time
    results: int = 0


def _signer(zone: ZoneConfig, keys: list[Key]) -> ZoneSigner:
    assert zone.dnssec is not None
    policy = Policy(
        validity=zone.dnssec.signature_validity,
        refresh=zone.dnssec.refresh,
        inception_offset=zone.dnssec.inception_offset,
    )
    return ZoneSigner(zone.name, keys, policy)


def _signed_owners(zone: Zone | None) -> set[Name]:
    """The owner names of a zone's RRSIG and NSEC3 records."""
    if zone is None or zone.signed is None:
        return set()
    return set(zone.signed.sigs) | set(zone.signed.nsec3)


def _key_texts(signer: ZoneSigner) -> list[str]:
    """What identifies a signer's keys and their times (never the private part)."""
    return sorted(f"{key.dnskey_text()} {key_times(key)}" for key in signer.keys)


def key_times(key: Key) -> tuple[float | None, ...]:
    return (key.publish, key.activate, key.inactive, key.delete, key.sync_publish, key.sync_delete)


def _key_made(key: Key, where: str) -> None:
    log.info(
        "event=dnssec_key_generated zone=%s algorithm=%d tag=%d kept_in=%r",
        _text(key.zone),
        key.algorithm,
        key.tag,
        where,
    )
