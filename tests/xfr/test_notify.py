"""NOTIFY: when to send (the Outbox, with time passed in), what is sent, and the loop
against a fake secondary on 127.0.0.x that answers, stays silent or checks the key."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Callable

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import pytest

from dynserver.config import parse_name
from dynserver.dns import wire
from dynserver.dns.zone import Zone, rrset_from_texts
from dynserver.model import Secondary, TransferConfig, TsigKey, ZoneConfig
from dynserver.xfr import notify
from dynserver.xfr.notify import MAX_ATTEMPTS, Outbox, Send, Wait, notify_message, read_reply
from tests.support import loopback

ORIGIN = parse_name("dyn.example.test")
SECRET = b"notify-test-secret-0123456789abc"


def zone(serial: int) -> Zone:
    soa = rrset_from_texts(
        ORIGIN, wire.TYPE_SOA, 300, [f"ns1.dyn.example.test. h.dyn.example.test. {serial} 1 1 1 1"]
    )
    return Zone.build(ORIGIN, [soa, rrset_from_texts(ORIGIN, wire.TYPE_NS, 300, ["ns1.dyn.example.test."])])


# -- the Outbox ------------------------------------------------------------------------


def test_nothing_to_send_until_a_change() -> None:
    assert Outbox().poll(0.0) == Wait(None)


def test_a_burst_of_changes_is_one_notify_in_flight_then_the_latest() -> None:
    outbox = Outbox()
    outbox.change(1)
    assert outbox.poll(0.0) == Send(1, notify.ANSWER_WAIT, 1)
    for serial in (2, 3, 4):  # while the first awaits its answer
        outbox.change(serial)
        assert isinstance(outbox.poll(0.1), Wait)
    outbox.answered(1)
    assert outbox.poll(0.2) == Send(4, notify.ANSWER_WAIT, 1)  # 2 and 3 are never sent
    outbox.answered(4)
    assert outbox.poll(0.3) == Wait(None)


def sends_without_answers(outbox: Outbox, now: float, until: float) -> list[float]:
    """Drive the outbox through time with a secondary that never answers."""
    sent = []
    while now < until:
        action = outbox.poll(now)
        if isinstance(action, Send):
            sent.append(now)
            continue
        if action.seconds is None:
            break
        now += action.seconds
    return sent


def test_an_unanswered_notify_is_sent_again_later_and_later_then_given_up() -> None:
    outbox = Outbox()
    outbox.change(7)
    sent = sends_without_answers(outbox, 0.0, 1000.0)
    assert sent == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0]  # pauses 1, 2, 4... up to 30
    assert len(sent) == MAX_ATTEMPTS and outbox.lost()
    outbox.change(8)  # a new serial gets its own tries
    assert outbox.poll(1000.0) == Send(8, notify.ANSWER_WAIT, 1)


def test_a_new_serial_does_not_wait_out_a_pause() -> None:
    """A secondary that was down (every NOTIFY lost) hears of the next change at once."""
    outbox = Outbox()
    outbox.change(1)
    assert sends_without_answers(outbox, 0.0, 5.0) == [0.0, 1.0, 3.0]
    outbox.lost()  # e.g. the port was closed: known lost before the deadline
    outbox.change(2)
    assert outbox.poll(5.5) == Send(2, notify.ANSWER_WAIT, 1)


def test_an_answer_is_awaited_until_the_deadline() -> None:
    outbox = Outbox()
    outbox.change(1)
    outbox.poll(10.0)
    assert outbox.poll(10.25) == Wait(notify.ANSWER_WAIT - 0.25)
    assert outbox.poll(11.0) == Send(1, notify.ANSWER_WAIT, 2)


# -- the messages ----------------------------------------------------------------------


def test_the_notify_message() -> None:
    message = dns.message.from_wire(notify_message(zone(42), 1234))
    assert message.id == 1234 and message.opcode() == dns.opcode.NOTIFY
    assert message.flags & dns.flags.AA and not message.flags & dns.flags.QR
    assert message.question[0].rdtype == dns.rdatatype.SOA
    assert message.answer[0][0].serial == 42


def reply_to(data: bytes, rcode: int = dns.rcode.NOERROR, keyring: dict | None = None) -> bytes:  # type: ignore[type-arg]
    query = dns.message.from_wire(data, keyring=keyring)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response.to_wire()


def test_read_reply() -> None:
    sent = notify_message(zone(1), 77)
    assert read_reply(reply_to(sent), 77, None, b"").rcode == wire.NOERROR
    assert read_reply(reply_to(sent, dns.rcode.NOTAUTH), 77, None, b"").rcode == wire.NOTAUTH
    assert read_reply(reply_to(sent), 78, None, b"").rcode is None  # another ID
    assert read_reply(b"junk", 77, None, b"").rcode is None


# -- the loop, against a fake secondary ------------------------------------------------


class FakeSecondary:
    """A UDP socket on 127.0.0.x that records NOTIFYs and answers as ``behaviour`` says."""

    def __init__(self, behaviour: Callable[[bytes], bytes | None]) -> None:
        self.host = loopback()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.received: list[tuple[dns.message.Message, str]] = []

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        data, address = self.sock.recvfrom(65535)
        self.received.append((dns.message.from_wire(data, keyring=False), address[0]))
        answer = self.behaviour(data)
        if answer is not None:
            self.sock.sendto(answer, address)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


async def run_notifier(
    behaviour: Callable[[bytes], bytes | None], *, key: bool, changes: list[int], settle: float
) -> tuple[FakeSecondary, int, str]:
    fake = FakeSecondary(behaviour)
    fake.start()
    current = {"zone": zone(changes[0])}
    secondary = Secondary(fake.host, fake.port, "xfr" if key else None)
    zones = [ZoneConfig(ORIGIN, None, (), (), TransferConfig(secondaries=(secondary,)))]
    keys = [TsigKey("xfr", "hmac-sha256", SECRET)]
    notifier = notify.SecondaryNotifier(zones, keys, lambda origin: current["zone"])
    source = loopback()
    notifier.start([source])
    for serial in changes[1:]:
        current["zone"] = zone(serial)
        notifier.changed(ORIGIN)
    await asyncio.sleep(settle)
    await notifier.stop()
    fake.close()
    return fake, notifier.sent, source


def test_notify_is_sent_from_our_address_and_coalesced() -> None:
    fake, sent, source = asyncio.run(
        run_notifier(lambda data: reply_to(data), key=False, changes=[1, 2, 3, 4], settle=0.3)
    )
    serials = [message.answer[0][0].serial for message, _ in fake.received]
    assert serials[-1] == 4 and len(serials) == sent <= 2  # the first in flight, then the latest
    assert all(address == source for _, address in fake.received)


def test_a_signed_notify_and_its_signed_answer() -> None:
    ring = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", base64.b64encode(SECRET).decode())})
    fake, _, _ = asyncio.run(
        run_notifier(lambda data: reply_to(data, keyring=ring), key=True, changes=[5], settle=0.3)
    )
    assert len(fake.received) == 1  # answered: not sent again
    assert fake.received[0][0].had_tsig


@pytest.mark.slow
def test_silence_is_retried() -> None:
    fake, _, _ = asyncio.run(run_notifier(lambda data: None, key=False, changes=[9], settle=1.5))
    assert len(fake.received) == 2  # at 0 s, then after the first wait (1 s)
