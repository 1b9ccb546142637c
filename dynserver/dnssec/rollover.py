"""The CSK rollover of RFC 7583, as a pure state machine over the keys' times.

Method: **double-signature**: RFC 7583's double-signature ZSK roll for the signing half
and its double-KSK roll for the DS half, both on one combined key. The new key N is
published in the DNSKEY RRset and signs every RRset from the same instant t0 as the old
key O, so every answer carries both signatures until O goes. Why this one for a CSK: pre-
publication would publish N without signatures first and move the signing to it later, a
second zone-wide re-signing and one more wait of the zone's maximum TTL before O can go;
double signatures cost one more RRSIG (64 bytes with algorithm 13) per RRset for the
length of the roll, and our signer re-signs the whole zone in one snapshot anyway (RFC
7583's signing delay Dsgn is ~0 here).

Nothing but the key times holds the state: whoever stores the keys (``dnssec/keystore``)
stores the roll, and the signer follows the times (publish / activate / inactive /
delete / sync_publish / sync_delete, with BIND's meaning). The phase is read back from
the times and the clock, so a restart loses nothing. The times set, with RFC 7583's names:

    t0 = start        N: publish = activate = created = t0
                      (DNSKEY = {O, N}, every RRset signed by O and N; CDS = O)
    t_ready = t0 + Dprp + TTL(DNSKEY)
                      Ipub: every cache that holds the DNSKEY RRset now holds N.
                      N: sync_publish = t_ready; O: sync_delete = t_ready
                      (CDS/CDNSKEY switch to N: time to replace the DS at the parent)
    t_ds  = when the user says the parent serves only N's DS (``ds_published``)
    t_rem = max(t_ds + Dprp(parent) + TTL(DS),        the old DS is out of every cache
                t0 + Dprp + max zone TTL)             no cache holds an RRset signed by O alone
                      O: inactive = delete = t_rem (O leaves the DNSKEY RRset and stops signing)

Signature validity adds no wait: N signs every RRset at t0, and O's signatures become
useless when O leaves the DNSKEY RRset, whatever their expiration. After t_rem the roll is
over; O's files stay (BIND does the same) and show as removed.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from dynserver.dnssec.times import KeyStates
from dynserver.errors import RequestError


@dataclass(frozen=True)
class KeyTimes(KeyStates):
    """What the roll reads and writes of one key: its tag and its times (Unix seconds;
    None: never or not set), with the meaning of ``dnssec/keys.Key``'s."""

    tag: int
    created: float | None = None
    publish: float | None = None
    activate: float | None = None
    inactive: float | None = None
    delete: float | None = None
    sync_publish: float | None = None
    sync_delete: float | None = None


