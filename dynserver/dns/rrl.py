"""Response rate limiting (RRL), as NSD, Knot and BIND do it: a token bucket per client
network and kind of answer, in a fixed-size table, so a spoofed flood cannot use us to
amplify.

The key is the client's network (/24 for IPv4, /56 for IPv6: the raw address bytes, no
decoding) plus the kind of answer: a positive answer keys on its question (lower-cased,
so 0x20 case randomisation cannot dodge the limit), NXDOMAIN, NODATA, referrals and errors
each key on their kind alone (dynserver serves one or a few zones: per zone, as NSD does,
is then nearly the same, and needs no zone lookup per reply). Over ``rate`` replies a
second (a bucket holds ``rate * window`` tokens), every ``slip``-th reply is a minimal
TC=1 reply, so a real client retries over TCP, which is never limited, and the others
are dropped. The table has TABLE_SIZE slots, indexed by hash: memory is bounded
whatever the traffic; a key that lands on a taken slot takes it over (NSD does the same).
Pure: no I/O; the caller passes the clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from dynserver.dns import wire

TABLE_SIZE = 1 << 16  # slots: 65,536 buckets, about 2 MB whatever the traffic
ANSWER = 0
SLIP = 1
DROP = 2
# Kinds of answer (the first byte of an answer key).
POSITIVE = b"P"
NXDOMAIN = b"X"
NODATA = b"N"
REFERRAL = b"R"
ERROR = b"E"
# Start/stop events: at most EVENT_BURST at once, then one per EVENT_INTERVAL seconds; a
# flood from many networks must not flood the event log too.
EVENT_BURST = 10
EVENT_INTERVAL = 6.0

_AF_INET6 = 10  # Linux's AF_INET6, as struct sockaddr holds it (no socket import: pure)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def answer_key(reply: bytes, question_end: int) -> bytes:
    """The kind of answer ``reply`` is, with its question for a positive answer.

    ``question_end`` is where the question section ends (12 for a header-only reply)."""
    if len(reply) < 12:
        return ERROR
    rcode = reply[3] & 0xF
    if rcode == wire.NXDOMAIN:
        return NXDOMAIN
    if rcode != wire.NOERROR:
        return ERROR
    if reply[6] | reply[7]:
        return POSITIVE + reply[12:question_end].lower()
    return NODATA if reply[2] & 0x04 else REFERRAL  # AA: our NODATA; else a referral


def question_end(reply: bytes) -> int:
    """Where a reply's question section ends (12 when it has none or it cannot be read)."""
    if len(reply) < 12 or not (reply[4] | reply[5]):
        return 12
    try:
        return min(wire.skip_name(reply, 12) + 4, len(reply))
    except wire.WireError:
        return 12


def reply_key(reply: bytes) -> bytes:
    """``answer_key`` of a whole reply (finds the question's end)."""
    return answer_key(reply, question_end(reply))


def network_key(name: bytes) -> bytes:
    """A client's network from its struct sockaddr (its first 15 bytes are enough): the
    /24 (IPv4) or /56 (IPv6) of its address, as ``peer_network`` gives it."""
    if name[0] | (name[1] << 8) == _AF_INET6:
        return name[8:15]
    return name[4:7]


def peer_network(peer: tuple[str, int]) -> bytes:
    """A client's network from its (host, port): the same bytes as ``network_key``."""
    packed = ipaddress.ip_address(peer[0].split("%")[0]).packed
    return packed[:3] if len(packed) == 4 else packed[:7]


def truncated(reply: bytes, question_end: int) -> bytes:
    """The slip reply: the header with TC=1, the question, nothing else."""
    qd = b"\x00\x01" if question_end > 12 else b"\x00\x00"
    return reply[:2] + bytes((reply[2] | 0x02, reply[3])) + qd + b"\x00" * 6 + reply[12:question_end]


