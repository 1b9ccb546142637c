"""dns-lexicon's providers (Hetzner, DigitalOcean, deSEC, OVH, Gandi... about 90) as a
mirror: the records of one name and type follow an answer, one record at a time.

Every sync lists the records of the name and type, then creates the values that are
missing and deletes the ones that are not wanted, each by the library's own
``create_record`` and ``delete_record`` (lexicon has no batch and no common "update"
that every provider implements the same way). New values are created before old ones
are deleted, so a failover never leaves the name without a record; a CNAME is the
exception (two cannot coexist), so its old value goes first. TTLs are set on the
records created (lexicon has no TTL-only change that every provider supports).

The library blocks (it is built on requests), so every call runs in a thread
(``asyncio.to_thread``), one sync at a time per mirror: a provider object is not safe to
share between threads, and a provider's rate limit is per account anyway.

No network call of the library's own: the provider is built from its module with the
zone of the config. lexicon's ``Client`` is not used, because it guesses the zone with
tldextract, which downloads the Public Suffix List on first use (or with a DNS lookup
when asked to): dynserver knows the zone, and talks only to the provider's API. Most
providers send their requests without a timeout; a thread-local default (the mirror's
``timeout``) is given to requests' adapter, for the threads of this module only, so a
provider that never answers cannot hold a mirror forever.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from dynserver.mirror.base import Desired, MirrorError, Outcome, canonical, retry_after_seconds
from dynserver.model import MirrorConfig

_RETRYABLE = {408, 425, 429}  # and every 5xx
_timeout = threading.local()  # .seconds: the default timeout of requests made by this thread
_timeout_lock = threading.Lock()
_QUIET = ("lexicon", "urllib3")


class Lexicon:
    """One [mirrors.NAME] of type lexicon."""

    kind = "lexicon"

    def __init__(self, config: MirrorConfig) -> None:
        if not config.provider or not config.credentials:
            raise ValueError(f"mirror {config.name}: no provider or no credentials")
        self.config = config
        self._secrets = tuple(secret.reveal() for _, secret in config.credentials)
        # lexicon reads its settings from this dict on every call (its DictConfigSource
        # keeps the object): the TTL is set here before each sync.
        self._settings: dict[str, Any] = {
            "provider_name": config.provider,
            "domain": config.zone,
            "ttl": 3600,
            config.provider: {**dict(config.options), **{k: s.reveal() for k, s in config.credentials}},
        }
        self._module: ModuleType | None = None
        self._api: Any = None  # the library's provider object, once authenticated
        self._lock = asyncio.Lock()

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    async def start(self) -> None:
        # Importing dns-lexicon and a provider takes about half a second: not on the loop.
        self._module = await asyncio.to_thread(_load, self.config.provider)

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            async with self._lock:
                await asyncio.to_thread(api.cleanup)

    async def sync(self, desired: Desired) -> Outcome:
        async with self._lock:
            try:
                return await asyncio.to_thread(self._in_thread, desired)
            except MirrorError as error:
                if error.permanent:
                    self._api = None  # a new token or a moved zone: authenticate again next time
                raise error.redacted(self.secrets) from None

    # -- in the thread --------------------------------------------------------------------

    def _in_thread(self, desired: Desired) -> Outcome:
        _timeout.seconds = self.config.timeout
        try:
            return self._sync(desired)
        finally:
            _timeout.seconds = None

    def _sync(self, desired: Desired) -> Outcome:
        zone = self.config.zone
        if desired.name != zone and not desired.name.endswith("." + zone):
            raise MirrorError(
                f"{desired.name} is not in the zone {zone}; expected a name ending in {zone}", permanent=True
            )
        api = self._authenticated()
        self._settings["ttl"] = desired.ttl
        found = self._call("list", api.list_records, desired.type, desired.name)
        records = [dict(r) for r in found if isinstance(r, dict) and r.get("type") == desired.type]
        for record in records:
            record["content"] = canonical(desired.type, str(record.get("content", "")))
        before = tuple(sorted(r["content"] for r in records))
        kept: set[str] = set()
        deletes = []
        for record in sorted(records, key=lambda r: (r["content"], str(r.get("id")))):
            if record["content"] in desired.values and record["content"] not in kept:
                kept.add(record["content"])
            else:
                deletes.append(record)  # not wanted, or a duplicate of a wanted value
        creates = [v for v in desired.values if v not in kept]
        actions: list[str] = []
        steps: list[tuple[str, Callable[[], object]]] = []
        for value in creates:
            content = value + "." if desired.type == "CNAME" else value
            steps.append(
                (f"create {value}", functools.partial(api.create_record, desired.type, desired.name, content))
            )
        for record in deletes:
            # Providers without record ids (Hetzner's rrsets) delete by content.
            delete = functools.partial(
                api.delete_record, record.get("id") or None, desired.type, desired.name, record["content"]
            )
            steps.append((f"delete {record['content']}", delete))
        if desired.type == "CNAME":
            steps.sort(key=lambda step: not step[0].startswith("delete"))
        for action, step in steps:
            self._call(action, step)
            actions.append(action)
        reply = f"{self.config.provider}: " + (
            "; ".join(actions) if actions else f"list: {len(records)} found"
        )
        after_records = [r for r in records if r not in deletes] + [
            {"id": None, "content": v, "ttl": desired.ttl} for v in creates
        ]
        return Outcome(
            tuple(actions),
            before,
            tuple(sorted(r["content"] for r in after_records)),
            reply,
            _summaries(after_records),
        )

    def _authenticated(self) -> Any:
        if self._api is None:
            module = self._module or _load(self.config.provider)
            config = importlib.import_module("lexicon.config")
            api = module.Provider(config.ConfigResolver().with_dict(self._settings))
            if self.config.api_base:
                _point_at(api, self.config.api_base)
            self._call("authenticate", api.authenticate)
            self._api = api
        return self._api

    def _call(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        """One call of the library; its exceptions become classified MirrorErrors."""
        try:
            return function(*args)
        except Exception as error:
            raise self._classify(what, error) from None

    def _classify(self, what: str, error: Exception) -> MirrorError:
        name = self.config.provider
        requests = importlib.import_module("requests")
        lexicon_errors = importlib.import_module("lexicon.exceptions")
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, requests.HTTPError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, requests.HTTPError) and cause.response is not None:
            status = int(cause.response.status_code)
            reply = f"{what}: HTTP {status} {_body(cause.response)}".rstrip()
            if status == 429:
                retry_after = retry_after_seconds(cause.response.headers.get("Retry-After"), time.time())
                return MirrorError(
                    f"rate limited by {name} (HTTP 429); Retry-After {retry_after:g} s",
                    retry_after=retry_after,
                    reply=reply,
                )
            if status >= 500 or status in _RETRYABLE:
                return MirrorError(f"{name} error: {reply}", reply=reply)
            if status in (401, 403):
                return MirrorError(
                    f"authentication failed ({reply}): the credentials of {name} are wrong, expired or "
                    f"revoked, or may not edit the zone {self.config.zone}",
                    permanent=True,
                    reply=reply,
                )
            return MirrorError(f"{name} refused the {what}: {reply}", permanent=True, reply=reply)
        if isinstance(error, lexicon_errors.AuthenticationError):
            reply = f"{what}: {error or 'authentication error'}"
            return MirrorError(
                f"authentication failed ({reply}): check the credentials of {name} and that the zone "
                f"{self.config.zone} is in that account",
                permanent=True,
                reply=reply,
            )
        if isinstance(error, requests.Timeout):
            reply = f"{what}: timeout after {self.config.timeout:g} s"
            return MirrorError(reply, reply=reply)
        if isinstance(error, requests.RequestException):
            reply = f"{what}: network error: {type(error).__name__}: {error}"
            return MirrorError(reply, reply=reply)
        if isinstance(error, lexicon_errors.LexiconError):
            reply = f"{what}: {error}"
            return MirrorError(f"{name} refused the {what}: {error}", permanent=True, reply=reply)
        # A reply the provider module did not expect (a KeyError on its JSON, its own
        # "won't update"): retried with backoff, which also covers a provider's hiccup.
        reply = f"{what}: {type(error).__name__}: {error}"
        return MirrorError(f"{name}: {reply}", reply=reply)


def _load(provider: str) -> ModuleType:
    """The provider's module of dns-lexicon, with requests' default timeout in place and
    the library's chatter kept out of the log."""
    _install_timeout()
    # At debug level some providers log their request bodies with the credentials in
    # them (dnspod, cloudns), and urllib3 logs URLs whose query may hold one: whatever
    # level dynserver logs at, these two say only warnings and errors.
    for name in _QUIET:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
    discovery = importlib.import_module("lexicon._private.discovery")
    module: ModuleType = discovery.load_provider_module(provider)
    return module


