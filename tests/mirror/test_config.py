"""[mirrors.NAME] and a record's ``mirror = [...]``: what works, and what every mistake says
(file, line, key, what was expected), before anything is served. The token never appears
in an error, a repr or a str."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import Listener, MirrorConfig, MirrorRecord, Secret

TOKEN = "cf-Secret_Token-0123456789abcdefghijklmn"
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="
HEAD = """\
[server]
dns = ["127.0.0.1:0"]
"""
ZONE = """\
[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [{ name = "a", value = "192.0.2.1" }, { name = "b", value = "192.0.2.2", priority = 2 }]
"""
CLOUDFLARE = """
[mirrors.cf]
type = "cloudflare"
zone = "Example.COM."
api_token_file = "cf-token"
"""
RFC2136 = f"""
[keys.mirror-key]
secret = "{SECRET}"

[mirrors.primary]
type = "rfc2136"
zone = "example.org"
primary = "192.0.2.53:5353"
key = "mirror-key"
"""


def load(tmp_path: Path, text: str, token: str = TOKEN + "\n") -> config.Config:
    (tmp_path / "cf-token").write_text(token)
    path = tmp_path / "dynserver.toml"
    path.write_text(text)
    return config.load(path)


def error_of(tmp_path: Path, text: str, token: str = TOKEN + "\n") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, token)
    assert TOKEN not in str(caught.value)
    return caught.value


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_config_of_the_issue_loads(tmp_path: Path) -> None:
    text = (
        HEAD
        + CLOUDFLARE
        + 'api_base = "http://127.0.0.1:9/client/v4/"\nreconcile_interval = 60\n'
        + ZONE
        + 'mirror = [{ to = "cf", name = "WWW.example.com.", ttl = 60, proxied = false }]\n'
    )
    loaded = load(tmp_path, text)
    assert loaded.mirrors == (
        MirrorConfig(
            name="cf",
            type="cloudflare",
            zone="example.com",
            reconcile_interval=60.0,
            api_token=Secret(TOKEN),
            api_base="http://127.0.0.1:9/client/v4",
        ),
    )
    record = loaded.zones[0].records[0]
    assert record.mirror == (MirrorRecord(to="cf", name="www.example.com", ttl=60, proxied=False),)
    assert TOKEN not in repr(loaded) and TOKEN not in str(loaded)


def test_defaults_cloudflare_ttl_is_at_least_60_and_rfc2136_keeps_the_record_ttl(tmp_path: Path) -> None:
    text = (
        HEAD
        + CLOUDFLARE
        + RFC2136
        + ZONE
        + 'mirror = [{ to = "cf", name = "example.com", comment = "by dynserver" },'
        + ' { to = "primary", name = "app.example.org" }]\n'
    )
    loaded = load(tmp_path, text)
    cf, primary = loaded.zones[0].records[0].mirror
    assert cf == MirrorRecord(to="cf", name="example.com", ttl=60, comment="by dynserver")
    assert primary == MirrorRecord(to="primary", name="app.example.org", ttl=30)
    mirror = next(m for m in loaded.mirrors if m.name == "primary")
    assert (mirror.primary, mirror.key, mirror.reconcile_interval) == (
        Listener("192.0.2.53", 5353),
        "mirror-key",
        300.0,
    )


def test_token_from_the_environment_and_zone_by_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    zone_id = "023e105f4ecef8ad9ca31a8372d0c353"
    text = f'{HEAD}\n[mirrors.cf]\ntype = "cloudflare"\nzone = "{zone_id}"\napi_token_env = "CF_API_TOKEN"\n'
    loaded = load(tmp_path, text + ZONE + 'mirror = [{ to = "cf", name = "www.anything.test" }]\n')
    assert loaded.mirrors[0].zone == zone_id
    assert loaded.mirrors[0].api_token == Secret(TOKEN)


def test_a_primary_without_a_port_is_port_53(tmp_path: Path) -> None:
    loaded = load(tmp_path, HEAD + RFC2136.replace("192.0.2.53:5353", "2001:db8::53") + ZONE)
    assert loaded.mirrors[0].primary == Listener("2001:db8::53", 53)


# Each mistake: the text (after HEAD), the line it must point at, the key and a phrase.
MISTAKES = [
    (
        CLOUDFLARE.replace("cloudflare", "route53"),
        'type = "route53"',
        "mirrors.cf.type",
        "expected cloudflare",
    ),
    (CLOUDFLARE + "primary = 1\n", "primary = 1", "mirrors.cf.primary", "unknown key"),
    (
        CLOUDFLARE + f'api_token = "{TOKEN}"\n',
        "api_token =",
        "mirrors.cf.api_token",
        "does not belong in the config",
    ),
    (
        CLOUDFLARE + 'api_token_env = "X"\n',
        "[mirrors.cf]",
        "mirrors.cf",
        "exactly one of api_token_file",
    ),
    (
        CLOUDFLARE.replace('"cf-token"', '"missing"'),
        "api_token_file",
        "mirrors.cf.api_token_file",
        "cannot read",
    ),
    (
        CLOUDFLARE.replace("api_token_file", "api_token_env").replace("cf-token", "DYNSERVER_NO_SUCH_VAR"),
        "api_token_env",
        "mirrors.cf.api_token_env",
        "is not set",
    ),
    (
        CLOUDFLARE + 'api_base = "http://api.cloudflare.com/client/v4"\n',
        "api_base",
        "mirrors.cf.api_base",
        "clear text",
    ),
    (CLOUDFLARE.replace('zone = "Example.COM."\n', ""), "[mirrors.cf]", "mirrors.cf", 'expected zone = "'),
    (
        CLOUDFLARE + "reconcile_interval = 0\n",
        "reconcile_interval",
        "mirrors.cf.reconcile_interval",
        "from 1",
    ),
    (
        RFC2136.replace('key = "mirror-key"', 'key = "nope"'),
        'key = "nope"',
        "mirrors.primary.key",
        "no [keys.nope]",
    ),
    (
        RFC2136.replace("192.0.2.53:5353", "ns1.example.org"),
        "primary =",
        "mirrors.primary.primary",
        "IP address",
    ),
    (
        CLOUDFLARE + ZONE + 'mirror = [{ to = "nope", name = "www.example.com" }]\n',
        "mirror = ",
        'zones."dyn.example.test".records.app.mirror',
        "names no [mirrors.NAME]; expected one of: cf",
    ),
    (
        CLOUDFLARE + ZONE + 'mirror = [{ to = "cf", name = "www.example.org" }]\n',
        "mirror = ",
        'zones."dyn.example.test".records.app.mirror',
        "not in the zone example.com",
    ),
    (
        CLOUDFLARE + ZONE + 'mirror = [{ to = "cf", name = "www.example.com", ttl = 30 }]\n',
        "mirror = ",
        'zones."dyn.example.test".records.app.mirror',
        "expected 1 (automatic) or 60 to 86400",
    ),
    (
        CLOUDFLARE + ZONE + 'mirror = [{ to = "cf", name = "www.example.com", proxied = "yes" }]\n',
        "mirror = ",
        'zones."dyn.example.test".records.app.mirror',
        "proxied must be true or false",
    ),
    (
        CLOUDFLARE + ZONE + 'mirror = [{ to = "cf", name = "www.example.com", proxy = true }]\n',
        "mirror = ",
        'zones."dyn.example.test".records.app.mirror',
        "unknown key 'proxy'",
    ),
    (
        RFC2136 + ZONE + 'mirror = [{ to = "primary", name = "app.example.org", proxied = true }]\n',
        "mirror = ",
        'zones."dyn.example.test".records.app.mirror',
        "proxied is a Cloudflare option",
    ),
    (
        CLOUDFLARE
        + ZONE
        + 'mirror = [{ to = "cf", name = "www.example.com" }]\n'
        + '[zones."dyn.example.test".records.web]\n'
        + 'targets = [{ name = "a", value = "192.0.2.9" }]\n'
        + 'mirror = [{ to = "cf", name = "www.example.com" }]\n',
        '[zones."dyn.example.test".records.web]',
        'zones."dyn.example.test".records.web.mirror',
        "already follows",
    ),
]


@pytest.mark.parametrize(("text", "needle", "key", "phrase"), MISTAKES, ids=[m[3] for m in MISTAKES])
def test_mistakes_name_file_line_and_key(
    tmp_path: Path, text: str, needle: str, key: str, phrase: str
) -> None:
    full = HEAD + text + ("" if "[zones." in text else ZONE)
    error = error_of(tmp_path, full)
    assert error.path.endswith("dynserver.toml")
    assert error.key == key, error
    assert phrase in error.message, error
    if needle.startswith("[zones.") and key.endswith(".mirror"):
        assert error.line > line_of(full, needle), error  # the mirror line of that record
    else:
        assert error.line == line_of(full, needle), error


@pytest.mark.parametrize(
    ("token", "phrase"),
    [("", "is empty"), (f"{TOKEN} {TOKEN}", "spaces"), ("tökén", "non-ASCII")],
)
def test_a_bad_token_file_is_refused_without_showing_it(tmp_path: Path, token: str, phrase: str) -> None:
    error = error_of(tmp_path, HEAD + CLOUDFLARE + ZONE, token=token)
    assert phrase in error.message
    assert error.line == line_of(HEAD + CLOUDFLARE, "api_token_file")
    if token:
        assert token not in str(error)


def test_the_cloudflare_example_in_the_docs_loads(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "mirrors.md").read_text()
    example = docs.split("```toml\n")[1].split("```")[0]
    assert "[mirrors.cf]" in example
    text = (
        HEAD
        + '[monitors.web]\ntype = "http"\n\n[zones."dyn.example.com"]\nnameservers = ["ns1.example.net"]\n\n'
        + example
    )
    loaded = load(tmp_path, text)
    assert [(m.to, m.name) for m in loaded.zones[0].records[0].mirror] == [
        ("cf", "example.com"),
        ("cf", "www.example.com"),
    ]