@dataclass(frozen=True)
class Timings:
    """The waits of RFC 7583, in seconds.

    ``dnskey_ttl``: TTL(DNSKEY) of the zone; ``max_ttl``: the largest TTL of any RRset the
    zone signs (static and dynamic records, negative answers included); ``propagation``:
    Dprp, until every nameserver of the zone serves a change (NOTIFY + IXFR: seconds, plus
    a margin); ``parent_ds_ttl``: TTL(DS) at the parent; ``parent_propagation``: Dprp of
    the parent, until all its nameservers serve the new DS after it was seen at one.
    """

    dnskey_ttl: float
    max_ttl: float
    propagation: float = 300.0
    parent_ds_ttl: float = 86400.0
    parent_propagation: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("dnskey_ttl", "max_ttl", "propagation", "parent_ds_ttl", "parent_propagation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def publish_wait(self) -> float:
        """Ipub: from N's publication until every cache knows N."""
        return self.propagation + self.dnskey_ttl


class Phase(enum.Enum):
    IDLE = "idle"  # one key in use, nothing rolling
    PUBLISHING = "publishing"  # N published and signing; waiting for it to reach every cache
    SUBMIT_DS = "submit-ds"  # N announced as CDS/CDNSKEY; the DS must be replaced at the parent
    RETIRING = "retiring"  # the parent has N's DS; waiting for the old DS and signatures to expire


class RolloverError(RequestError):
    """A roll step asked for at the wrong time: what is wrong and what to do instead."""


@dataclass(frozen=True)
class Status:
    """Where a zone's roll is, and what happens next (``next_at``: when, or None for "when
    the user acts")."""

    phase: Phase
    old: KeyTimes | None
    new: KeyTimes | None
    next_step: str
    next_at: float | None
    keys: tuple[tuple[KeyTimes, str], ...] = field(default=())  # every key with its state word


def key_state(key: KeyTimes, now: float) -> str:
    """One word for one key: what the signer does with it now."""
    if key.removed(now):
        return "removed"
    if not key.published(now):
        return "scheduled"
    words = ["published"]
    if key.signing(now):
        words.append("signing")
    if key.for_parent(now):
        words.append("cds")
    return "+".join(words)


def _live(keys: Sequence[KeyTimes], now: float) -> list[KeyTimes]:
    """Keys published now or later (not removed), oldest first."""
    live = [k for k in keys if not k.removed(now) and k.publish is not None]
    return sorted(live, key=lambda k: (k.publish or 0.0, k.tag))


def status(keys: Sequence[KeyTimes], now: float) -> Status:
    """The phase of the roll read from the keys' times, and the next step."""
    states = tuple((k, key_state(k, now)) for k in sorted(keys, key=lambda k: (k.publish or 0.0, k.tag)))
    live = _live(keys, now)
    if not live:
        return Status(Phase.IDLE, None, None, "no key: the server generates one when it starts", None, states)
    if len(live) == 1:
        return Status(Phase.IDLE, live[0], None, "nothing to do: one key in use", None, states)
    if len(live) > 2:
        tags = ", ".join(str(k.tag) for k in live)
        raise RolloverError(f"{len(live)} keys in use ({tags}): a CSK roll has two at most")
    old, new = live
    ready = new.sync_publish
    if ready is None:
        raise RolloverError(
            f"key {new.tag} is published but has no SyncPublish time: not a roll started here"
        )
    if now < ready:
        step = (
            f"wait until {when(ready)}: key {new.tag} must reach every cache "
            "(DNSKEY TTL + propagation); do not change the DS yet"
        )
        return Status(Phase.PUBLISHING, old, new, step, ready, states)
    if old.delete is None:
        step = (
            f"replace the DS at the parent with key {new.tag}'s (`dynserver dnssec ds`; the zone "
            "publishes it as CDS/CDNSKEY), then, once the parent serves only that DS, "
            "run `dynserver dnssec rollover --ds-published`"
        )
        return Status(Phase.SUBMIT_DS, old, new, step, None, states)
    step = f"wait until {when(old.delete)}: key {old.tag} then leaves the DNSKEY RRset and stops signing"
    return Status(Phase.RETIRING, old, new, step, old.delete, states)


def start(keys: Sequence[KeyTimes], new_tag: int, now: float, timings: Timings) -> list[KeyTimes]:
    """Begin a roll: the new key's times (tag ``new_tag``, already generated) and the
    old key's changed times. Only from IDLE with one key."""
    current = status(keys, now)
    if current.phase is not Phase.IDLE or current.old is None:
        raise RolloverError(f"a roll can start only with one key in use; now: {current.phase.value}")
    if new_tag == current.old.tag or any(k.tag == new_tag for k in keys):
        raise RolloverError(f"key tag {new_tag} is already in use: generate another key")
    ready = now + timings.publish_wait
    new = KeyTimes(new_tag, created=now, publish=now, activate=now, sync_publish=ready)
    old = replace(current.old, sync_delete=ready)
    return [old, new]


def ds_published(keys: Sequence[KeyTimes], now: float, timings: Timings) -> list[KeyTimes]:
    """The user says the parent now serves only the new key's DS: schedule the old key's
    removal (its changed times). Only in SUBMIT_DS."""
    current = status(keys, now)
    if current.phase is Phase.PUBLISHING:
        raise RolloverError(f"too early: {current.next_step}")
    if current.phase is not Phase.SUBMIT_DS or current.old is None or current.new is None:
        raise RolloverError(f"no DS change is awaited; now: {current.phase.value}")
    assert current.new.publish is not None
    removal = max(
        now + timings.parent_propagation + timings.parent_ds_ttl,
        current.new.publish + timings.propagation + timings.max_ttl,
    )
    return [replace(current.old, inactive=removal, delete=removal)]


def when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
