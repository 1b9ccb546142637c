"""UDP transport: a non-blocking socket drained from a reader callback.

asyncio's DatagramProtocol receives each packet into a fresh 256 KiB buffer (about
26 us a packet on CPython 3.11); reading the socket ourselves with a small buffer until
it would block costs a fraction of that. On Linux the reader goes further: one
recvmmsg(2) takes up to BATCH queries and one sendmmsg(2) sends their replies, so a
busy server makes two system calls per batch instead of two per query, and never turns
a client's address into a Python tuple and back (measurements: docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dynserver.dns import packet, rrl
from dynserver.dns.packet import FLAGS, ID_END, KEY_START, NOT_QUERY, RD_BIT, STAT, Entry, PacketCache, Tail
from dynserver.model import Listener
from dynserver.server.guard import Guard
from dynserver.types import Answerer

try:  # the receive thread's loop in C, built by `make` (dynserver/server/_hitloop.c)
    from dynserver.server import _hitloop
except ImportError:  # not built (no compiler): the same loop in Python
    _hitloop = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# Largest query we read; bigger datagrams are cut and then answered FORMERR.
RECV_SIZE = 4096
# Packets handled per wake-up before yielding to other tasks (TCP, checks, web);
# the batched reader takes up to ROUNDS batches of BATCH while the socket has more.
BATCH = 64
ROUNDS = 4
# Batches read when a listener closes (a reload that removes it, a stop): the queries
# already queued in its socket are answered, not dropped with it; a default receive
# buffer holds a few hundred, and a flood cannot hold the close for longer than this.
DRAIN_BATCHES = 16
# Set to 0 to use the portable recvfrom/sendto reader (for comparison, or a kernel
# that refuses recvmmsg).
MMSG_ENV = "DYNSERVER_UDP_MMSG"
# Set to 0 to run the batched reader on the event loop (a reader callback per wake-up)
# instead of on a receive thread of its own that blocks in recvmmsg.
THREAD_ENV = "DYNSERVER_UDP_THREAD"
# Set to 0 to run the receive thread's loop in Python even when the C loop is built
# (dynserver/server/_hitloop.c: the same batches, cache hits answered without the
# interpreter; everything else still goes to the event loop).
NATIVE_ENV = "DYNSERVER_UDP_NATIVE"
# How long the receive thread blocks in recvmmsg before it looks whether it should stop
# (close() wakes it at once; this is the safety net).
IDLE_WAKE_S = 1.0
# Fewer, fuller wake-ups at moderate rates: after a batch of fewer than NAP_BELOW queries
# that came after a wait shorter than the nap (queries arrive faster than one a nap),
# the receive thread sleeps NAP_US microseconds, the GIL released, so that the next
# recvmmsg takes what arrived meanwhile instead of waking once per query or two. A lone
# query after a quiet moment is answered without one. Set the variable to 0 for none.
# The Python loop needs it (each wake-up costs ~12 us of interpreter); the C loop does
# not (its wake-up costs what gdnsd's does) and naps only when the variable asks it to:
# a nap costs latency (docs/benchmarks.md, "DNS hot path").
NAP_ENV = "DYNSERVER_UDP_NAP_US"
NAP_US = 50
NATIVE_NAP_US = 0
NAP_BELOW = 16
# The receive thread's timer slack (PR_SET_TIMERSLACK): the default 50 us would double
# the nap.
NAP_SLACK_NS = 5_000
_PR_SET_TIMERSLACK = 29


# Where the batched reader finds the current snapshot's packet cache (read once a batch:
# a snapshot swap happens between two batches, never inside one).
PacketSource = Callable[[], "tuple[PacketCache, list[int]]"]


class UdpServer:
    def __init__(
        self,
        listener: Listener,
        answer: Answerer,
        packets: PacketSource | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.listener = listener
        self._answer = answer
        self._packets = packets
        self._guard = guard  # cookies and rate limiting (dynserver/server/guard.py)
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self._batch: _MmsgBatch | None = None
        self._receiver: _Receiver | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return host, port

    @property
    def batched(self) -> bool:
        """Whether queries are read and answered with recvmmsg/sendmmsg."""
        return self._batch is not None

    @property
    def threaded(self) -> bool:
        """Whether the batches are read on a receive thread (else in the event loop)."""
        return self._receiver is not None

    @property
    def native(self) -> bool:
        """Whether the receive thread runs its loop in C (dynserver/server/_hitloop.c)."""
        return self._receiver is not None and self._receiver.native is not None

    def fence(self) -> None:
        """Return once no reply from a snapshot read before this call can still go out.

        Runtime.swap calls it right after it replaced the snapshot: the receive thread
        holds the fence from the moment it reads the snapshot for a batch until that
        batch's sendmmsg returned, so when the fence is passed every later batch reads
        the new one. (The event-loop readers need nothing: a swap runs on the loop,
        between two of their batches.)"""
        if self._receiver is not None:
            self._receiver.wait_fence()

    def start(self, sock: socket.socket | None = None) -> None:
        """Bind (unless given a bound socket) and start reading."""
        if sock is None:
            family = socket.AF_INET6 if ":" in self.listener.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.listener.host, self.listener.port))
        sock.setblocking(False)
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        reader: Callable[[], object] = self._on_readable
        if _mmsg_available() and os.environ.get(MMSG_ENV, "1") != "0":
            self._batch = _MmsgBatch(sock, self._answer, self._later, self._packets, self._guard)
            if os.environ.get(THREAD_ENV, "1") != "0":
                self._receiver = _Receiver(self._batch, self._loop)
                self._receiver.start()
                return
            reader = self._batch.on_readable
        self._loop.add_reader(sock.fileno(), reader)

    def _on_readable(self) -> int:
        """Read and answer up to BATCH queries; how many were read."""
        sock = self._sock
        assert sock is not None
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        answer = self._answer
        guard = self._guard
        for count in range(BATCH):
            try:
                data, address = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return count
            except OSError as error:  # pragma: no cover - e.g. ICMP errors surfacing
                log.debug("udp recv error: %s", error)
                return count
            try:
                reply = answer(data, False, address)
                if guard is not None and reply.__class__ is bytes:
                    reply = guard.reply(data, reply, address, False)
            except Exception:  # pragma: no cover - the core must not raise; keep serving
                log.exception("error answering a UDP query")
                continue
            if reply is None:
                continue
            if reply.__class__ is not bytes:  # rare: a reply that must wait (UPDATE)
                self._later(reply, address)  # type: ignore[arg-type]
                continue
            with contextlib.suppress(OSError):  # a full send buffer: UDP may drop
                sendto(reply, address)
        return BATCH

    def _later(self, pending: Awaitable[bytes | None], address: tuple[str, int]) -> None:
        async def send() -> None:
            try:
                reply = await pending
            except Exception:  # pragma: no cover - a bug: log it, keep serving
                log.exception("error answering a UDP message")
                return
            if reply is not None and self._sock is not None:
                with contextlib.suppress(OSError):  # never waits: the socket may block (thread)
                    self._sock.sendto(reply, _DONTWAIT, address)

        task = asyncio.ensure_future(send())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def close(self) -> None:
        """Stop reading, answer what the socket still holds (at most DRAIN_BATCHES
        batches), then close it."""
        if self._sock is not None:
            if self._receiver is not None:
                self._receiver.stop()  # it no longer reads the socket when this returns
            elif self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            read = self._batch.read_batch if self._batch is not None else self._on_readable
            for _ in range(DRAIN_BATCHES):
                if not read():
                    break
            self._sock.close()
            self._sock = None
        self._batch = None
        self._receiver = None


# -- recvmmsg / sendmmsg through ctypes (Linux) ----------------------------------------
#
# The arrays below are allocated once per socket and reused for every batch: BATCH
# buffers, BATCH socket-address slots, and an array of struct mmsghdr whose iovecs
# point into the buffers. recvmmsg fills them; each reply is written over its query and
# sendmmsg sends it with the same header, so the client's address is never decoded
# except for the rare message the core needs it for (a key of a small cache, see _peer).


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_MSG_DONTWAIT = 0x40
_MSG_WAITFORONE = 0x10000  # block for the first datagram only, then take what is there
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_NAME_SIZE = 128  # sizeof(struct sockaddr_storage)
_NAME_WORDS = _NAME_SIZE // 4  # an IPv4 address is word 1 of its slot
_HDR = ctypes.sizeof(_MMsgHdr)  # 64 on 64-bit Linux
_NAMELEN_AT = _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_namelen.offset
_NAME_AT = _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_name.offset
_LEN_AT = _MMsgHdr.msg_len.offset
_IOV_LEN_AT = _IoVec.iov_len.offset
_PEER_CACHE = 4096  # decoded client addresses kept; cleared when full
_ANSWER_KEYS = 20_000  # cached replies' rate-limiting keys kept (as many as the packet cache)
_FEW = 6  # a batch of at most this many queries is accounted for with a plain loop
CREDIT = 64  # tokens a reader takes ahead per (network, reply): see _MmsgBatch._limit
CREDIT_S = 1.0  # and keeps at most this long

# recvmmsg and sendmmsg keeping the GIL, errno, and recvmmsg releasing the GIL (it blocks).
_libc_calls: tuple[Callable[..., int], Callable[..., int], Callable[[], int], Callable[..., int]] | None = (
    None
)
_NO_PACKETS: tuple[PacketCache, list[int]] = ({}, [])
# What the limiter is charged per, for cache hits: (client network, the entry's tail for
# RD clear: its bytes, or a rotating entry's iterator, the same object for every query).
_Client = tuple[int | bytes, Tail]


def _no_packets() -> tuple[PacketCache, list[int]]:
    return _NO_PACKETS


def _slip(reply: bytes) -> bytes:
    """The slip reply (TC=1, question only) of a cached reply over the limit."""
    return rrl.truncated(reply, rrl.question_end(reply))


def _count_loop(counts: dict[Any, int], items: list[Any]) -> None:
    for item in items:
        counts[item] = counts.get(item, 0) + 1


# Counter's counting loop in C (what Counter.update calls), without Counter's own Python
# overhead per call; the loop above where it is missing.
_count_elements: Callable[[dict[Any, int], list[Any]], None] = getattr(
    collections, "_count_elements", _count_loop
)


def _nap_seconds(default: int = NAP_US) -> float:
    """The receive thread's nap after a small batch (NAP_ENV, else ``default``
    microseconds), in seconds; 0: none."""
    value = os.environ.get(NAP_ENV, "")
    try:
        micros = int(value) if value else default
    except ValueError:
        log.warning("%s=%r is not a whole number of microseconds; using %d", NAP_ENV, value, default)
        micros = default
    return max(0, micros) / 1e6


def _set_timer_slack(nanoseconds: int) -> bool:
    """Set the calling thread's timer slack (Linux); whether it was set."""
    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return False
    return bool(prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(nanoseconds), 0, 0, 0) == 0)


