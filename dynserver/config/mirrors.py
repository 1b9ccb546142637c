"""[mirrors.NAME] and a record's ``mirror`` list: Cloudflare and RFC 2136 primaries that
receive the answers."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynserver.config.keys import written_name
from dynserver.config.reader import KeyPath, Reader, dotted, host_name, parse_name
from dynserver.config.server import parse_listener
from dynserver.dns.names import fqdn, name_text
from dynserver.model import CLOUDFLARE_API, Listener, MirrorConfig, MirrorRecord, Secret

_MIRROR_COMMON_KEYS = {"type", "zone", "reconcile_interval", "timeout"}
_MIRROR_KEYS = {
    # api_token is listed so that writing it gets a pointed error, not "unknown key"
    "cloudflare": _MIRROR_COMMON_KEYS | {"api_token_file", "api_token_env", "api_token", "api_base"},
    "rfc2136": _MIRROR_COMMON_KEYS | {"primary", "key"},
}
_MIRROR_RECORD_KEYS = {"to", "name", "ttl", "proxied", "comment"}
_CLOUDFLARE_ONLY = {"proxied", "comment"}
_ZONE_ID_RE = re.compile(r"[0-9a-f]{32}")
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: anything else breaks the header


@dataclass
class Mirrors:
    """The parsed [mirrors] tables, and which names records mirror to (each only once)."""

    mirrors: dict[str, MirrorConfig] = field(default_factory=dict)
    seen: dict[tuple[str, str, str], str] = field(default_factory=dict)


def read_mirrors(
    reader: Reader, raw: Any, folder: Path, keys_raw: Any, environ: Mapping[str, str]
) -> Mirrors:
    """[mirrors.NAME]: providers that receive the answers. Parsed before the zones, so a
    record's ``mirror = [{ to = ... }]`` can be checked where it is written; an rfc2136
    mirror's key is checked against the names of [keys] (the keys are parsed later)."""
    table = reader.table(raw, ("mirrors",))
    key_names = {written_name(str(k)) for k in keys_raw} if isinstance(keys_raw, dict) else set()
    result = Mirrors()
    for name, mirror_raw in table.items():
        path: KeyPath = ("mirrors", name)
        m = reader.table(mirror_raw, path)
        kind = reader.get(m, path, "type", str, "", "cloudflare or rfc2136")
        if kind not in _MIRROR_KEYS:
            raise reader.error((*path, "type"), "expected cloudflare or rfc2136")
        reader.unknown(m, path, _MIRROR_KEYS[kind])
        zone_text = fqdn(reader.get(m, path, "zone", str, "", "a zone name"))
        if not zone_text:
            what = "its name or its 32-character zone id" if kind == "cloudflare" else "its name"
            raise reader.error(path, f'expected zone = "example.com": the zone at the provider ({what})')
        if not (kind == "cloudflare" and _ZONE_ID_RE.fullmatch(zone_text)):
            zone_text = name_text(host_name(reader, (*path, "zone"), zone_text))
        common: dict[str, Any] = {
            "name": name,
            "type": kind,
            "zone": zone_text,
            "reconcile_interval": reader.number(m, path, "reconcile_interval", 300, 1, 86400, float),
            "timeout": reader.number(m, path, "timeout", 10, 0.5, 120, float),
        }
        if kind == "cloudflare":
            result.mirrors[name] = MirrorConfig(
                **common,
                api_token=_api_token(reader, m, path, folder, environ),
                api_base=_api_base(reader, m, path),
            )
            continue
        primary = reader.get(m, path, "primary", str, "", 'a "host:port" string')
        if not primary:
            raise reader.error(path, 'expected primary = "192.0.2.53:53": the primary that takes the UPDATEs')
        key = written_name(reader.get(m, path, "key", str, "", "a key name"))
        if not key:
            raise reader.error(path, 'expected key = "NAME" naming a [keys.NAME]: UPDATEs are signed (TSIG)')
        if key not in key_names:
            known = ", ".join(sorted(key_names)) or "none defined"
            raise reader.error((*path, "key"), f"no [keys.{key}]; expected one of: {known}")
        result.mirrors[name] = MirrorConfig(
            **common, primary=_primary(reader, (*path, "primary"), primary), key=key
        )
    return result


