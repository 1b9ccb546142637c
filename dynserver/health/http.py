"""The HTTP(S) probe: asyncio streams and h11, one fresh connection per check.

Why not httpx here: on this class of machine an httpx request costs ~2 ms of CPU (its
transport runs on anyio), while a stream + h11 (the HTTP/1.1 state machine httpx itself
uses) costs ~0.3 ms. At thousands of targets that is the difference between checks and
DNS sharing a core and checks starving DNS (measurements: docs/benchmarks.md). httpx
stays the client for provider APIs and webhooks, where a request a second is nothing.

The check connects to the target's address and names the site in the Host header and
TLS SNI, as okerr's ``addr=`` and Cloudflare's host header override do.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import h11

MAX_REDIRECTS = 5


class ProbeFailure(Exception):
    """The check failed for a reason worth showing as is ("too large ...")."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    url: str


_contexts: dict[bool, ssl.SSLContext] = {}


def tls_context(verify: bool) -> ssl.SSLContext:
    """The shared context (building one loads the CA bundle: call it off the event loop)."""
    context = _contexts.get(verify)
    if context is None:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _contexts[verify] = context
    return context


def _bracket(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


async def fetch(
    *,
    scheme: str,
    address: str,
    port: int,
    path: str,
    method: str,
    headers: list[tuple[str, str]],
    verify: bool,
    follow_redirects: bool,
    max_bytes: int,
) -> Response:
    """One request (plus redirects if asked) to ``address``; raises on network errors."""
    host_header = next((v for k, v in headers if k.lower() == "host"), None)
    site = host_header or _bracket(address) + ("" if port in (80, 443) else f":{port}")
    url = f"{scheme}://{site}{path}"
    connect_to = (address, port)
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        request_headers = [(k, v) for k, v in headers if k.lower() != "host"]
        request_headers.insert(0, ("Host", parts.netloc))
        response = await _exchange(
            scheme=parts.scheme,
            connect_to=connect_to,
            sni=parts.hostname or address,
            target=target,
            method=method,
            headers=request_headers,
            verify=verify,
            max_bytes=max_bytes,
        )
        if not (follow_redirects and 300 <= response[0] < 400 and response[2]):
            return Response(status=response[0], body=response[1], url=url)
        url = urljoin(url, response[2])
        new = urlsplit(url)
        default = 443 if new.scheme == "https" else 80
        if new.hostname == parts.hostname:
            connect_to = (address, new.port or (port if new.scheme == scheme else default))
        else:
            connect_to = (new.hostname or address, new.port or default)
        scheme = new.scheme
    raise ProbeFailure(f"more than {MAX_REDIRECTS} redirects")


async def _exchange(
    *,
    scheme: str,
    connect_to: tuple[str, int],
    sni: str,
    target: str,
    method: str,
    headers: list[tuple[str, str]],
    verify: bool,
    max_bytes: int,
) -> tuple[int, bytes, str | None]:
    tls = tls_context(verify) if scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        connect_to[0], connect_to[1], ssl=tls, server_hostname=sni if tls else None
    )
    try:
        connection = h11.Connection(h11.CLIENT)
        headers = [*headers, ("Connection", "close")]
        writer.write(connection.send(h11.Request(method=method, target=target, headers=headers)) or b"")
        writer.write(connection.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        status = 0
        location: str | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data and status == 0:
                    raise ConnectionResetError("connection closed before a response")
                connection.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    if name == b"location":
                        location = value.decode("latin-1")
                if method == "HEAD":
                    break
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > max_bytes:
                    raise ProbeFailure(f"too large (over {max_bytes} bytes)")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        return status, bytes(body), location
    finally:
        writer.close()
