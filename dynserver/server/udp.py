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
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dynserver.dns import packet, rrl
from dynserver.dns.packet import FLAGS, ID_END, KEY_START, NOT_QUERY, RD_BIT, STAT, PacketCache
from dynserver.model import Listener
from dynserver.server.guard import Guard
from dynserver.types import Answerer

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

    @property
    def address(self) -> tuple[str, int]:
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return host, port

    @property
    def batched(self) -> bool:
        """Whether queries are read and answered with recvmmsg/sendmmsg."""
        return self._batch is not None

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
                with contextlib.suppress(OSError):
                    self._sock.sendto(reply, address)

        task = asyncio.ensure_future(send())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def close(self) -> None:
        """Stop reading, answer what the socket still holds (at most DRAIN_BATCHES
        batches), then close it."""
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            read = self._batch.read_batch if self._batch is not None else self._on_readable
            for _ in range(DRAIN_BATCHES):
                if not read():
                    break
            self._sock.close()
            self._sock = None
        self._batch = None


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
_NAME_SIZE = 128  # sizeof(struct sockaddr_storage)
_HDR = ctypes.sizeof(_MMsgHdr)  # 64 on 64-bit Linux
_NAMELEN_AT = _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_namelen.offset
_NAME_AT = _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_name.offset
_LEN_AT = _MMsgHdr.msg_len.offset
_IOV_LEN_AT = _IoVec.iov_len.offset
_PEER_CACHE = 4096  # decoded client addresses kept; cleared when full
_ANSWER_KEYS = 20_000  # cached replies' rate-limiting keys kept (as many as the packet cache)

