"""Coverage-guided fuzz target (atheris: libFuzzer's engine for Python) over dynserver's
packet parser and answering core, fed bytes as any client on the internet could send them.

    .venv/bin/python fuzz/answer.py -runs=100000 /tmp/corpus fuzz/corpus   # libFuzzer options
    .venv/bin/python bench/fuzz.py                        # 10 million inputs (docs/security.md)

Each input goes where Runtime.answer sends it: an UPDATE is verified and planned
(rfc2136.handle), anything else answered as a UDP and as a TCP query by the snapshot of
fuzz/dynserver.toml (Snapshot.answer: parsing, the fast path, the full path, transfers,
signed queries, NOTIFY), and each reply then passes the transports' Guard three times
(DNS Cookies; rate limiting: answered, slipped, dropped). An input fails on an
exception, a reply dnspython cannot parse, a reply that is not a response with the
query's ID, or a UDP reply larger than the query allows. The seeds in fuzz/corpus are
real queries from dig, kdig, nsupdate and dnspython (fuzz/capture.py made them).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import dns.exception
import dns.message

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "dynserver.toml"
CORPUS = HERE / "corpus"
PEER = ("127.0.0.1", 40000)  # inside the zone's transfer allow list: transfers are answered
NOW = 1_800_000_000  # the clock of TSIG checks: fixed, so a signed seed stays in its window
UDP_MAX = 1232  # dynserver's largest UDP reply, whatever the client offers
UPDATE = 5
UNINSTRUMENTED = ["dynserver.dns.wire"]


@dataclass(frozen=True)
class Core:
    """What an input is fed to: the snapshot and rfc2136.handle's arguments."""

    snapshot: Any  # dynserver.dns.snapshot.Snapshot
    handle: Any  # rfc2136.handle with the zone's keys, zones and records bound
    stream: Any  # dynserver.types.Stream
    guard: Any  # a fresh dynserver.server.guard.Guard: cookies and a rate limit of 1 a second


@cache
def core() -> Core:
    """Built once; imported here so that `main` can instrument dynserver's modules first."""
    from functools import partial

    from dynserver import config
    from dynserver.dns.cookies import Cookies
    from dynserver.dns.rrl import RateLimiter
    from dynserver.dns.snapshot import Snapshot
    from dynserver.runtime import Runtime
    from dynserver.server.guard import Guard
    from dynserver.types import Stream
    from dynserver.update import rfc2136
    from dynserver.xfr.transfer import Transfers

    loaded = config.load(CONFIG)
    transfers = Transfers(loaded.zones, loaded.keys)
    runtime = Runtime(loaded, transfers)
    built = runtime.snapshot  # the zones with the dynamic records' answers

    def transfer(query: Any, data: bytes, tcp: bool, peer: Any, snapshot: Snapshot) -> Any:
        return transfers.answer(query, data, tcp, peer, snapshot, NOW)

    snapshot = Snapshot(built.zones, chaos=built.chaos, transfers=transfer)
    handle = partial(
        rfc2136.handle,
        keys={key.name: key for key in loaded.keys},
        zones=snapshot.zones,
        records=runtime.engine.records,
        now=NOW,
    )
    cookies = Cookies(bytes(range(16)))

    def guard() -> Guard:
        # Per input, so that a failure replays alone: its first reply is answered, the
        # next slipped (TC=1, or BADCOOKIE to a client cookie), the third dropped.
        limiter = RateLimiter(rate=1, slip=2, window=1.0, size=64)
        return Guard(limiter, cookies, clock=lambda: float(NOW), monotonic=lambda: 0.0)

    return Core(snapshot, handle, Stream, guard)


def check(data: bytes) -> None:
    """One input: raises AssertionError (or the core's own exception) on a failure."""
    found = core()
    if len(data) > 2 and data[2] & 0xF8 == UPDATE << 3:  # QR=0, opcode UPDATE: as Runtime.answer routes
        outcome = found.handle(data)  # a Plan (the runtime commits it, then replies), bytes or None
        if isinstance(outcome, bytes):
            _check_reply(data, outcome, False)
        return
    for tcp in (False, True):
        answer = found.snapshot.answer(data, tcp, PEER)
        for reply in _messages(answer, found.stream):
            _check_reply(data, reply, tcp)
        if isinstance(answer, bytes):  # what the transports send: cookies, rate limiting
            guard = found.guard()
            for _ in range(3):
                guarded = guard.reply(data, answer, PEER, tcp)
                if guarded is not None:
                    _check_reply(data, guarded, tcp)


def _messages(reply: Any, stream: type) -> Iterator[bytes]:
    if reply is None:
        return
    if isinstance(reply, stream):
        for count, message in enumerate(reply.messages):  # type: ignore[attr-defined]
            assert count < 1000, "a transfer of this small zone runs on and on"
            yield message
        return
    assert isinstance(reply, bytes), f"the core returned {type(reply).__name__}"
    yield reply


def _check_reply(query: bytes, reply: bytes, tcp: bool) -> None:
    try:
        dns.message.from_wire(reply, keyring=False)
    except dns.exception.DNSException as error:
        raise AssertionError(f"a reply dnspython cannot parse ({error!r}): {reply.hex()}") from None
    assert len(reply) >= 12 and reply[2] & 0x80, f"not a response: {reply.hex()}"
    if len(query) >= 2:
        assert reply[:2] == query[:2], "the reply's ID is not the query's"
    if not tcp:
        assert len(reply) <= _udp_limit(query), f"{len(reply)} bytes over UDP to {query.hex()}"


def _udp_limit(query: bytes) -> int:
    """The most a UDP reply may hold: 512 bytes, or what the query's EDNS offers up to
    dynserver's own limit; a query dnspython cannot read is held to that limit alone."""
    try:
        parsed = dns.message.from_wire(query, keyring=False)
    except (dns.exception.DNSException, ValueError):
        return UDP_MAX
    if parsed.edns < 0:
        return 512
    return max(512, min(parsed.payload, UDP_MAX))


def seeds() -> list[Path]:
    return sorted(CORPUS.glob("*.bin"))


def main() -> None:
    import atheris

    # dynserver/dns/wire.py runs uninstrumented: atheris 2.3.0 rewrites the backward jump of
    # its `while True` loops to the wrong instruction on Python 3.11 (seen with dis: the loop
    # re-enters past a LOAD_FAST), which turns every name into a TypeError. Every input still
    # goes through it; the coverage that guides the mutations comes from the rest.
    with atheris.instrument_imports(include=["dynserver"], exclude=UNINSTRUMENTED):
        core()
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