class RateLimiter:
    """The table and the counters (limited = slipped + dropped)."""

    def __init__(
        self,
        *,
        rate: int,
        slip: int,
        window: float,
        exempt: Sequence[Network] = (),
        event: Callable[[str, str], None] | None = None,
        size: int = TABLE_SIZE,
    ) -> None:
        self._rate = float(rate)
        self._depth = max(1.0, rate * window)
        self._slip = slip
        self._mask = size - 1
        assert size & self._mask == 0, "the table size is a power of two"
        self._keys: list[bytes | None] = [None] * size
        self._tokens = [0.0] * size
        self._stamps = [0.0] * size
        self._limiting = bytearray(size)  # 1 while the slot's network is being limited
        self._exempt4, self._exempt6 = _split(exempt)
        self._exempt_seen: dict[bytes, bool] = {}
        self._event = event
        self._event_tokens = float(EVENT_BURST)
        self._event_stamp = 0.0
        self.limited = 0
        self.slipped = 0
        self.dropped = 0
        self.events_suppressed = 0

    def exempt(self, network: bytes) -> bool:
        """Whether replies to this network are never limited ([server.rrl] exempt)."""
        seen = self._exempt_seen.get(network)
        if seen is None:
            seen = _covered(network, self._exempt4 if len(network) == 3 else self._exempt6)
            if len(self._exempt_seen) >= TABLE_SIZE:
                self._exempt_seen.clear()
            self._exempt_seen[network] = seen
        return seen

    def verdict(self, network: bytes, answer: bytes, now: float) -> int:
        """ANSWER, SLIP or DROP for one reply to ``network`` of kind ``answer`` at ``now``."""
        if self.take(network, answer, now, 1):
            return ANSWER
        return self.over(1)[0]

    @property
    def rate(self) -> float:
        """Replies a second per key."""
        return self._rate

    def take(self, network: bytes, answer: bytes, now: float, count: int, spare: int = 0) -> int:
        """How many of ``count`` replies to ``network`` of kind ``answer`` at ``now`` are
        within the limit (the first ones); ``over`` says what to do with the rest. One
        call for all the replies of a batch that share a key keeps the hot path cheap.

        ``spare``: when all ``count`` are within the limit, up to that many tokens more
        are taken and counted in the result, for the caller to spend on the key's next
        replies without asking again (a receive thread's credit, dynserver/server/udp.py).
        They never make a key limited: only ``count`` does."""
        key = network + answer
        slot = hash(key) & self._mask
        if self._keys[slot] != key:
            # A new key (or a collision: the newcomer takes the slot, as in NSD).
            self._keys[slot] = key
            self._tokens[slot] = self._depth
            self._stamps[slot] = now
            self._limiting[slot] = 0
        tokens = self._tokens[slot] + (now - self._stamps[slot]) * self._rate
        if tokens > self._depth:
            tokens = self._depth
        self._stamps[slot] = now
        if tokens >= count:
            if spare:
                extra = tokens - count
                count += spare if extra >= spare else int(extra)
            self._tokens[slot] = tokens - count
            if self._limiting[slot]:
                self._limiting[slot] = 0
                self._note("stopped", network, now)
            return count
        allowed = int(tokens) if tokens > 0 else 0
        self._tokens[slot] = tokens - allowed
        if self.exempt(network):  # asked only when over the limit: the common reply skips it
            return count
        if not self._limiting[slot]:
            self._limiting[slot] = 1
            self._note("started", network, now)
        return allowed

    def over(self, count: int) -> list[int]:
        """SLIP or DROP for each of ``count`` replies over the limit: every ``slip``-th
        limited reply slips (counted over all keys, as NSD does)."""
        verdicts = []
        for _ in range(count):
            self.limited += 1
            if self._slip and self.limited % self._slip == 0:
                self.slipped += 1
                verdicts.append(SLIP)
            else:
                self.dropped += 1
                verdicts.append(DROP)
        return verdicts

    def _note(self, what: str, network: bytes, now: float) -> None:
        """An event for a network whose limiting started or stopped, itself rate-limited."""
        if self._event is None:
            return
        tokens = min(float(EVENT_BURST), self._event_tokens + (now - self._event_stamp) / EVENT_INTERVAL)
        self._event_stamp = now
        if tokens < 1.0:
            self._event_tokens = tokens
            self.events_suppressed += 1
            return
        self._event_tokens = tokens - 1.0
        self._event(what, network_text(network))


def network_text(network: bytes) -> str:
    """203.0.113.0/24 or 2001:db8:0:100::/56 for a network key."""
    if len(network) == 3:
        return f"{ipaddress.IPv4Address(network + bytes(1))}/24"
    return f"{ipaddress.IPv6Address(network + bytes(9))}/56"


def _split(networks: Sequence[Network]) -> tuple[list[ipaddress.IPv4Network], list[ipaddress.IPv6Network]]:
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return v4, v6


def _covered(network: bytes, exempt: Sequence[Network]) -> bool:
    """Whether an exempt network covers any address of this /24 or /56: the key is all
    we keep of the address, so an exempt host exempts its whole /24 (/56)."""
    if not exempt:
        return False
    if len(network) == 3:
        mine: Network = ipaddress.IPv4Network((network + bytes(1), 24))
    else:
        mine = ipaddress.IPv6Network((network + bytes(9), 56))
    return any(mine.overlaps(n) for n in exempt)