def _mmsg_available() -> bool:
    """Whether recvmmsg/sendmmsg can be called (Linux with a C library that has them,
    the struct layout this module expects)."""
    global _libc_calls
    if _libc_calls is not None:
        return True
    if not sys.platform.startswith("linux") or _HDR % 8 or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    try:
        # PyDLL: the calls keep the GIL. Both are MSG_DONTWAIT, so they never block, and
        # releasing and taking back the GIL would cost as much as the system call. No
        # argtypes either: the pointers are passed as ready-made c_void_p objects and
        # the rest are small ints, which saves a conversion per argument (together,
        # ~0.6 us of the ~1.3 us a call costs through ctypes here).
        # No use_errno either: ctypes would swap errno with a per-thread copy around every
        # call; errno is read from libc only after a call failed (calling_errno).
        path = ctypes.util.find_library("c") or "libc.so.6"
        libc = ctypes.PyDLL(path)
        recv, send, location = libc.recvmmsg, libc.sendmmsg, libc.__errno_location
        # The receive thread's call blocks: through CDLL, which lets other threads run.
        waiting = ctypes.CDLL(path).recvmmsg
    except (OSError, AttributeError):
        return False
    recv.restype = ctypes.c_int
    send.restype = ctypes.c_int
    waiting.restype = ctypes.c_int
    location.restype = ctypes.POINTER(ctypes.c_int)

    def calling_errno() -> int:
        """errno of this thread, asked right after a call failed (the GIL is held and
        nothing in between makes a system call)."""
        return int(location().contents.value)

    _libc_calls = (recv, send, calling_errno, waiting)
    return True


