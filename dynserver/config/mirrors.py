"""[mirrors.NAME] and a record's ``mirror`` list: Cloudflare, RFC 2136 primaries, the
providers of dns-lexicon and dyndns2 servers, which receive the answers."""

from __future__ import annotations

import argparse
import inspect
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
    # api_token and password are listed so that writing them gets a pointed error, not
    # "unknown key"
    "cloudflare": _MIRROR_COMMON_KEYS | {"api_token_file", "api_token_env", "api_token", "api_base"},
    "rfc2136": _MIRROR_COMMON_KEYS | {"primary", "key"},
    "lexicon": _MIRROR_COMMON_KEYS
    | {"provider", "credentials_file", "credentials_env", "options", "api_base"},
    "dyndns2": _MIRROR_COMMON_KEYS | {"url", "username", "password_file", "password_env", "password"},
}
_KINDS = "cloudflare, rfc2136, lexicon or dyndns2"
# dyndns2 has no way to read the address back, and its servers count repeated updates
# of an unchanged address as abuse (ddclient forces one only every 25 days): once a day.
_DYNDNS2_RECONCILE = 86400.0
_LEXICON_MIN_TTL = 60
_OPTION_RE = re.compile(r"[a-z][a-z0-9_]*")
_READ_OPTION_RE = re.compile(r"""_get_provider_option\(\s*["']([a-z][a-z0-9_]*)["']""")
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
        kind = reader.get(m, path, "type", str, "", _KINDS)
        if kind not in _MIRROR_KEYS:
            raise reader.error((*path, "type"), f"expected {_KINDS}")
        reader.unknown(m, path, _MIRROR_KEYS[kind])
        zone_text = fqdn(reader.get(m, path, "zone", str, "", "a zone name"))
        if kind == "dyndns2" and not zone_text:
            pass  # optional: a dyndns2 server takes host names, whatever their zone
        elif not zone_text:
            what = "its name or its 32-character zone id" if kind == "cloudflare" else "its name"
            raise reader.error(path, f'expected zone = "example.com": the zone at the provider ({what})')
        if zone_text and not (kind == "cloudflare" and _ZONE_ID_RE.fullmatch(zone_text)):
            zone_text = name_text(host_name(reader, (*path, "zone"), zone_text))
        reconcile = _DYNDNS2_RECONCILE if kind == "dyndns2" else 300
        common: dict[str, Any] = {
            "name": name,
            "type": kind,
            "zone": zone_text,
            "reconcile_interval": reader.number(m, path, "reconcile_interval", reconcile, 1, 86400, float),
            "timeout": reader.number(m, path, "timeout", 10, 0.5, 120, float),
        }
        if kind == "cloudflare":
            result.mirrors[name] = MirrorConfig(
                **common,
                api_token=_api_token(reader, m, path, folder, environ),
                api_base=_api_base(reader, m, path),
            )
            continue
        if kind == "lexicon":
            result.mirrors[name] = _lexicon(reader, m, path, folder, environ, common)
            continue
        if kind == "dyndns2":
            result.mirrors[name] = _dyndns2(reader, m, path, folder, environ, common)
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
        text = _secret_file(reader, where, folder, file_name, "the API token")
    else:
        where = (*path, "api_token_env")
        variable = reader.get(m, path, "api_token_env", str, "", "an environment variable name")
        text = _secret_env(reader, where, environ, variable, "the API token")
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


def _secret_file(reader: Reader, where: KeyPath, folder: Path, file_name: str, what: str) -> str:
    """The text of a file holding a credential (relative to the config file's folder)."""
    shown = str(Path(reader.path).parent / file_name)
    try:
        return (folder / file_name).read_text()
    except OSError as error:
        raise reader.error(
            where, f"cannot read {shown!r}: {error.strerror}; expected a file holding {what}"
        ) from None
    except UnicodeDecodeError:
        raise reader.error(where, f"{shown!r} is not text; expected a file holding {what}") from None