def _install_timeout() -> None:
    """Give requests made by this module's threads a timeout when the provider set none.
    Other users of requests in the process (apprise) are untouched: their threads have
    no ``_timeout.seconds``, and a timeout given explicitly always wins."""
    adapters = importlib.import_module("requests.adapters")
    with _timeout_lock:
        original = adapters.HTTPAdapter.send
        if getattr(original, "dynserver_timeout", False):
            return

        @functools.wraps(original)
        def send(self: Any, request: Any, stream: bool = False, timeout: Any = None, **options: Any) -> Any:
            if timeout is None:
                timeout = getattr(_timeout, "seconds", None)
            return original(self, request, stream=stream, timeout=timeout, **options)

        send.dynserver_timeout = True  # type: ignore[attr-defined]
        adapters.HTTPAdapter.send = send


def _point_at(api: Any, base: str) -> None:
    """``api_base``: send the provider's requests to another base URL (a test double, a
    self-hosted API). Providers keep their base in ``api_endpoint`` (most) or
    ``API_ENDPOINT`` (Hetzner's Cloud API, behind the ``hetzner`` provider)."""
    found = False
    for target in (api, getattr(api, "_hetzner_impl", None)):
        for attribute in ("api_endpoint", "API_ENDPOINT"):
            if target is not None and isinstance(getattr(target, attribute, None), str):
                setattr(target, attribute, base)
                found = True
    if not found:
        raise MirrorError(
            f"api_base: the {api.provider_name} provider has no base URL to change", permanent=True
        )


def _summaries(records: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    rows = [{"id": r.get("id"), "content": r["content"], "ttl": r.get("ttl")} for r in records]
    return tuple(sorted(rows, key=lambda r: (r["content"], str(r["id"]))))


def _body(response: Any) -> str:
    text = str(getattr(response, "text", "") or "").strip().replace("\n", " ")
    return text[:200]
