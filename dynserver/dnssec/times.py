"""What a DNSSEC key does at a moment, read from its times (one home for both the signer's
keys and the rollover's view of them).

The times are BIND's, as ``dnssec-settime`` sets them (RFC 7583 names the same events),
in Unix seconds, None meaning never (or not set): a key is published (in the DNSKEY
RRset) from ``publish`` until ``delete``, signs from ``activate`` until ``inactive``,
and is announced to the parent (CDS, CDNSKEY) from ``sync_publish`` until
``sync_delete``. Pure: no clock is read here, the caller says what "now" is.
"""

from __future__ import annotations

FIELDS = ("created", "publish", "activate", "inactive", "delete", "sync_publish", "sync_delete")


class KeyStates:
    """The states of a key with the seven times of ``FIELDS`` (a mixin: the dataclasses
    ``dnssec.keys.Key`` and ``dnssec.rollover.KeyTimes`` hold the fields)."""

    __slots__ = ()

    created: float | None
    publish: float | None
    activate: float | None
    inactive: float | None
    delete: float | None
    sync_publish: float | None
    sync_delete: float | None

    def times(self) -> dict[str, float | None]:
        """The seven times by name: what a rollover step copies from one kind to the other."""
        return {name: getattr(self, name) for name in FIELDS}

    def published(self, now: float) -> bool:
        return within(self.publish, self.delete, now)

    def signing(self, now: float) -> bool:
        return self.published(now) and within(self.activate, self.inactive, now)

    def for_parent(self, now: float) -> bool:
        return self.published(now) and within(self.sync_publish, self.sync_delete, now)

    def removed(self, now: float) -> bool:
        return self.delete is not None and self.delete <= now


def within(start: float | None, end: float | None, now: float) -> bool:
    """``now`` lies in [start, end): start set and reached, end unset or not reached."""
    return start is not None and start <= now and (end is None or now < end)
