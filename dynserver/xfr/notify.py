"""NOTIFY (RFC 1996): tell each secondary at once that a zone changed.

Per zone and secondary, one NOTIFY is in flight at a time; changes meanwhile only move
the serial to announce, and the next NOTIFY (sent as soon as the previous one is
answered) carries the latest one: a burst of failovers costs a few messages, not one
per change. An unanswered NOTIFY is sent again with a growing wait, a bounded number
of times; after that the secondary's own SOA polling (refresh) still catches up.

``Outbox`` (when to send what) and the message functions are pure, time passed in;
``SecondaryNotifier`` is the asyncio loop around them, one task per zone and secondary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.opcode
import dns.rcode
import dns.tsig

from dynserver.backoff import Backoff
from dynserver.dns import wire
from dynserver.dns.zone import Zone
from dynserver.model import Secondary, TsigKey, ZoneConfig
from dynserver.types import Name
from dynserver.xfr import tsig
from dynserver.xfr.records import soa_wire

log = logging.getLogger(__name__)

ANSWER_WAIT = 1.0  # seconds a NOTIFY waits for its answer
MAX_PAUSE = 30.0  # between two sends of one serial: 1, 2, 4... seconds, up to this
MAX_ATTEMPTS = 8  # sends of one serial before giving up (about two minutes in all)
RESEND = Backoff(ANSWER_WAIT, cap=MAX_PAUSE)  # the pause after send n of one serial
_HEADER = struct.Struct("!HHHHHH")


# -- when to send: pure ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    serial: int
    wait: float  # how long to wait for the answer before this attempt counts as lost
    attempt: int


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float | None  # None: until the zone changes


class Outbox:
    """The NOTIFY state of one zone at one secondary.

    A NOTIFY waits ``ANSWER_WAIT`` for its answer; a newer serial meanwhile waits for
    that answer (a burst is coalesced). Without an answer, the same serial is sent
    again after a growing pause, up to MAX_ATTEMPTS; a newer serial does not wait out
    that pause: a secondary that was down and is back hears of it at once."""

    def __init__(self) -> None:
        self.wanted: int | None = None  # the latest serial to announce
        self.acked: int | None = None  # the last serial the secondary answered for
        self.in_flight: int | None = None  # sent, answer awaited until ``deadline``
        self.deadline = 0.0
        self.next_at = 0.0  # the earliest time to send ``counting`` again
        self.attempts = 0  # sends of ``counting`` so far
        self.counting: int | None = None  # the serial ``attempts`` are counted for

    def change(self, serial: int) -> None:
        self.wanted = serial

    def poll(self, now: float) -> Send | Wait:
        """What to do now: send a NOTIFY, or wait (for its answer, a retry, a change)."""
        if self.in_flight is not None:
            if now < self.deadline:
                return Wait(self.deadline - now)
            self.in_flight = None  # unanswered: lost
        if self.wanted is None or self.wanted == self.acked:
            return Wait(None)
        if self.counting != self.wanted:
            self.counting, self.attempts, self.next_at = self.wanted, 0, now  # a new serial: at once
        if self.attempts >= MAX_ATTEMPTS:
            return Wait(None)  # given up on this serial; the next change starts afresh
        if now < self.next_at:
            return Wait(self.next_at - now)
        self.attempts += 1
        self.in_flight, self.deadline = self.wanted, now + ANSWER_WAIT
        self.next_at = now + RESEND.delay(self.attempts)
        return Send(self.wanted, ANSWER_WAIT, self.attempts)

    def answered(self, serial: int) -> None:
        """The secondary answered the NOTIFY for ``serial`` (whatever its rcode: an error
        such as NOTAUTH will not change by sending the same message again)."""
        self.acked = serial
        self.in_flight = None

    def lost(self) -> bool:
        """The NOTIFY in flight got no usable answer (in time, or the port is closed).
        True: that was the last try for this serial."""
        self.in_flight = None
        return self.wanted != self.acked and self.attempts >= MAX_ATTEMPTS


# -- the messages: pure ------------------------------------------------------------------


def notify_message(zone: Zone, ident: int) -> bytes:
    """NOTIFY for a zone: its SOA as the question, the current SOA as the answer (a hint
    secondaries use to skip the SOA query when they are up to date)."""
    question = wire.name_to_wire(zone.origin) + struct.pack("!HH", wire.TYPE_SOA, wire.CLASS_IN)
    flags = (wire.OPCODE_NOTIFY << 11) | wire.AA
    return _HEADER.pack(ident, flags, 1, 1, 0, 0) + question + soa_wire(zone)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the secondary answered: ``rcode`` None means not an answer to our NOTIFY."""

    rcode: int | None
    detail: str = ""


def read_reply(data: bytes, ident: int, key: dns.tsig.Key | None, request_mac: bytes) -> Reply:
    """Check a datagram against the NOTIFY we sent (ID, opcode, and TSIG if signed)."""
    ring = {key.name: key} if key is not None else None
    try:
        message = dns.message.from_wire(data, keyring=ring, request_mac=request_mac)
    except (dns.exception.DNSException, ValueError) as error:
        return Reply(None, f"unreadable or badly signed reply: {type(error).__name__}")
    if message.id != ident or message.opcode() != dns.opcode.NOTIFY or not message.flags & 0x8000:
        return Reply(None, "not an answer to our NOTIFY")
    if key is not None and not message.had_tsig:
        rcode = message.rcode()
        if rcode == dns.rcode.NOERROR:
            return Reply(None, "unsigned answer to a signed NOTIFY")
        return Reply(int(rcode), f"{dns.rcode.to_text(rcode)} (unsigned)")
    return Reply(int(message.rcode()), dns.rcode.to_text(message.rcode()))


