"""Who is asking: the client address of a web request, as limits, events and logs name it."""

from __future__ import annotations

from starlette.requests import Request


def client_address(request: Request) -> str:
    """The peer's address; "" when the server does not know it (some ASGI test clients)."""
    return request.client.host if request.client else ""