def _secret_env(reader: Reader, where: KeyPath, environ: Mapping[str, str], variable: str, what: str) -> str:
    found = environ.get(variable) if variable else None
    if found is None:
        raise reader.error(
            where, f"the environment variable {variable!r} is not set; expected it to hold {what}"
        )
    return found


def _api_base(reader: Reader, m: dict[str, Any], path: KeyPath, default: str = CLOUDFLARE_API) -> str:
    text = reader.get(m, path, "api_base", str, default, "a URL").strip().rstrip("/")
    if not text:
        return text
    return _url(reader, (*path, "api_base"), text, default or "https://api.example.com/v1", "the token")


def _url(reader: Reader, where: KeyPath, text: str, example: str, secret: str) -> str:
    """An http(s) URL without credentials in it; http:// only to the loopback (a test double)."""
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or parts.fragment or parts.username:
        raise reader.error(where, f"expected an https:// URL such as {example}")
    if parts.query and where[-1] == "api_base":
        raise reader.error(where, f"expected an https:// URL such as {example}")
    if parts.scheme == "http" and not _loopback(host):
        raise reader.error(
            where,
            f"http:// would send {secret} in clear text; expected https:// (http:// is accepted "
            "only for 127.0.0.1, ::1 or localhost, e.g. a local test double)",
        )
    return text