class _MmsgBatch:
    """One socket's reader: a batch of queries in, a batch of replies out."""

    def __init__(
        self,
        sock: socket.socket,
        answer: Answerer,
        later: Callable[[Awaitable[bytes | None], tuple[str, int]], None],
        packets: PacketSource | None = None,
        guard: Guard | None = None,
    ) -> None:
        assert _libc_calls is not None
        self._packets = packets
        self._guard = guard
        self._limiter = guard.limiter if guard is not None else None
        # The rate limiter's answer key of each cached reply, by its tail for RD clear
        # (computed once, as the full path computes it; emptied when full).
        self._answer_keys: dict[Tail, bytes] = {}
        # Tokens taken ahead per (client network, reply) (_limit), and until when.
        self._credits: dict[_Client, int] = {}
        self._credits_until = 0.0
        rate = self._limiter.rate if self._limiter is not None else 0.0
        self._spare = max(0, min(CREDIT, int(rate * 0.01)))
        # Per slot of a batch: the cache entry of a hit, else None.
        self._entries: list[Entry | None] = [None] * BATCH
        self._recvmmsg, self._sendmmsg, self._errno, self._recvmmsg_waiting = _libc_calls
        self._sock = sock
        self._fd = sock.fileno()
        self._answer = answer
        self._later = later
        self._peers: dict[bytes, tuple[str, int]] = {}
        n = BATCH
        self._buffers = ctypes.create_string_buffer(n * RECV_SIZE)
        self._names = ctypes.create_string_buffer(n * _NAME_SIZE)
        # Two sets of headers over the same buffers and addresses: recvmmsg's, whose
        # iovecs always span a whole buffer, and sendmmsg's, whose iovecs each reply
        # shortens to its own length. Each name length is the family's socket address
        # size, which is what recvmmsg writes back; so nothing needs restoring between
        # two batches (a 4 KiB and a 1 KiB copy a batch before, ~1 us), except after the
        # empty messages of a shut-down socket, whose name length is 0 (_receive).
        name_len = 16 if sock.family == socket.AF_INET else 28  # sockaddr_in, sockaddr_in6
        self._iovs = (_IoVec * n)()
        self._msgs = (_MMsgHdr * n)()
        self._send_iovs = (_IoVec * n)()
        self._send_msgs = (_MMsgHdr * n)()
        buffers = ctypes.addressof(self._buffers)
        names = ctypes.addressof(self._names)
        for iovs, msgs in ((self._iovs, self._msgs), (self._send_iovs, self._send_msgs)):
            for i in range(n):
                iovs[i].iov_base = buffers + i * RECV_SIZE
                iovs[i].iov_len = RECV_SIZE
                header = msgs[i].msg_hdr
                header.msg_name = names + i * _NAME_SIZE
                header.msg_namelen = name_len
                header.msg_iov = ctypes.addressof(iovs) + i * ctypes.sizeof(_IoVec)
                header.msg_iovlen = 1
        self._fresh_msgs = bytes(self._msgs)
        self._msgs_at = ctypes.addressof(self._msgs)
        self._recv_at = ctypes.c_void_p(self._msgs_at)
        send_at = ctypes.addressof(self._send_msgs)
        self._ptrs = [ctypes.c_void_p(send_at + k * _HDR) for k in range(n + 1)]
        # Word views for field access without ctypes attribute lookups in the loop.
        self._msg_raw = memoryview(self._msgs).cast("B")
        self._msg_u32 = memoryview(self._msgs).cast("B").cast("I")
        self._iov_u64 = memoryview(self._send_iovs).cast("B").cast("Q")
        self._data = memoryview(self._buffers).cast("B")
        self._name_u32 = memoryview(self._names).cast("B").cast("I")
        self._ipv4 = sock.family == socket.AF_INET
        # Slicing a ctypes char array gives bytes in one step (a memoryview slice, then
        # bytes(), is two objects and twice the time); typed Any: the stubs say list.
        self._raw: Any = self._buffers
        self._raw_names: Any = self._names
        # Per slot, the offsets the loop needs, computed once: where query i, its length,
        # its client address and its address length are, and its iovec's length.
        words = _HDR // 4
        self._slots = [
            (
                i * RECV_SIZE,
                i * words + _LEN_AT // 4,
                i * _NAME_SIZE,
                i * words + _NAMELEN_AT // 4,
                i * 2 + _IOV_LEN_AT // 8,
            )
            for i in range(n)
        ]

    def read_batch(self) -> int:
        """Read, answer and send one batch; the number of queries read."""
        return self._one_batch()

    def on_readable(self) -> None:
        # Queries that arrived while a batch was answered are read at once, without a
        # trip through the event loop; after ROUNDS batches other tasks get their turn.
        for _ in range(ROUNDS):
            if not self._one_batch():
                return

    def _receive(self, call: Callable[..., int], flags: int, fresh: bool = True) -> int:
        """recvmmsg into the receive headers (restored first if ``fresh``); the number of
        queries read (0: none, or an error)."""
        if fresh:
            self._msg_raw[:] = self._fresh_msgs
        count: int = call(self._fd, self._recv_at, BATCH, flags, None)
        if count < 0:
            if (code := self._errno()) not in (errno.EAGAIN, errno.EINTR):
                log.debug("udp recvmmsg error: %s", os.strerror(code))
            return 0
        return count

    def _one_batch(self) -> int:
        """Read, answer and send one batch; the number of queries read.

        Each reply is written over its own query, in the same buffer, and sent with the
        same message header recvmmsg filled: the client's address as the kernel wrote it,
        the iovec shortened to the reply. Messages without a reply now (dropped,
        deferred) are left out of the sendmmsg calls."""
        count = self._receive(self._recvmmsg, _MSG_DONTWAIT)
        if not count:
            return 0
        cache, hits = self._packets() if self._packets is not None else _NO_PACKETS
        misses = self._serve_hits(count, cache)
        tally = self._account(count, hits)
        unsent = self._answer_misses(misses) if misses else None
        if tally:
            unsent = self._limit(tally, count, unsent)
        self._send_except(count, unsent)
        return count

    def _serve_hits(self, count: int, cache: PacketCache) -> list[int] | None:
        """Answer the batch's packet-cache hits in place, noting each one's cache entry
        (``_account`` counts them); the slots of the other queries, or None."""
        msg_u32, iov_u64, buf, raw = self._msg_u32, self._iov_u64, self._data, self._raw
        slots, entries = self._slots, self._entries
        cached = cache.get
        misses: list[int] | None = None
        for i in range(count):
            start, len_word, _, _, iov_word = slots[i]
            # A repeated query: the reply tail for its RD bit goes from the packet cache
            # over the query, after its ID (packet.serve, inlined: no call per query).
            hit = cached(raw[start + KEY_START : start + msg_u32[len_word]])
            if hit is not None and not (flags := buf[start + FLAGS]) & NOT_QUERY:
                tail: bytes = hit[flags & RD_BIT]  # type: ignore[assignment]  # 0 or 1
                if tail.__class__ is not bytes:
                    tail = next(tail)  # type: ignore[call-overload]  # a rotating reply
                entries[i] = hit
                size = len(tail) + ID_END
                buf[start + ID_END : start + size] = tail
                iov_u64[iov_word] = size
                continue
            entries[i] = None
            if misses is None:
                misses = []
            misses.append(i)
        return misses

    def _account(self, count: int, hits: list[int]) -> dict[_Client, int] | None:
        """Count the batch's cache hits in the snapshot's counters; with a rate limiter,
        their tally per (client network, reply tail), which ``_limit`` charges."""
        if count <= _FEW:
            return self._account_few(count, hits)
        entries = self._entries[:count]
        counted: dict[Entry | None, int] = {}
        _count_elements(counted, entries)
        counted.pop(None, None)
        for entry, n in counted.items():
            hits[entry[STAT]] += n  # type: ignore[index]  # None was popped
        if self._limiter is None or not counted:
            return None
        tally: dict[_Client, int] = {}
        if self._ipv4:
            # The client's network as the kernel wrote it: the /24 is 3 bytes of the
            # address's word. One address for the whole batch (one resolver, a flood):
            # one entry per reply, whatever the batch's size.
            words = self._name_u32[1 : count * _NAME_WORDS : _NAME_WORDS].tolist()
            if words.count(words[0]) == count:
                network = words[0] & 0xFFFFFF
                for entry, n in counted.items():
                    client: _Client = (network, entry[0])  # type: ignore[index]
                    tally[client] = tally.get(client, 0) + n
                return tally
        for i in range(count):
            entry = entries[i]
            if entry is not None:
                client = (self._network(i), entry[0])
                tally[client] = tally.get(client, 0) + 1
        return tally

    def _account_few(self, count: int, hits: list[int]) -> dict[_Client, int] | None:
        """_account for a batch of a few queries (a moderate rate: most batches): one
        plain loop costs less there than counting the entries first (~1.5 us a batch)."""
        entries = self._entries
        limited = self._limiter is not None
        tally: dict[_Client, int] = {}
        for i in range(count):
            entry = entries[i]
            if entry is None:
                continue
            hits[entry[STAT]] += 1
            if limited:
                if self._ipv4:
                    client: _Client = (self._name_u32[i * _NAME_WORDS + 1] & 0xFFFFFF, entry[0])
                else:
                    client = (self._network(i), entry[0])
                tally[client] = tally.get(client, 0) + 1
        return tally or None

    def _network(self, i: int) -> int | bytes:
        """Slot i's client network: an IPv4 /24 as the low 3 bytes of a word (as the
        kernel wrote the address), an IPv6 /56 as 7 bytes."""
        name_at = i * _NAME_SIZE
        if self._ipv4:
            return self._name_u32[(name_at >> 2) + 1] & 0xFFFFFF
        raw_names: bytes = self._raw_names[name_at + 8 : name_at + 15]
        return raw_names

    def _answer_misses(self, misses: list[int]) -> list[int] | None:
        """Answer the queries in slots ``misses`` through the core (and the guard), each
        reply written over its query; the slots left without a reply now, or None."""
        msg_u32, iov_u64, buf, raw = self._msg_u32, self._iov_u64, self._data, self._raw
        answer, peers, slots, guard = self._answer, self._peers, self._slots, self._guard
        unsent: list[int] | None = None
        for i in misses:
            start, len_word, name_at, namelen_word, iov_word = slots[i]
            data = raw[start : start + msg_u32[len_word]]
            key = self._raw_names[name_at : name_at + msg_u32[namelen_word]]
            peer = peers.get(key)
            if peer is None:
                peer = self._peer(key)
            reply: object = None
            try:
                reply = answer(data, False, peer)
                if guard is not None and reply.__class__ is bytes:
                    reply = guard.reply(data, reply, peer, False, rrl.network_key(key))
            except Exception:  # pragma: no cover - the core must not raise; keep serving
                log.exception("error answering a UDP query")
            if reply.__class__ is bytes and len(reply) <= RECV_SIZE:
                buf[start : start + len(reply)] = reply
                iov_u64[iov_word] = len(reply)
                continue
            if unsent is None:
                unsent = []
            unsent.append(i)
            if reply is None:
                continue
            if reply.__class__ is bytes:  # not from the core (UDP replies are at most 1232 bytes)
                with contextlib.suppress(OSError):
                    self._sock.sendto(reply, socket.MSG_DONTWAIT, peer)
            else:  # rare: a reply that must wait (UPDATE)
                self._later(reply, peer)  # type: ignore[arg-type]
        return unsent

    def _limit(
        self,
        tally: dict[_Client, int],
        count: int,
        unsent: list[int] | None,
    ) -> list[int] | None:
        """Charge the limiter with the batch's cache hits; replies over the limit are
        dropped (left unsent) or slipped (a TC=1 reply written over theirs).

        Each (network, reply) keeps a small credit of tokens taken ahead from the limiter
        (at most CREDIT, and 10 ms of the rate, for at most CREDIT_S seconds): most
        batches then pay one dictionary update per key instead of a call to the limiter.
        The tokens are the bucket's own, taken only when all of a batch's replies fit, so
        a key is limited as before, a few replies later at most."""
        limiter = self._limiter
        assert limiter is not None
        now = time.monotonic()
        credits = self._credits
        if now >= self._credits_until:
            credits.clear()
            self._credits_until = now + CREDIT_S
        over: dict[_Client, list[int]] = {}
        for hit_client, n in tally.items():
            left = credits.get(hit_client, 0)
            if left >= n:
                credits[hit_client] = left - n
                continue
            network, tail = hit_client
            answer_key = self._answer_key(tail)
            if isinstance(network, int):  # an IPv4 /24 read as a little-endian word
                network = network.to_bytes(3, "little")
            allowed = left + limiter.take(network, answer_key, now, n - left, self._spare)
            if allowed >= n:
                credits[hit_client] = allowed - n
                continue
            credits[hit_client] = 0
            # The first ``allowed`` go out, the rest as ``over`` says, in batch order.
            over[hit_client] = [rrl.ANSWER] * allowed + limiter.over(n - allowed)
        if not over:
            return unsent
        buf, raw, slots, entries = self._data, self._raw, self._slots, self._entries
        dropped = set(unsent or ())
        for i in range(count):
            entry = entries[i]
            verdicts = over.get((self._network(i), entry[0])) if entry is not None else None
            if not verdicts:
                continue
            start, _, _, _, iov_word = slots[i]
            verdict = verdicts.pop(0)
            if verdict == rrl.DROP:
                dropped.add(i)
            elif verdict == rrl.SLIP:
                reply = raw[start : start + self._iov_u64[iov_word]]
                slip = _slip(reply)
                buf[start : start + len(slip)] = slip
                self._iov_u64[iov_word] = len(slip)
        return sorted(dropped) or None

    def _answer_key(self, tail: Tail) -> bytes:
        """The limiter's kind of answer for a cached reply, by its tail for RD clear
        (computed once, as the full path computes it; the table emptied when full)."""
        answer_key = self._answer_keys.get(tail)
        if answer_key is None:
            if len(self._answer_keys) >= _ANSWER_KEYS:
                self._answer_keys = {}
            answer_key = self._answer_keys[tail] = rrl.reply_key(
                b"\x00\x00" + packet.tail((tail, tail, 0), 0)
            )
        return answer_key

    def _charge(self, network: bytes, tail: Tail, count: int, now: float) -> tuple[int, list[int]]:
        """The C loop's charge for ``count`` replies of one (network, reply tail) that its
        credit does not cover: (tokens taken, with credit ahead as in ``_limit``; for the
        replies over the limit, SLIP or DROP each, in order)."""
        limiter = self._limiter
        assert limiter is not None and self._guard is not None
        answer_key = self._answer_key(tail)
        with self._guard.lock:
            got = limiter.take(network, answer_key, now, count, self._spare)
            return got, (limiter.over(count - got) if got < count else [])

    def _send_except(self, count: int, unsent: list[int] | None) -> None:
        """sendmmsg the replies in slots 0..count-1 but those in ``unsent`` (sorted)."""
        if unsent is None:
            self._send(0, count)
            return
        first = 0
        for gap in (*unsent, count):
            if gap > first:
                self._send(first, gap)
            first = gap + 1

    def _send_slots(self, slots: list[int]) -> None:
        """sendmmsg the replies in ``slots`` (sorted), each run of neighbours in one call."""
        k = 0
        while k < len(slots):
            first = end = slots[k]
            k += 1
            while k < len(slots) and slots[k] == end + 1:
                end += 1
                k += 1
            self._send(first, end + 1)

    def _send(self, first: int, end: int) -> None:
        """sendmmsg the replies in slots first..end-1."""
        while first < end:
            done: int = self._sendmmsg(self._fd, self._ptrs[first], end - first, _MSG_DONTWAIT)
            if done > 0:
                first += done
                continue
            if self._errno() in (errno.EAGAIN, errno.ENOBUFS):
                return  # a full send buffer: UDP may drop
            first += 1  # this one failed (e.g. an unreachable client); send the rest

    def _peer(self, key: bytes) -> tuple[str, int]:
        """The (host, port) of a struct sockaddr, cached by its bytes."""
        port = (key[2] << 8) | key[3]
        if len(key) >= 24 and key[0] | (key[1] << 8) == socket.AF_INET6:
            peer = (socket.inet_ntop(socket.AF_INET6, key[8:24]), port)
        else:
            peer = (socket.inet_ntop(socket.AF_INET, key[4:8]), port)
        if len(self._peers) >= _PEER_CACHE:
            self._peers.clear()
        self._peers[key] = peer
        return peer


