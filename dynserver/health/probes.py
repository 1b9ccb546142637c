"""Probes: run one check against one address and report what happened. Nothing more.

A probe never decides health (the state machine does): it returns ok or not, a short
reason a person understands ("status 503", "timeout", "body lacks 'status=OK'"), and
the latency. Every probe is bounded by the check's timeout as a whole.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from dynserver import __version__
from dynserver.backoff import Backoff
from dynserver.health import conditions, http
from dynserver.health.state import Result
from dynserver.model import Monitor, MonitorType

USER_AGENT = f"dynserver-healthcheck/{__version__}"
# The wait before a check's first retry; it doubles, never past the check's timeout.
FIRST_RETRY = 0.1


@dataclass(frozen=True, slots=True)
class Check:
    """One probe's job: a monitor's options applied to one address, with the target's
    overrides of port, path and headers already resolved (the target's value wins)."""

    monitor: Monitor
    address: str  # the target's IP (or host name for CNAME targets)
    port: int | None
    path: str
    headers: tuple[tuple[str, str], ...]

    @property
    def type(self) -> MonitorType:
        return self.monitor.type

    @property
    def host_header(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "host":
                return value
        return None


Clock = Callable[[], float]


async def run_check(check: Check, clock: Clock = time.monotonic) -> Result:
    """Run a check with its retries (backoff FIRST_RETRY, doubling, within the timeout)."""
    await _tls_ready(check)
    attempt = 0
    while True:
        result = await _once(check, clock)
        if result.ok or attempt >= check.monitor.retries:
            # invert flips the verdict reached after the retries, never one attempt's: a
            # retry is for a transient failure of the probe itself, with invert or not.
            if check.monitor.invert:
                ok, reason = conditions.inverted(result.ok, result.reason)
                return Result(ok=ok, reason=reason, at=result.at, latency=result.latency)
            return result
        attempt += 1
        # Built on a retry only: a passing check (nearly all of them) pays nothing.
        await asyncio.sleep(Backoff(FIRST_RETRY, cap=check.monitor.timeout).delay(attempt))


async def _once(check: Check, clock: Clock) -> Result:
    probe = PROBES.get(check.type)
    if probe is None:  # pragma: no cover - config validation rejects unknown types
        return Result(ok=False, reason=f"unknown check type {check.type!r}", at=clock())
    started = clock()
    expires = None
    try:
        async with asyncio.timeout(check.monitor.timeout):
            outcome = await probe(check)
            ok, reason = outcome[0], outcome[1]
            if len(outcome) > 2:
                expires = outcome[2]
    except (
        OSError,
        ssl.SSLError,
        dns.exception.Timeout,
        http.ProbeFailure,
        asyncio.IncompleteReadError,
    ) as error:
        ok, reason = False, failure_reason(error)
    return conclude(check, ok, reason, started, clock(), expires)


def failure_reason(error: Exception) -> str:
    """What a failed attempt says, for a person: "timeout", "connection refused"..."""
    if isinstance(error, TimeoutError | dns.exception.Timeout):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS error: certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, http.ProbeFailure):
        return str(error)
    if isinstance(error, ConnectionResetError | asyncio.IncompleteReadError):
        return "connection closed by the server"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)  # pragma: no cover - the callers pass only the types above


def conclude(
    check: Check,
    ok: bool,
    reason: str,
    started: float,
    finished: float,
    expires: float | None = None,
    at: float | None = None,
) -> Result:
    """One attempt's result: a slow answer or an expiring certificate fails it. ``at``:
    the result's time on the event loop's clock, when ``started`` and ``finished`` are
    read from another (a finer one: uvloop's time() moves in milliseconds)."""
    limit = check.monitor.max_response_time
    if ok and limit is not None:
        # A slow answer is a failure of this attempt: a retry may be faster.
        slow = conditions.slow_reason(finished - started, limit)
        if slow is not None:
            ok, reason = False, slow
    days = check.monitor.certificate_expiry_days
    if ok and expires is not None and days is not None and check.monitor.certificate_expiry_fails:
        expiring = conditions.expiry_reason(expires, time.time(), days)
        if expiring is not None:
            ok, reason = False, expiring
    return Result(
        ok=ok,
        reason=reason,
        at=finished if at is None else at,
        latency=finished - started,
        certificate_expires=expires,
    )


# -- http / https ---------------------------------------------------------------------

_tls_building: dict[bool, asyncio.Task[ssl.SSLContext]] = {}


async def _tls_ready(check: Check) -> None:
    """Build the TLS context (it loads the CA bundle: ~0.25 s of CPU) in a thread, once,
    before the check's timeout starts: neither DNS nor the first checks at start-up may
    pay for it (a false "timeout" for every first check on a busy machine)."""
    if check.type is not MonitorType.HTTPS:
        return
    verify = not check.monitor.allow_insecure
    task = _tls_building.get(verify)
    if task is None:
        task = asyncio.create_task(asyncio.to_thread(http.tls_context, verify), name="tls context")
        _tls_building[verify] = task
    # shield: a check cancelled while waiting must not cancel the build others wait on.
    await asyncio.shield(task)