def _api_token(
    reader: Reader, m: dict[str, Any], path: KeyPath, folder: Path, environ: Mapping[str, str]
) -> Secret:
    """The token, from a file or the environment; no message ever includes it."""
    if "api_token" in m:
        raise reader.error(
            (*path, "api_token"),
            "a token does not belong in the config file (configs get shared, pasted and backed "
            'up); expected api_token_file = "cf-token" or api_token_env = "CF_API_TOKEN"',
        )
    if ("api_token_file" in m) == ("api_token_env" in m):
        raise reader.error(
            path,
            "expected exactly one of api_token_file (a file holding the token) or api_token_env "
            "(the environment variable holding it)",
        )
    if "api_token_file" in m:
        where: KeyPath = (*path, "api_token_file")
        file_name = reader.get(m, path, "api_token_file", str, "", "a file name")
        shown = str(Path(reader.path).parent / file_name)
        try:
            text = (folder / file_name).read_text()
        except OSError as error:
            raise reader.error(
                where, f"cannot read {shown!r}: {error.strerror}; expected a file holding the API token"
            ) from None
        except UnicodeDecodeError:
            raise reader.error(
                where, f"{shown!r} is not text; expected a file holding the API token"
            ) from None
    else:
        where = (*path, "api_token_env")
        variable = reader.get(m, path, "api_token_env", str, "", "an environment variable name")
        found = environ.get(variable) if variable else None
        if found is None:
            raise reader.error(
                where, f"the environment variable {variable!r} is not set; expected it to hold the API token"
            )
        text = found
    token = text.strip()
    if not token:
        raise reader.error(where, "the API token is empty; expected a Cloudflare API token (Zone.DNS:Edit)")
    if not _TOKEN_RE.fullmatch(token):
        raise reader.error(
            where,
            "the API token contains spaces, line breaks or non-ASCII characters; expected the token "
            "alone (letters, digits, - and _)",
        )
    return Secret(token)


def _api_base(reader: Reader, m: dict[str, Any], path: KeyPath) -> str:
    text = reader.get(m, path, "api_base", str, CLOUDFLARE_API, "a URL").strip().rstrip("/")
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment or parts.username:
        raise reader.error((*path, "api_base"), f"expected an https:// URL such as {CLOUDFLARE_API}")
    if parts.scheme == "http" and not _loopback(host):
        raise reader.error(
            (*path, "api_base"),
            "http:// would send the token in clear text; expected https:// (http:// is accepted "
            "only for 127.0.0.1, ::1 or localhost, e.g. a local test double)",
        )
    return text


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _primary(reader: Reader, key_path: KeyPath, text: str) -> Listener:
    """ "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:53" (port 53 by default)."""
    value = text.strip()
    try:
        return Listener(str(ipaddress.ip_address(value)), 53)
    except ValueError:
        pass
    try:
        listener = parse_listener(value)
        ipaddress.ip_address(listener.host)
    except ValueError as error:
        detail = str(error).split(";")[0] if "out of range" in str(error) else "not an IP address"
        raise reader.error(
            key_path, f'{value!r}: {detail}; expected the primary\'s IP address, e.g. "192.0.2.53:53"'
        ) from None
    if listener.port == 0:
        raise reader.error(key_path, f"{value!r}: port 0; expected the port the primary listens on (53)")
    return listener