def _lexicon(
    reader: Reader,
    m: dict[str, Any],
    path: KeyPath,
    folder: Path,
    environ: Mapping[str, str],
    common: dict[str, Any],
) -> MirrorConfig:
    """type = "lexicon": a provider of dns-lexicon, its credentials from files or the
    environment (each option from one of them), its other options in the clear."""
    provider = reader.get(m, path, "provider", str, "", 'a dns-lexicon provider name, e.g. "hetzner"').strip()
    if not provider:
        raise reader.error(path, 'expected provider = "hetzner" (a provider of dns-lexicon)')
    accepted = _lexicon_provider_options(reader, (*path, "provider"), provider)
    credentials: dict[str, Secret] = {}
    for source in ("credentials_file", "credentials_env"):
        table = reader.table(m.get(source, {}), (*path, source))
        for option, value in table.items():
            where: KeyPath = (*path, source, option)
            _check_option(reader, where, provider, option, accepted)
            if option in credentials:
                raise reader.error(
                    where, "given in both credentials_file and credentials_env; expected one of them"
                )
            if not isinstance(value, str) or not value:
                what = "a file name" if source == "credentials_file" else "an environment variable name"
                raise reader.error(where, f"expected {what}")
            what = f"the {option} of {provider}"
            if source == "credentials_file":
                text = _secret_file(reader, where, folder, value, what)
            else:
                text = _secret_env(reader, where, environ, value, what)
            secret = text.strip()
            if not secret or "\n" in secret:
                raise reader.error(where, f"{what} is empty or several lines; expected the credential alone")
            credentials[option] = Secret(secret)
    options: dict[str, str] = {}
    table = reader.table(m.get("options", {}), (*path, "options"))
    for option, value in table.items():
        where = (*path, "options", option)
        _check_option(reader, where, provider, option, accepted)
        if option in credentials:
            raise reader.error(where, "also given as a credential; expected it once")
        if option.startswith("auth_"):
            raise reader.error(
                where,
                "a credential does not belong in the config file; expected it in credentials_file "
                "or credentials_env",
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise reader.error(where, "expected a string or a number")
        options[option] = str(value)
    if not credentials:
        raise reader.error(
            path,
            f"expected credentials_file or credentials_env with the credentials of {provider} "
            f"(its options: {', '.join(sorted(accepted)) or 'none'})",
        )
    return MirrorConfig(
        **common,
        provider=provider,
        credentials=tuple(sorted(credentials.items())),
        options=tuple(sorted(options.items())),
        api_base=_api_base(reader, m, path, ""),
    )


def _check_option(reader: Reader, where: KeyPath, provider: str, option: str, accepted: set[str]) -> None:
    if option not in accepted:
        choices = ", ".join(sorted(accepted)) or "none"
        raise reader.error(where, f"{provider} has no option {option!r}; expected one of: {choices}")


def _lexicon_provider_options(reader: Reader, where: KeyPath, provider: str) -> set[str]:
    """The options a dns-lexicon provider takes (its command-line flags, as lexicon's own
    CLI reads them). dns-lexicon is imported here, not at the top: it takes half a second,
    and only a config with a lexicon mirror needs it."""
    from lexicon._private.discovery import find_providers, load_provider_module

    available = find_providers()
    if provider not in available:
        raise reader.error(
            where,
            f"dns-lexicon has no provider {provider!r}; expected one of its providers, e.g. "
            "hetzner, digitalocean, desec, ovh, gandi, porkbun",
        )
    if not available[provider]:
        raise reader.error(
            where,
            f"the {provider} provider needs packages that are not installed; expected them "
            f"installed (pip install 'dns-lexicon[{provider}]')",
        )
    module = load_provider_module(provider)
    parser = argparse.ArgumentParser(add_help=False)
    module.Provider.configure_parser(parser)
    declared = {action.dest for action in parser._actions if _OPTION_RE.fullmatch(action.dest)}
    # Some options are read without a flag (hetzner's retry_wait_time): found where read.
    return declared | set(_READ_OPTION_RE.findall(inspect.getsource(module)))


def _dyndns2(
    reader: Reader,
    m: dict[str, Any],
    path: KeyPath,
    folder: Path,
    environ: Mapping[str, str],
    common: dict[str, Any],
) -> MirrorConfig:
    """type = "dyndns2": an update URL, a user name and a password from a file or the
    environment."""
    example = "https://dyn.dns.he.net/nic/update"
    url = reader.get(m, path, "url", str, "", "a URL").strip()
    if not url:
        raise reader.error(path, f'expected url = "{example}": the dyndns2 update URL')
    url = _url(reader, (*path, "url"), url, example, "the password")
    username = reader.get(m, path, "username", str, "", "a user name")
    if not username:
        raise reader.error(
            path, "expected username: the dyndns2 user name (Hurricane Electric: the host name)"
        )
    if "password" in m:
        raise reader.error(
            (*path, "password"),
            'a password does not belong in the config file; expected password_file = "he-key" '
            'or password_env = "DYNDNS_PASSWORD"',
        )
    if ("password_file" in m) == ("password_env" in m):
        raise reader.error(path, "expected exactly one of password_file or password_env")
    if "password_file" in m:
        where: KeyPath = (*path, "password_file")
        text = _secret_file(
            reader,
            where,
            folder,
            reader.get(m, path, "password_file", str, "", "a file name"),
            "the password",
        )
    else:
        where = (*path, "password_env")
        variable = reader.get(m, path, "password_env", str, "", "an environment variable name")
        text = _secret_env(reader, where, environ, variable, "the password")
    password = text.strip()
    if not password or "\n" in password:
        raise reader.error(where, "the password is empty or several lines; expected the password alone")
    return MirrorConfig(**common, url=url, username=username, password=Secret(password))


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
        if zone and not _ZONE_ID_RE.fullmatch(zone) and name != zone and not name.endswith("." + zone):
            raise reader.error(
                mirror_path,
                f"{where}: {name} is not in the zone {zone} of [mirrors.{to}]; "
                f"expected a name ending in {zone}",
            )
        if mirror.type == "dyndns2" and kind not in ("A", "AAAA"):
            raise reader.error(
                mirror_path, f"{where}: dyndns2 sets addresses; expected a record of type A or AAAA"
            )
        if mirror.type == "dyndns2" and "ttl" in item:
            raise reader.error(
                mirror_path,
                f"{where}: a dyndns2 server sets the TTL itself; expected no ttl for [mirrors.{to}]",
            )
        if kind == "CNAME" and name == zone and mirror.type in ("rfc2136", "lexicon"):
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
        elif ttl is None and mirror.type == "lexicon":
            # Providers' lowest TTLs differ (DigitalOcean 30, Hetzner 60, deSEC 3600): 60 is
            # what most take; a lower record TTL would be refused at the first push.
            ttl = max(record_ttl, _LEXICON_MIN_TTL)
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
