"""A dyndns2 server (Hurricane Electric's dyn.dns.he.net, dynv6, another dynserver) as a
mirror: the address of one host name follows an answer.

A sync is one ``GET URL?hostname=NAME&myip=ADDRESS`` with HTTP Basic auth. dyndns2 has
no way to read what the server holds, so a sync always sends: ``nochg`` says it was in
place, ``good`` that it changed (at a periodic reconcile: drift). A host holds one
address per type, so the first value of the answer is sent; an empty answer sends
nothing (dyndns2 cannot remove an address).

Replies are handled as ddclient handles them: ``good`` and ``nochg`` are success;
``badauth``, ``!donator``, ``!yours``, ``notfqdn``, ``nohost``, ``numhost``, ``badagent``
and ``abuse`` are permanent (retrying cannot help, and after ``abuse`` it would make the
block longer); ``911`` and ``dnserr`` (the server's trouble) are retried after
RETRY_911, as the protocol asks; 5xx, timeouts and network errors with backoff.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from dynserver import __version__
from dynserver.mirror.base import Desired, MirrorError, Outcome, retry_after_seconds
from dynserver.model import MirrorConfig

RETRY_911 = 1800.0  # dyndns2: after 911, wait at least 30 minutes
_SUCCESS = {"good", "nochg"}
_PERMANENT = {
    "badauth": "the user name or password is wrong",
    "!donator": "the server refuses this feature to this account",
    "!yours": "the host name belongs to another account",
    "notfqdn": "the host name is not a fully qualified domain name",
    "nohost": "the host name does not exist at the server, or this account may not update it",
    "numhost": "too many host names",
    "badagent": "the server refuses this client",
    "abuse": "the server blocked updates of this host for abuse",
}
_LATER = {"911": "the server has a problem or is in maintenance", "dnserr": "the server's DNS failed"}


class Dyndns2:
    """One [mirrors.NAME] of type dyndns2."""

    kind = "dyndns2"

    def __init__(self, config: MirrorConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if config.password is None or not config.url:
            raise ValueError(f"mirror {config.name}: no url or no password")
        self.config = config
        self._password = config.password.reveal()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sent: dict[tuple[str, str], str] = {}  # (name, type): the last address acknowledged

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._password,)

    async def start(self) -> None:
        # Building a client loads the CA bundle: a quarter of a second of CPU, in a thread.
        self._client = await asyncio.to_thread(
            httpx.AsyncClient,
            timeout=self.config.timeout,
            trust_env=False,
            transport=self._transport,
            auth=httpx.BasicAuth(self.config.username, self._password),
            headers={"User-Agent": f"dynserver/{__version__}"},
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def sync(self, desired: Desired) -> Outcome:
        key = (desired.name, desired.type)
        known = self._sent.get(key)
        before = (known,) if known else ()
        if not desired.values:
            reply = "nothing sent: dyndns2 cannot remove an address"
            return Outcome((), before, before, reply, _records(known))
        address = desired.values[0]
        try:
            code, reply = await self._update(desired.name, address)
        except MirrorError as error:
            raise error.redacted(self.secrets) from None
        self._sent[key] = address
        if code == "nochg":
            return Outcome((), (address,), (address,), reply, _records(address))
        return Outcome(
            (f"set {address} (was {known or 'unknown'})",), before, (address,), reply, _records(address)
        )

    async def _update(self, name: str, address: str) -> tuple[str, str]:
        """One update: the reply's code and a summary, or a classified MirrorError."""
        if self._client is None:
            raise MirrorError("not started")
        params = {"hostname": name, "myip": address}
        try:
            response = await self._client.get(self.config.url, params=params)
        except httpx.TimeoutException:
            raise MirrorError(f"update: timeout after {self.config.timeout:g} s") from None
        except httpx.HTTPError as error:
            raise MirrorError(f"update: network error: {type(error).__name__}: {error}") from None
        status = response.status_code
        lines = response.text.strip().splitlines()
        words = lines[0].split() if lines else []
        code = words[0] if words else ""
        if status == 401 and code not in _PERMANENT:
            code = "badauth"  # a server that answers 401 with a page of its own
        reply = f"update {name}: HTTP {status} {' '.join(words)[:200]}".rstrip()
        if status == 200 and code in _SUCCESS:
            return code, reply
        if code in _PERMANENT:
            raise MirrorError(
                f"the dyndns2 server answered {code}: {_PERMANENT[code]}", permanent=True, reply=reply
            )
        if code in _LATER:
            raise MirrorError(
                f"the dyndns2 server answered {code}: {_LATER[code]}; retrying after {RETRY_911:g} s",
                retry_after=RETRY_911,
                reply=reply,
            )
        if status == 429:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), time.time())
            raise MirrorError(
                f"rate limited (HTTP 429); Retry-After {retry_after:g} s",
                retry_after=retry_after,
                reply=reply,
            )
        if status >= 500 or status in (408, 425):
            raise MirrorError(f"dyndns2 server error: {reply}", reply=reply)
        if status >= 400:
            raise MirrorError(f"the dyndns2 server refused the update: {reply}", permanent=True, reply=reply)
        raise MirrorError(f"the dyndns2 server's reply is not a dyndns2 reply: {reply}", reply=reply)


def _records(address: str | None) -> tuple[dict[str, object], ...]:
    return ({"content": address},) if address else ()
