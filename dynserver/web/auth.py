"""Admin login for the HTML pages: one password (its hash from the config, where the
environment may override it), server-side sessions, a CSRF token per session, a login
rate limit.

Sessions live in memory: a restart logs everyone out, which is the safe failure, and no
signing key has to be configured or stored. The cookie holds only a random token.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from dynserver.model import WebConfig
from dynserver.update.limits import Block, Limiter, LimitPolicy
from dynserver.web.client import client_address
from dynserver.web.password import verify_password

log = logging.getLogger("dynserver.web")

COOKIE = "dynserver_session"
SESSION_IDLE = 12 * 3600.0  # an unused session ends after this many seconds
ADMIN = "admin"  # the one user: named in events as web:admin


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    user: str = ADMIN
    used: float = field(default_factory=time.monotonic)


class Auth:
    """Who is logged in, and whether a page may be read without a login. ``settings``
    is read on every use (Runtime.web_settings), so a reload changes the password and
    whether the pages are public without a restart."""

    def __init__(self, settings: Callable[[], WebConfig], limits: LimitPolicy | None = None) -> None:
        self.settings = settings
        self.limiter = Limiter(limits)
        self.sessions: dict[str, Session] = {}

    @property
    def password_hash(self) -> str | None:
        # The config loader has applied DYNSERVER_ADMIN_PASSWORD_HASH already.
        return self.settings().admin_password_hash

    @property
    def public(self) -> bool:
        # Without an admin password nobody can log in; the pages are then read-only and
        # open (as before there was a login), since hiding them would show nothing at all.
        return self.settings().public or not self.password_hash

    def session(self, request: Request) -> Session | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        session = self.sessions.get(token)
        now = time.monotonic()
        if session is None or now - session.used > SESSION_IDLE:
            self.sessions.pop(token, None)
            return None
        session.used = now
        return session

    def may_read(self, request: Request) -> bool:
        return self.public or self.session(request) is not None

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())

    def login(self, client: str, password: str) -> str | Block | None:
        """A new session token, a Block when rate limited, or None for a wrong password."""
        now = time.monotonic()
        block = self.limiter.admit(client, now) or self.limiter.credential_blocked(ADMIN, now)
        if block is not None:
            log.warning("event=login_refused client=%s why=%r", client, block.why.value)
            return block
        if not self.password_hash or not verify_password(password, self.password_hash):
            self.limiter.failed(client, ADMIN, now)
            log.warning("event=login_failed client=%s", client)
            return None
        token = secrets.token_urlsafe(32)
        self.sessions[token] = Session()
        log.info("event=login user=%s client=%s", ADMIN, client)
        return token

    def logout(self, request: Request) -> None:
        token = request.cookies.get(COOKIE)
        if token and self.sessions.pop(token, None) is not None:
            log.info("event=logout user=%s client=%s", ADMIN, client_address(request))


def secure(request: Request) -> bool:
    """Behind TLS (directly, or a proxy that says so) the cookie must be Secure."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_IDLE),
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path="/",
    )