async def close_clients() -> None:
    """Forget prepared TLS contexts (tests and shutdown)."""
    for task in _tls_building.values():
        task.cancel()
    _tls_building.clear()


async def _http(check: Check) -> tuple[bool, str, float | None]:
    """Connect to the target's address; send the configured Host and TLS SNI."""
    headers = [("User-Agent", check.monitor.user_agent or USER_AGENT), *check.headers]
    path = check.path if check.path.startswith("/") else "/" + check.path
    response = await http.fetch(
        scheme=check.type,
        address=check.address,
        port=check.port or (443 if check.type is MonitorType.HTTPS else 80),
        path=path,
        method=check.monitor.method,
        headers=headers,
        verify=not check.monitor.allow_insecure,
        follow_redirects=check.monitor.follow_redirects,
        max_bytes=check.monitor.max_response_bytes,
        certificate=check.monitor.certificate_expiry_days is not None,
    )
    ok, reason = judge_http(check, response.status, response.body)
    return ok, reason, response.certificate_expires


def judge_http(check: Check, status: int, body: bytes) -> tuple[bool, str]:
    """A response's verdict: the expected codes, then the body's conditions."""
    ok, reason = status_verdict(check.monitor.expected_codes, status)
    if not ok:
        return False, reason
    if check.monitor.expected_body is not None or check.monitor.unexpected_body is not None:
        text = body.decode("utf-8", errors="replace")
        if check.monitor.expected_body is not None and check.monitor.expected_body not in text:
            return False, f"body lacks {check.monitor.expected_body!r}"
        if check.monitor.unexpected_body is not None and check.monitor.unexpected_body in text:
            return False, f"body contains {check.monitor.unexpected_body!r}"
    if check.monitor.expected_json is not None:
        # The body is the one expected_body reads, bounded by max_response_bytes.
        matched, why = check.monitor.expected_json.evaluate(body)
        if not matched:
            return False, why
    return True, reason


@dataclass(frozen=True, slots=True)
class FastHttp:
    """A plain-HTTP check run as an ``http.Exchange`` (callbacks on a raw socket) instead
    of a coroutine: what the scheduler runs for thousands of targets. Built once per
    check (``fast_http``); the request bytes are those of the coroutine probe."""

    check: Check
    port: int
    request: bytes
    head_only: bool
    # Only the status decides (no body condition, response-time limit or invert): the
    # verdict is read from ``codes`` without judge_http and conclude (most checks at scale).
    codes: tuple[tuple[int, int], ...] | None = None

    def start(self, exchange: http.Exchange) -> None:
        exchange.start(self.check.address, self.port, self.request, self.check.monitor.timeout)

    def result(
        self,
        status: int,
        body: bytes,
        error: Exception | None,
        started: float,
        now: float,
    ) -> Result:
        """The check's result, as ``run_check`` would give it. ``started``: time.monotonic()
        when the exchange started; ``now``: the loop's time, the result's ``at``."""
        codes = self.codes
        if codes is not None and error is None:
            ok, reason = status_verdict(codes, status)
            return Result(ok, reason, now, time.monotonic() - started)
        monitor = self.check.monitor
        if error is not None:
            ok, reason = False, failure_reason(error)
        else:
            ok, reason = judge_http(self.check, status, body)
        result = conclude(self.check, ok, reason, started, time.monotonic(), at=now)
        if monitor.invert:
            ok, reason = conditions.inverted(result.ok, result.reason)
            return Result(ok=ok, reason=reason, at=result.at, latency=result.latency)
        return result


def fast_http(check: Check) -> FastHttp | None:
    """The check as a ``FastHttp``, or None when it needs the coroutine probe: HTTPS, a
    host name to resolve, retries, redirects to follow, or a request it would not send."""
    monitor = check.monitor
    if check.type != MonitorType.HTTP or monitor.retries or monitor.follow_redirects:
        return None
    try:
        ipaddress.ip_address(check.address)
    except ValueError:
        return None
    port = check.port or 80
    headers = (("User-Agent", check.monitor.user_agent or USER_AGENT), *check.headers)
    path = check.path if check.path.startswith("/") else "/" + check.path
    try:
        _url, _sni, request = http.first_request(
            "http", check.address, port, path, check.monitor.method, headers
        )
    except http.ProbeFailure:
        return None
    plain = (
        monitor.expected_body is None
        and monitor.unexpected_body is None
        and monitor.expected_json is None
        and monitor.max_response_time is None
        and not monitor.invert
    )
    return FastHttp(
        check=check,
        port=port,
        request=request,
        head_only=monitor.method == "HEAD",
        codes=monitor.expected_codes if plain else None,
    )


_STATUS_REASONS: dict[int, str] = {}


def status_verdict(codes: tuple[tuple[int, int], ...], status: int) -> tuple[bool, str]:
    """Whether a status is among the expected codes, and the reason "status 200" (one
    string per status, not one per check)."""
    reason = _STATUS_REASONS.get(status)
    if reason is None:
        reason = _STATUS_REASONS[status] = f"status {status}"
    for low, high in codes:
        if low <= status <= high:
            return True, reason
    return False, reason


