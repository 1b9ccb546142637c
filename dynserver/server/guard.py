"""What the transports do to a reply before it leaves: DNS Cookies (RFC 7873, RFC 9018) on
UDP and TCP, and response rate limiting on UDP only (dynserver/dns/rrl.py).

The answering core stays as it is; the guard sees the query and its reply. A reply to a
query with a valid server cookie is never limited (the client's address is proven: that
is what cookies are for); over the limit, the slip reply to a query with a client cookie
is BADCOOKIE with a fresh server cookie (RFC 7873 §5.2.3, as BIND does), else TC=1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from dynserver.dns import cookies as cookie_wire
from dynserver.dns import rrl, wire
from dynserver.dns.cookies import Cookies
from dynserver.dns.rrl import RateLimiter
from dynserver.model import ServerConfig
from dynserver.store.db import EventRow

log = logging.getLogger(__name__)


_NETWORKS = 4096  # client addresses whose network key is kept; emptied when full
_ANSWER_KEYS = 4096  # replies whose kind of answer is kept; emptied when full


def _may_have_options(data: bytes) -> bool:
    """Whether a query may carry EDNS options (a cookie): not when it has no additional
    record, or ends with an OPT without options (what most queries without one send)."""
    if data[10:12] == b"\x00\x00":
        return False
    return not (data[-11:-8] == b"\x00\x00\x29" and data[-2:] == b"\x00\x00" and data[11] == 1)


class Guard:
    """Cookies and the rate limiter of one server (shared by all its listeners)."""

    def __init__(
        self,
        limiter: RateLimiter | None,
        cookies: Cookies | None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.cookies = cookies
        self._clock = clock
        self._monotonic = monotonic
        self._networks: dict[str, bytes] = {}  # client address -> its network key
        self._answer_keys: dict[bytes, bytes] = {}  # reply after its ID -> kind of answer
        # Held around every use of the limiter: UDP receive threads charge it for their
        # cache hits (dynserver/server/udp.py) while the event loop answers other queries.
        self.lock = threading.Lock()

    @classmethod
    def from_config(cls, server: ServerConfig, event: Callable[[str, str], None] | None = None) -> Guard:
        settings = server.rrl
        limiter = None
        if settings.enabled:
            limiter = RateLimiter(
                rate=settings.rate,
                slip=settings.slip,
                window=settings.window,
                exempt=settings.exempt,
                event=event,
            )
        return cls(limiter, Cookies(server.cookie_secret))

    def reply(
        self, data: bytes, reply: bytes, peer: tuple[str, int], tcp: bool, network: bytes | None = None
    ) -> bytes | None:
        """The reply to send for ``data`` (``reply`` with a cookie, a slip reply), or None."""
        option: bytes | None = None
        valid = False
        edns: wire.Edns | None = None
        if self.cookies is not None and _may_have_options(data) and len(reply) >= 12:
            try:
                edns = wire.parse_query(data).edns
            except wire.WireError:
                edns = None
            option = edns.cookie if edns is not None else None
            if option is not None and reply[3] & 0xF != wire.FORMERR:
                now = int(self._clock())
                valid = self.cookies.valid(option, peer[0], now)
                # RFC 7873 5.2.5: every reply to a cookie carries ours, the same while it is
                # fresh (RFC 9018 4.3), else a new one.
                fresh = self.cookies.check(option, peer[0], now) or option
                limit = wire.MAX_MESSAGE if tcp else wire.udp_limit(edns)
                reply = cookie_wire.with_cookie(reply, fresh, limit)
        limiter = self.limiter
        if tcp or limiter is None or valid:
            return reply
        net = network
        if net is None:
            net = self._networks.get(peer[0])
            if net is None:
                if len(self._networks) >= _NETWORKS:
                    self._networks.clear()
                net = self._networks[peer[0]] = rrl.peer_network(peer)
        # The kind of answer, kept per reply minus its ID: reading the question costs
        # more than the limiter, and most replies repeat.
        body = reply[2:]
        answer = self._answer_keys.get(body)
        if answer is None:
            if len(self._answer_keys) >= _ANSWER_KEYS:
                self._answer_keys.clear()
            answer = self._answer_keys[body] = rrl.reply_key(reply)
        with self.lock:
            verdict = limiter.verdict(net, answer, self._monotonic())
        if verdict == rrl.ANSWER:
            return reply
        if verdict == rrl.DROP:
            return None
        end = rrl.question_end(reply)
        if option is not None and self.cookies is not None and edns is not None:
            client = option[: cookie_wire.CLIENT_SIZE]
            fresh_value = client + self.cookies.server_cookie(client, peer[0], int(self._clock()))
            return cookie_wire.badcookie(reply, end, fresh_value, edns.do)
        return rrl.truncated(reply, end)

    def cached(self, network: bytes, answer: bytes, now: float) -> int:
        """The limiter's verdict for a reply from the packet cache (no cookies there: a
        query with an option never reaches the cache)."""
        assert self.limiter is not None
        with self.lock:
            return self.limiter.verdict(network, answer, now)


def rrl_event(add_event: Callable[[EventRow], None]) -> Callable[[str, str], None]:
    """The limiter's start/stop notes as events (kind "rrl", the network as target) and log
    lines; the limiter already rate-limits them (dynserver/dns/rrl.py)."""

    def note(what: str, network: str) -> None:
        log.warning("event=rrl_%s network=%s", what, network)
        add_event(EventRow(kind="rrl", target=network, result=what, reason=f"rate limiting {what}"))

    return note