class _Receiver:
    """The batched reader on a thread of its own, as gdnsd's I/O threads: it blocks in
    recvmmsg (MSG_WAITFORONE, the GIL released) and sends with sendmmsg, so a wake-up
    costs two system calls and no trip through epoll and the event loop.

    The thread answers packet-cache hits only: that path reads the snapshot's cache and
    counters and charges the rate limiter (under the guard's lock), nothing else. Every
    other query of a batch (the core, cookies, UPDATE) is handed to the event loop, which
    answers and sends it as the loop reader does, while the thread waits; so the core,
    the snapshots and the runtime stay single-threaded.

    Swaps: the thread holds ``fence`` from reading the snapshot to the end of the batch's
    sendmmsg (UdpServer.fence). It never holds it while it waits for the loop, which is
    where a swap runs."""

    def __init__(self, batch: _MmsgBatch, loop: asyncio.AbstractEventLoop) -> None:
        self.fence = threading.Lock()
        native = _hitloop is not None and os.environ.get(NATIVE_ENV, "1") != "0"
        self.nap = _nap_seconds(NATIVE_NAP_US if native else NAP_US)
        self._naps = 0  # naps taken by the Python loop
        self._batch = batch
        self._loop = loop
        self._sock = batch._sock
        self._stopping = False
        self._answered = threading.Lock()  # released by the loop when it answered a handover
        self._answered.acquire()
        self._handed: list[int] | None = None  # the slots handed to the loop, until answered
        self._guard_lock = batch._guard.lock if batch._guard is not None else None
        # The loop in C when it is built (and not turned off): the same steps as _run.
        self.native: Any = None
        if native:
            self.native = _hitloop.HitLoop(
                fd=batch._fd,
                recv_msgs=batch._msgs_at,
                send_msgs=ctypes.addressof(batch._send_msgs),
                batch=BATCH,
                recv_size=RECV_SIZE,
                ipv4=batch._ipv4,
                packets=batch._packets if batch._packets is not None else _no_packets,
                handover=self._hand_over,
                charge=batch._charge if batch._limiter is not None else None,
                slip=_slip,
                credit_s=CREDIT_S,
                nap_ns=round(self.nap * 1e9),
                nap_below=NAP_BELOW,
            )
        name = self._sock.getsockname()
        run = self._run if self.native is None else self._run_native
        self._thread = threading.Thread(target=run, name=f"udp {name[0]}:{name[1]}", daemon=True)

    @property
    def naps(self) -> int:
        """Naps taken (tests, and a look at a running server)."""
        return int(self.native.naps) if self.native is not None else self._naps

    def wait_fence(self) -> None:
        """Return once no batch that read the snapshot before this call is being sent."""
        if self.native is not None:
            self.native.fence()
            return
        with self.fence:
            pass

    def start(self) -> None:
        sock = self._sock
        sock.setblocking(True)
        seconds = int(IDLE_WAKE_S)
        micros = int((IDLE_WAKE_S - seconds) * 1e6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, micros))
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it, then answer what it had handed to the loop
        (called on the loop: the socket stays open, the caller drains and closes it)."""
        self._stopping = True
        if self.native is not None:
            self.native.stop()
        # Wakes a recvmmsg that waits, on Linux even on an unconnected UDP socket (which
        # says ENOTCONN but wakes it all the same; what is queued can still be read);
        # IDLE_WAKE_S is the safety net.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)
        self._thread.join(timeout=IDLE_WAKE_S + 5)
        if not self._thread.is_alive():
            self._answer_handed()

    def _run(self) -> None:
        batch = self._batch
        waiting = batch._recvmmsg_waiting
        nap = self.nap
        if nap:
            _set_timer_slack(NAP_SLACK_NS)
        monotonic, sleep = time.monotonic, time.sleep
        waited_from = monotonic()
        fresh = True
        while not self._stopping:
            count = batch._receive(waiting, _MSG_WAITFORONE, fresh)
            fresh = not count
            # Queries come densely when this batch came within a nap of the last one's
            # end (or at once, after a nap): a nap will then gather more for the next.
            dense = monotonic() - waited_from < nap
            if not count or self._stopping:
                # After stop()'s shutdown, recvmmsg returns empty messages without an
                # address: nothing to answer (close() drains what is really queued).
                waited_from = monotonic()
                fresh = True
                continue
            try:
                misses = self._serve(count)
            except Exception:  # pragma: no cover - a bug: log it, keep serving
                log.exception("error answering a UDP batch")
                misses = None
            if misses and not self._hand_over(misses):
                return
            if dense and count < NAP_BELOW:
                self._naps += 1
                sleep(nap)
            waited_from = monotonic()

    def _run_native(self) -> None:
        """_run, in C: returns when stopped (or when the loop is closed under it)."""
        if self.nap:
            _set_timer_slack(NAP_SLACK_NS)
        while not self._stopping:
            try:
                if not self.native.run():
                    return
            except Exception:  # pragma: no cover - a bug: log it, keep serving
                log.exception("error answering a UDP batch")

    def _serve(self, count: int) -> list[int] | None:
        """Answer and send the batch's cache hits; the other queries' slots."""
        batch = self._batch
        with self.fence:
            cache, hits = batch._packets() if batch._packets is not None else _NO_PACKETS
            misses = batch._serve_hits(count, cache)
            tally = batch._account(count, hits)
            unsent = misses
            if tally:
                assert self._guard_lock is not None
                with self._guard_lock:
                    unsent = batch._limit(tally, count, unsent)
            batch._send_except(count, unsent)
        return misses

    def _hand_over(self, misses: list[int]) -> bool:
        """Have the loop answer and send ``misses``, and wait until it has (False: stop;
        stop() then answers them itself)."""
        self._handed = misses
        try:
            self._loop.call_soon_threadsafe(self._answer_on_loop)
        except RuntimeError:  # the loop is closed
            return False
        while not self._answered.acquire(timeout=0.1):
            if self._stopping:
                return False
        return True

    def _answer_on_loop(self) -> None:
        self._answer_handed()
        self._answered.release()

    def _answer_handed(self) -> None:
        """On the loop: answer and send the slots handed over, once."""
        misses, self._handed = self._handed, None
        if misses is not None:
            batch = self._batch
            unsent = batch._answer_misses(misses)
            batch._send_slots([i for i in misses if i not in unsent] if unsent else misses)