# -- tcp ------------------------------------------------------------------------------


async def _tcp(check: Check) -> tuple[bool, str]:
    reader, writer = await asyncio.open_connection(check.address, check.port)
    try:
        if check.monitor.send is not None:
            writer.write(_unescape(check.monitor.send))
            await writer.drain()
        if check.monitor.expect is None:
            return True, "connected"
        expected = _unescape(check.monitor.expect)
        received = b""
        while expected not in received and len(received) < check.monitor.max_response_bytes:
            chunk = await reader.read(4096)
            if not chunk:
                break
            received += chunk
        if expected in received:
            return True, "reply matched"
        return False, f"reply lacks {check.monitor.expect!r}"
    finally:
        writer.close()


def _unescape(text: str) -> bytes:
    r"""'QUIT\r\n' as written in TOML (\r\n escapes) -> bytes."""
    return text.encode("utf-8").decode("unicode_escape").encode("latin-1")


# -- dns ------------------------------------------------------------------------------


async def _dns(check: Check) -> tuple[bool, str]:
    name = check.monitor.query_name or "."
    query = dns.message.make_query(name, dns.rdatatype.from_text(check.monitor.query_type))
    response = await dns.asyncquery.udp(
        query, check.address, port=check.port or 53, timeout=check.monitor.timeout
    )
    rcode = dns.rcode.to_text(response.rcode())
    if rcode != check.monitor.expected_rcode.upper():
        return False, f"rcode {rcode}"
    if check.monitor.expected_data is not None:
        texts = [rdata.to_text() for rrset in response.answer for rdata in rrset]
        if not any(check.monitor.expected_data in text for text in texts):
            return False, f"no answer contains {check.monitor.expected_data!r}"
    return True, f"rcode {rcode}"


# -- icmp -----------------------------------------------------------------------------


async def _icmp(check: Check) -> tuple[bool, str]:
    """One echo request. Unprivileged ICMP sockets where net.ipv4.ping_group_range allows
    (the kernel then sets the identifier and checksum), raw sockets where we may."""
    version = ipaddress.ip_address(check.address).version
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    proto = socket.IPPROTO_ICMP if version == 4 else socket.IPPROTO_ICMPV6
    raw = False
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    except PermissionError:
        try:
            sock = socket.socket(family, socket.SOCK_RAW, proto)
            raw = True
        except PermissionError:
            low, high = _ping_group_range()
            return False, (
                f"icmp not permitted: group {os.getgid()} is outside net.ipv4.ping_group_range "
                f"({low} {high}) and raw sockets need CAP_NET_RAW; widen the range with sysctl, "
                "or use a tcp check"
            )
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    echo_type, reply_type = (8, 0) if version == 4 else (128, 129)
    ident, sequence = struct.unpack("!HH", os.urandom(4))
    payload = b"dynserver-" + os.urandom(8)
    packet = struct.pack("!BBHHH", echo_type, 0, 0, ident, sequence) + payload
    if raw and version == 4:  # the kernel computes ICMPv6 checksums itself
        packet = packet[:2] + struct.pack("!H", _checksum(packet)) + packet[4:]
    try:
        await loop.sock_sendto(sock, packet, (check.address, 0))
        while True:
            data = await loop.sock_recv(sock, 2048)
            if raw and version == 4:
                data = data[(data[0] & 0x0F) * 4 :]  # raw IPv4 sockets include the IP header
            if len(data) >= 8 and data[0] == reply_type and data[8:] == payload:
                return True, "echo reply"
    finally:
        sock.close()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _ping_group_range() -> tuple[str, str]:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as handle:
            low, high = handle.read().split()
            return low, high
    except OSError:  # pragma: no cover - not Linux
        return "?", "?"


PROBES: dict[MonitorType, Callable[[Check], Awaitable[tuple[bool, str] | tuple[bool, str, float | None]]]] = {
    MonitorType.HTTP: _http,
    MonitorType.HTTPS: _http,
    MonitorType.TCP: _tcp,
    MonitorType.DNS: _dns,
    MonitorType.ICMP: _icmp,
}


def parse_expected_codes(text: str) -> tuple[tuple[int, int], ...]:
    """Cloudflare's expected_codes ("2xx", "200", "200-299", "2xx,301") -> ranges."""
    ranges = []
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        if re.fullmatch(r"[1-5]xx", part, re.IGNORECASE):
            base = int(part[0]) * 100
            ranges.append((base, base + 99))
        elif re.fullmatch(r"\d{3}-\d{3}", part):
            low, high = (int(x) for x in part.split("-"))
            if low > high:
                raise ValueError(f"{part!r}: the range is reversed")
            ranges.append((low, high))
        elif re.fullmatch(r"\d{3}", part):
            ranges.append((int(part), int(part)))
        else:
            raise ValueError(f"{part!r} is not a status code, range (200-299) or class (2xx)")
        if not 100 <= ranges[-1][0] <= ranges[-1][1] <= 599:
            raise ValueError(f"{part!r}: expected status codes within 100-599")
    if not ranges:
        raise ValueError("no status codes given")
    return tuple(ranges)