_libc_calls: tuple[Callable[..., int], Callable[..., int], Callable[[], int]] | None = None
_NO_PACKETS: tuple[PacketCache, list[int]] = ({}, [])


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
        libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6")
        recv, send, location = libc.recvmmsg, libc.sendmmsg, libc.__errno_location
    except (OSError, AttributeError):
        return False
    recv.restype = ctypes.c_int
    send.restype = ctypes.c_int
    location.restype = ctypes.POINTER(ctypes.c_int)

    def calling_errno() -> int:
        """errno of this thread, asked right after a call failed (the GIL is held and
        nothing in between makes a system call)."""
        return int(location().contents.value)

    _libc_calls = (recv, send, calling_errno)
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
        # The rate limiter's answer key of each cached reply, by cache key (computed once,
        # as the full path computes it; emptied with each new packet cache, or when full).
        self._answer_keys: dict[bytes, bytes] = {}
        self._keys_of: object = None
        # Per slot of a batch: the (client, cache key) of a cache hit, None otherwise.
        self._clients: list[tuple[int | bytes, bytes] | None] = [None] * BATCH
        self._recvmmsg, self._sendmmsg, self._errno = _libc_calls
        self._sock = sock
        self._fd = sock.fileno()
        self._answer = answer
        self._later = later
        self._peers: dict[bytes, tuple[str, int]] = {}
        n = BATCH
        self._buffers = ctypes.create_string_buffer(n * RECV_SIZE)
        self._names = ctypes.create_string_buffer(n * _NAME_SIZE)
        self._iovs = (_IoVec * n)()
        self._msgs = (_MMsgHdr * n)()
        buffers = ctypes.addressof(self._buffers)
        names = ctypes.addressof(self._names)
        for i in range(n):
            self._iovs[i].iov_base = buffers + i * RECV_SIZE
            self._iovs[i].iov_len = RECV_SIZE
            header = self._msgs[i].msg_hdr
            header.msg_name = names + i * _NAME_SIZE
            header.msg_namelen = _NAME_SIZE
            header.msg_iov = ctypes.addressof(self._iovs) + i * ctypes.sizeof(_IoVec)
            header.msg_iovlen = 1
        # recvmmsg overwrites each header's name length and a reply shortens its iovec;
        # two buffer copies (not ctypes calls) restore both arrays before the next batch.
        self._fresh_msgs, self._fresh_iovs = bytes(self._msgs), bytes(self._iovs)
        self._msgs_at, self._iovs_at = ctypes.addressof(self._msgs), ctypes.addressof(self._iovs)
        self._ptrs = [ctypes.c_void_p(self._msgs_at + k * _HDR) for k in range(n + 1)]
        # Word views for field access without ctypes attribute lookups in the loop.
        self._msg_raw = memoryview(self._msgs).cast("B")
        self._iov_raw = memoryview(self._iovs).cast("B")
        self._msg_u32 = memoryview(self._msgs).cast("B").cast("I")
        self._iov_u64 = memoryview(self._iovs).cast("B").cast("Q")
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

    def _one_batch(self) -> int:
        """Read, answer and send one batch; the number of queries read.

        Each reply is written over its own query, in the same buffer, and sent with the
        same message header recvmmsg filled: the client's address as the kernel wrote it,
        the iovec shortened to the reply. Messages without a reply now (dropped,
        deferred) are left out of the sendmmsg calls."""
        self._msg_raw[:] = self._fresh_msgs
        self._iov_raw[:] = self._fresh_iovs
        count: int = self._recvmmsg(self._fd, self._ptrs[0], BATCH, _MSG_DONTWAIT, None)
        if count <= 0:
            if count < 0 and (code := self._errno()) not in (errno.EAGAIN, errno.EINTR):
                log.debug("udp recvmmsg error: %s", os.strerror(code))
            return 0
        msg_u32, iov_u64, buf, raw = self._msg_u32, self._iov_u64, self._data, self._raw
        answer, peers, slots = self._answer, self._peers, self._slots
        cache, hits = self._packets() if self._packets is not None else _NO_PACKETS
        cached = cache.get
        unsent: list[int] | None = None
        guard = self._guard
        # Rate limiting of cache hits: tallied per (client address, query) in the loop,
        # one dictionary update each, and charged to the limiter once per key after it.
        tally: dict[tuple[int | bytes, bytes], int] | None = None if self._limiter is None else {}
        raw_names, clients, name_u32, ipv4 = self._raw_names, self._clients, self._name_u32, self._ipv4
        for i in range(count):
            start, len_word, name_at, namelen_word, iov_word = slots[i]
            stop = start + msg_u32[len_word]
            # A repeated query: the reply tail for its RD bit goes from the packet cache
            # over the query, after its ID (packet.serve, inlined: no call per query).
            key = raw[start + KEY_START : stop]
            hit = cached(key)
            if hit is not None and not (flags := buf[start + FLAGS]) & NOT_QUERY:
                tail: bytes = hit[flags & RD_BIT]  # type: ignore[assignment]  # 0 or 1
                if tail.__class__ is not bytes:
                    tail = next(tail)  # type: ignore[call-overload]  # a rotating reply
                if tally is not None:
                    # The client's network as the kernel wrote it: an IPv4 socket's peers
                    # are IPv4, the /24 is 3 bytes of one word; an IPv6 socket's, a slice.
                    if ipv4:
                        client = (name_u32[(name_at >> 2) + 1] & 0xFFFFFF, key)
                    else:
                        client = (raw_names[name_at + 8 : name_at + 15], key)
                    tally[client] = tally.get(client, 0) + 1
                    clients[i] = client
                hits[hit[STAT]] += 1
                size = len(tail) + ID_END
                buf[start + ID_END : start + size] = tail
                iov_u64[iov_word] = size
                continue
            clients[i] = None
            data = raw[start:stop]
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
                    self._sock.sendto(reply, peer)
            else:  # rare: a reply that must wait (UPDATE)
                self._later(reply, peer)  # type: ignore[arg-type]
        if tally:
            unsent = self._limit(tally, cache, count, unsent)
        if unsent is None:
            self._send(0, count)
        else:
            first = 0
            for gap in (*unsent, count):
                if gap > first:
                    self._send(first, gap)
                first = gap + 1
        return count

    def _limit(
        self,
        tally: dict[tuple[int | bytes, bytes], int],
        cache: PacketCache,
        count: int,
        unsent: list[int] | None,
    ) -> list[int] | None:
        """Charge the limiter with the batch's cache hits; replies over the limit are
        dropped (left unsent) or slipped (a TC=1 reply written over theirs)."""
        limiter = self._limiter
        assert limiter is not None
        now = time.monotonic()
        if self._keys_of is not cache or len(self._answer_keys) >= _ANSWER_KEYS:
            self._answer_keys, self._keys_of = {}, cache
        answer_keys = self._answer_keys
        over: dict[tuple[int | bytes, bytes], list[int]] = {}
        for hit_client, n in tally.items():
            network, key = hit_client
            answer_key = answer_keys.get(key)
            if answer_key is None:
                answer_key = answer_keys[key] = rrl.reply_key(b"\x00\x00" + packet.tail(cache[key], 0))
            if isinstance(network, int):  # an IPv4 /24 read as a little-endian word
                network = network.to_bytes(3, "little")
            allowed = limiter.take(network, answer_key, now, n)
            if allowed < n:
                # The first ``allowed`` go out, the rest as ``over`` says, in batch order.
                over[hit_client] = [rrl.ANSWER] * allowed + limiter.over(n - allowed)
        if not over:
            return unsent
        buf, raw, slots, clients = self._data, self._raw, self._slots, self._clients
        dropped = set(unsent or ())
        for i in range(count):
            client = clients[i]
            verdicts = over.get(client) if client is not None else None
            if not verdicts:
                continue
            start, _, _, _, iov_word = slots[i]
            verdict = verdicts.pop(0)
            if verdict == rrl.DROP:
                dropped.add(i)
            elif verdict == rrl.SLIP:
                reply = raw[start : start + self._iov_u64[iov_word]]
                slip = rrl.truncated(reply, rrl.question_end(reply))
                buf[start : start + len(slip)] = slip
                self._iov_u64[iov_word] = len(slip)
        return sorted(dropped) or None

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
