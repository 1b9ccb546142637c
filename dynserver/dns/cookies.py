"""DNS Cookies (RFC 7873) with the interoperable server cookies of RFC 9018: computing and
checking a server cookie, and writing the COOKIE option into a reply. Pure: the caller
passes the clock and the client's address.

A server cookie is version 1, three reserved bytes, a 32-bit timestamp, and the
SipHash-2-4 (siphashc, a maintained C implementation, checked against RFC 9018's test
vectors in tests/dns/test_cookies.py) of the client cookie, those 8 bytes and the client's
IP address, keyed with a 16-byte secret: several servers that share the secret accept each
other's cookies (RFC 9018 §4.4).
"""

from __future__ import annotations

import ipaddress
import os

from siphashc import siphash

from dynserver.dns import wire

OPTION_COOKIE = 10
BADCOOKIE = 23  # extended rcode: 7 in the header, 1 in the OPT's upper bits
SECRET_SIZE = 16
CLIENT_SIZE = 8
# RFC 9018 §4.3: a cookie from more than an hour ago, or more than 5 minutes ahead, is
# invalid; one older than half an hour is replaced by a fresh one in the reply.
VALID_PAST = 3600
VALID_FUTURE = 300
REFRESH_AFTER = 1800
_VERSION = b"\x01\x00\x00\x00"


def malformed(value: bytes) -> bool:
    """RFC 7873 §5.2.2: a COOKIE option is 8 bytes (client cookie only) or 16 to 40."""
    return not (len(value) == CLIENT_SIZE or 16 <= len(value) <= 40)


class Cookies:
    """Server cookies under one secret (from [server] cookie_secret, or random)."""

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is None:
            secret = os.urandom(SECRET_SIZE)
        if len(secret) != SECRET_SIZE:
            raise ValueError(f"a cookie secret is {SECRET_SIZE} bytes")
        self._secret = secret
        self._packed: dict[str, bytes] = {}  # client address text -> its bytes

    def server_cookie(self, client: bytes, address: str, now: int) -> bytes:
        """The 16-byte server cookie for this client cookie and address at ``now``."""
        head = _VERSION + (now & 0xFFFFFFFF).to_bytes(4, "big")
        digest = siphash(self._secret, client + head + self._address(address))
        return head + digest.to_bytes(8, "little")

    def check(self, option: bytes, address: str, now: int) -> bytes | None:
        """The COOKIE option to send back to a query that sent ``option`` (well formed),
        or None when its server cookie is valid and fresh enough to send back as it is.

        Also says whether the server cookie is valid: see ``valid``."""
        client = option[:CLIENT_SIZE]
        if self.valid(option, address, now) and now - _timestamp(option) <= REFRESH_AFTER:
            return None
        return client + self.server_cookie(client, address, now)

    def valid(self, option: bytes, address: str, now: int) -> bool:
        """Whether ``option`` carries a server cookie we made for this client, in time."""
        if len(option) != CLIENT_SIZE + 16 or option[8:12] != _VERSION:
            return False
        stamp = _timestamp(option)
        # Serial arithmetic (RFC 1982) as RFC 9018 §4.3 asks: the clock may wrap in 2106.
        age = (now - stamp) & 0xFFFFFFFF
        if age > VALID_PAST and (stamp - now) & 0xFFFFFFFF > VALID_FUTURE:
            return False
        return option[8:] == self.server_cookie(option[:CLIENT_SIZE], address, stamp)

    def _address(self, address: str) -> bytes:
        packed = self._packed.get(address)
        if packed is None:
            packed = ipaddress.ip_address(address.split("%")[0]).packed
            if len(self._packed) >= 4096:
                self._packed.clear()
            self._packed[address] = packed
        return packed


def _timestamp(option: bytes) -> int:
    return int.from_bytes(option[12:16], "big")


def with_cookie(reply: bytes, value: bytes, limit: int) -> bytes:
    """``reply`` with a COOKIE option holding ``value`` in its OPT record, when the reply
    ends with our OPT (no options: see answer.opt_record) and the result fits ``limit``;
    else ``reply`` unchanged."""
    if len(reply) < 23 or reply[-11:-8] != b"\x00\x00\x29" or reply[-2:] != b"\x00\x00":
        return reply
    if not (reply[10] | reply[11]):
        return reply
    option = OPTION_COOKIE.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
    if len(reply) + len(option) > limit:
        return reply
    return reply[:-2] + len(option).to_bytes(2, "big") + option


def badcookie(reply: bytes, question_end: int, value: bytes, do: bool) -> bytes:
    """RFC 7873 §5.2.3: BADCOOKIE with a fresh server cookie, the question, nothing else."""
    flags = (reply[2] & 0xF9) | 0x80  # QR, opcode and RD kept; AA and TC cleared
    qd = b"\x00\x01" if question_end > 12 else b"\x00\x00"
    option = OPTION_COOKIE.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
    opt = (
        b"\x00\x00\x29"
        + wire.OUR_UDP_SIZE.to_bytes(2, "big")
        + bytes((BADCOOKIE >> 4, 0, 0x80 if do else 0, 0))
        + len(option).to_bytes(2, "big")
        + option
    )
    header = reply[:2] + bytes((flags, BADCOOKIE & 0xF)) + qd + b"\x00\x00\x00\x00\x00\x01"
    return header + reply[12:question_end] + opt