def mirror_records(
    reader: Reader, r: dict[str, Any], path: KeyPath, kind: str, record_ttl: int, mirrors: Mirrors
) -> tuple[MirrorRecord, ...]:
    """A dynamic record's ``mirror = [{ to = "cf", name = "www.example.com", ... }]``."""
    if "mirror" not in r:
        return ()
    mirror_path: KeyPath = (*path, "mirror")
    raw = r["mirror"]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise reader.error(mirror_path, 'expected a list like [{ to = "cf", name = "www.example.com" }]')
    result = []
    for index, item in enumerate(raw, start=1):
        where = f"mirror {index}"
        if not isinstance(item, dict):
            raise reader.error(
                mirror_path, f'{where}: expected a table {{ to = "cf", name = "www.example.com" }}'
            )
        for key in item:
            if key not in _MIRROR_RECORD_KEYS:
                choices = ", ".join(sorted(_MIRROR_RECORD_KEYS))
                raise reader.error(mirror_path, f"{where}: unknown key {key!r}; expected one of: {choices}")
        to = item.get("to")
        if not isinstance(to, str) or to not in mirrors.mirrors:
            known = ", ".join(sorted(mirrors.mirrors)) or "none defined"
            raise reader.error(
                mirror_path, f"{where}: to = {to!r} names no [mirrors.NAME]; expected one of: {known}"
            )
        mirror = mirrors.mirrors[to]
        name_raw = item.get("name")
        try:
            if not isinstance(name_raw, str) or not name_raw.strip(". "):
                raise ValueError
            name = name_text(parse_name(name_raw))
        except Exception:
            raise reader.error(
                mirror_path,
                f'{where}: name {name_raw!r}; expected the absolute name at {to}, e.g. "www.example.com"',
            ) from None
        zone = mirror.zone
        if not _ZONE_ID_RE.fullmatch(zone) and name != zone and not name.endswith("." + zone):
            raise reader.error(
                mirror_path,
                f"{where}: {name} is not in the zone {zone} of [mirrors.{to}]; "
                f"expected a name ending in {zone}",
            )
        if kind == "CNAME" and name == zone and mirror.type == "rfc2136":
            raise reader.error(
                mirror_path, f"{where}: a CNAME cannot be at the zone apex {zone} (it has SOA and NS)"
            )
        if mirror.type != "cloudflare":
            for key in _CLOUDFLARE_ONLY & set(item):
                raise reader.error(
                    mirror_path, f"{where}: {key} is a Cloudflare option; [mirrors.{to}] is {mirror.type}"
                )
        ttl = item.get("ttl")
        if mirror.type == "cloudflare":
            if ttl is None:
                ttl = min(max(record_ttl, 60), 86400)  # Cloudflare's lowest TTL is 60 (1 = automatic)
            elif not _whole(ttl) or not (ttl == 1 or 60 <= ttl <= 86400):
                raise reader.error(
                    mirror_path, f"{where}: ttl {ttl!r}; expected 1 (automatic) or 60 to 86400 (Cloudflare)"
                )
        elif ttl is None:
            ttl = record_ttl
        elif not _whole(ttl) or not 0 <= ttl <= 2**31 - 1:
            raise reader.error(mirror_path, f"{where}: ttl {ttl!r}; expected a whole number of seconds")
        proxied = item.get("proxied")
        if proxied is not None and not isinstance(proxied, bool):
            raise reader.error(mirror_path, f"{where}: proxied must be true or false")
        comment = item.get("comment")
        if comment is not None and (not isinstance(comment, str) or not comment or len(comment) > 500):
            raise reader.error(mirror_path, f"{where}: comment must be a string of 1 to 500 characters")
        seen_key = (to, name, kind)
        if seen_key in mirrors.seen:
            raise reader.error(
                mirror_path,
                f"{where}: {name} {kind} at {to} already follows {mirrors.seen[seen_key]}; "
                "expected each mirrored name once (two answers cannot both own it)",
            )
        mirrors.seen[seen_key] = dotted(path)
        result.append(MirrorRecord(to=to, name=name, ttl=int(ttl), proxied=proxied, comment=comment))
    return tuple(result)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