# -- the loop ----------------------------------------------------------------------------


class SecondaryNotifier:
    """Sends NOTIFY for every changed zone to each of its secondaries."""

    def __init__(
        self,
        zones: Iterable[ZoneConfig],
        keys: Iterable[TsigKey],
        current: Callable[[Name], Zone],
    ) -> None:
        self._current = current
        self._ring = {tsig.key_name(key): key for key in tsig.keyring(keys).values()}
        self._targets: dict[Name, tuple[Secondary, ...]] = {
            zone.name: zone.transfer.secondaries
            for zone in zones
            if zone.transfer is not None and zone.transfer.secondaries
        }
        self._outboxes: dict[tuple[Name, Secondary], Outbox] = {}
        self._wake: dict[tuple[Name, Secondary], asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._source: dict[int, str] = {}
        self.sent = 0  # NOTIFY messages sent (for tests and the status page)

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    def start(self, sources: Iterable[str] = ()) -> None:
        """Start one task per zone and secondary, and announce every zone's serial.

        NOTIFY leaves from the address dynserver answers on (the first DNS listener of
        the family), which is the address secondaries expect it from."""
        for host in sources:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._source.setdefault(family, host)
        for origin, secondaries in self._targets.items():
            for secondary in secondaries:
                key = (origin, secondary)
                self._outboxes[key] = Outbox()
                self._wake[key] = asyncio.Event()
                name = f"notify {wire.name_to_text(origin)} {secondary.host}:{secondary.port}"
                self._tasks.append(asyncio.create_task(self._run(origin, secondary), name=name))
            self.changed(origin)  # a restart may have moved the serial: let them check

    def changed(self, origin: Name) -> None:
        """The zone has a new serial: announce it (coalesced with any NOTIFY in flight)."""
        if origin not in self._targets or not self._outboxes:
            return
        serial = self._current(origin).serial
        for secondary in self._targets[origin]:
            self._outboxes[(origin, secondary)].change(serial)
            self._wake[(origin, secondary)].set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self, origin: Name, secondary: Secondary) -> None:
        outbox = self._outboxes[(origin, secondary)]
        wake = self._wake[(origin, secondary)]
        loop = asyncio.get_running_loop()
        key = self._ring.get(secondary.key) if secondary.key else None
        where = f"{secondary.host}:{secondary.port}"
        try:
            sock = self._socket(secondary)
        except OSError as error:  # e.g. no route from our address to the secondary's
            log.error(
                "event=notify_failed zone=%s secondary=%s reason=%r",
                wire.name_to_text(origin),
                where,
                str(error),
            )
            return
        with sock:
            while True:
                action = outbox.poll(loop.time())
                if isinstance(action, Wait):
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(action.seconds):
                            await wake.wait()
                    continue
                ident = random.randrange(65536)
                message, mac = notify_message(self._current(origin), ident), b""
                if key is not None:
                    signer = tsig.Signer(key, b"", ident, int(time.time()))
                    message, mac = signer.sign(message), signer.mac
                reply = await _exchange(sock, message, ident, key, mac, loop.time() + action.wait)
                self.sent += 1
                if reply.rcode is not None:
                    outbox.answered(action.serial)
                    log.log(
                        logging.INFO if reply.rcode == wire.NOERROR else logging.WARNING,
                        "event=notify zone=%s serial=%d secondary=%s attempt=%d reply=%s",
                        wire.name_to_text(origin),
                        action.serial,
                        where,
                        action.attempt,
                        reply.detail,
                    )
                    continue
                last = outbox.lost()
                log.log(
                    logging.WARNING if last else logging.INFO,
                    "event=notify_%s zone=%s serial=%d secondary=%s attempt=%d reason=%r",
                    "failed" if last else "unanswered",
                    wire.name_to_text(origin),
                    action.serial,
                    where,
                    action.attempt,
                    reply.detail,
                )

    def _socket(self, secondary: Secondary) -> socket.socket:
        """A UDP socket from our address to this secondary only (connected: nothing else
        reaches it, and an ICMP "port unreachable" shows up as an error at once)."""
        family = socket.AF_INET6 if ":" in secondary.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            source = self._source.get(family, "")
            sock.bind(("" if source in ("0.0.0.0", "::") else source, 0))
            sock.connect((secondary.host, secondary.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock


async def _exchange(
    sock: socket.socket, message: bytes, ident: int, key: dns.tsig.Key | None, mac: bytes, deadline: float
) -> Reply:
    """Send a NOTIFY and wait until ``deadline`` (loop time) for its answer."""
    loop = asyncio.get_running_loop()
    last = Reply(None, "no answer")
    try:
        await loop.sock_sendall(sock, message)
        while True:
            async with asyncio.timeout_at(deadline):
                data = await loop.sock_recv(sock, 65535)
            reply = read_reply(data, ident, key, mac)
            if reply.rcode is not None:
                return reply
            last = reply  # a stray or badly signed datagram: keep waiting for the real one
    except TimeoutError:
        return last
    except OSError as error:  # e.g. ICMP port unreachable: the secondary is not running
        return Reply(None, f"{type(error).__name__}: {error.strerror or error}")
