"""[mirrors.NAME] of type lexicon and dyndns2: what loads, and what each mistake says
(line, key, expectation). Credentials come from files or the environment and never
appear in an error, a repr or a str; the worker builds a provider for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.mirror.dyndns2 import Dyndns2
from dynserver.mirror.lexicon import Lexicon
from dynserver.mirror.worker import MirrorWorker
from dynserver.model import MirrorConfig, MirrorRecord, Secret

TOKEN = "hcloud-Secret-Token-0123456789abcdefghijklmnop"
PASSWORD = "he-Secret-Key-0123456789"
HEAD = """\
[server]
dns = ["127.0.0.1:0"]
"""
LEXICON = """
[mirrors.hz]
type = "lexicon"
provider = "hetzner"
zone = "Example.COM."
credentials_file = { auth_token = "hz-token" }
options = { retry_wait_time = 100 }
"""
DYNDNS2 = """
[mirrors.he]
type = "dyndns2"
url = "https://dyn.dns.he.net/nic/update"
username = "home.example.net"
password_env = "HE_KEY"
"""
ZONE = """
[zones."dyn.example.test"]
nameservers = ["ns1.example.net"]

[zones."dyn.example.test".records.app]
type = "A"
ttl = 30
targets = [{ name = "a", value = "192.0.2.1" }, { name = "b", value = "192.0.2.2", priority = 2 }]
"""
ENVIRON = {"HE_KEY": PASSWORD, "HZ_TOKEN": TOKEN}


def load(tmp_path: Path, text: str) -> config.Config:
    (tmp_path / "hz-token").write_text(TOKEN + "\n")
    path = tmp_path / "dynserver.toml"
    path.write_text(text)
    return config.load(path, ENVIRON)


def test_the_configs_of_the_issue_load_and_the_worker_builds_their_providers(tmp_path: Path) -> None:
    mirror = 'mirror = [{ to = "hz", name = "www.example.com", ttl = 60 }, '
    mirror += '{ to = "he", name = "home.example.net" }]\n'
    loaded = load(tmp_path, HEAD + LEXICON + DYNDNS2 + ZONE + mirror)
    he, hz = sorted(loaded.mirrors, key=lambda m: m.name)
    assert hz == MirrorConfig(
        name="hz",
        type="lexicon",
        zone="example.com",
        api_base="",
        provider="hetzner",
        credentials=(("auth_token", Secret(TOKEN)),),
        options=(("retry_wait_time", "100"),),
    )
    assert he == MirrorConfig(
        name="he",
        type="dyndns2",
        zone="",
        reconcile_interval=86400.0,  # dyndns2 cannot read back: once a day, not every 5 min
        api_base="https://api.cloudflare.com/client/v4",
        url="https://dyn.dns.he.net/nic/update",
        username="home.example.net",
        password=Secret(PASSWORD),
    )
    assert loaded.zones[0].records[0].mirror == (
        MirrorRecord(to="hz", name="www.example.com", ttl=60),
        MirrorRecord(to="he", name="home.example.net", ttl=30),
    )
    for text in (repr(loaded), str(loaded)):
        assert TOKEN not in text and PASSWORD not in text
    worker = MirrorWorker.from_config(loaded)
    kinds = {type(p) for p in worker._providers.values()}
    assert kinds == {Lexicon, Dyndns2}
    assert set(worker._secrets) == {TOKEN, PASSWORD}


def test_a_lexicon_mirror_ttl_defaults_to_the_record_ttl_but_at_least_60(tmp_path: Path) -> None:
    loaded = load(tmp_path, HEAD + LEXICON + ZONE + 'mirror = [{ to = "hz", name = "www.example.com" }]\n')
    assert loaded.zones[0].records[0].mirror == (MirrorRecord(to="hz", name="www.example.com", ttl=60),)
    text = ZONE.replace("ttl = 30", "ttl = 600") + 'mirror = [{ to = "hz", name = "www.example.com" }]\n'
    assert load(tmp_path, HEAD + LEXICON + text).zones[0].records[0].mirror[0].ttl == 600


def test_credentials_from_the_environment(tmp_path: Path) -> None:
    text = LEXICON.replace(
        'credentials_file = { auth_token = "hz-token" }', 'credentials_env = { auth_token = "HZ_TOKEN" }'
    )
    loaded = load(tmp_path, HEAD + text + ZONE)
    assert loaded.mirrors[0].credentials == (("auth_token", Secret(TOKEN)),)


# Each mistake: the text (after HEAD), the line it must point at, the key and a phrase.
MISTAKES = [
    (
        LEXICON.replace('"hetzner"', '"nosuch"'),
        'provider = "nosuch"',
        "mirrors.hz.provider",
        "has no provider 'nosuch'",
    ),
    (
        LEXICON.replace("auth_token =", "token ="),
        "credentials_file",
        "mirrors.hz.credentials_file.token",
        "hetzner has no option 'token'; expected one of: auth_token",
    ),
    (
        LEXICON.replace('"hz-token"', '"missing"'),
        "credentials_file",
        "mirrors.hz.credentials_file.auth_token",
        "cannot read",
    ),
    (
        LEXICON + 'credentials_env = { auth_token = "HZ_TOKEN" }\n',
        "credentials_env",
        "mirrors.hz.credentials_env.auth_token",
        "both credentials_file and credentials_env",
    ),
    (
        LEXICON.replace("retry_wait_time = 100", f'auth_token = "{TOKEN}"'),
        "options",
        "mirrors.hz.options.auth_token",
        "also given as a credential",
    ),
    (
        LEXICON.replace('credentials_file = { auth_token = "hz-token" }\n', ""),
        "[mirrors.hz]",
        "mirrors.hz",
        "expected credentials_file or credentials_env",
    ),
    (LEXICON + 'api_base = "http://192.0.2.9/v1"\n', "api_base", "mirrors.hz.api_base", "clear text"),
    (
        DYNDNS2.replace('password_env = "HE_KEY"', f'password = "{PASSWORD}"'),
        "password =",
        "mirrors.he.password",
        "does not belong",
    ),
    (
        DYNDNS2.replace('password_env = "HE_KEY"', 'password_env = "NOPE"'),
        "password_env",
        "mirrors.he.password_env",
        "'NOPE' is not set",
    ),
    (DYNDNS2.replace("https://dyn", "http://dyn"), "url =", "mirrors.he.url", "clear text"),
    (
        DYNDNS2.replace('url = "https://dyn.dns.he.net/nic/update"\n', ""),
        "[mirrors.he]",
        "mirrors.he",
        "expected url",
    ),
    (
        DYNDNS2
        + ZONE.replace('type = "A"', 'type = "CNAME"')
        .replace('"192.0.2.1"', '"a.example.net"')
        .replace(', { name = "b", value = "192.0.2.2", priority = 2 }', "")
        + 'mirror = [{ to = "he", name = "home.example.net" }]\n',
        "mirror =",
        'zones."dyn.example.test".records.app.mirror',
        "expected a record of type A or AAAA",
    ),
    (
        DYNDNS2 + ZONE + 'mirror = [{ to = "he", name = "home.example.net", ttl = 60 }]\n',
        "mirror =",
        'zones."dyn.example.test".records.app.mirror',
        "sets the TTL itself",
    ),
]


@pytest.mark.parametrize(("text", "needle", "key", "phrase"), MISTAKES)
def test_mistakes_name_the_line_the_key_and_the_expectation(
    tmp_path: Path, text: str, needle: str, key: str, phrase: str
) -> None:
    full = HEAD + text
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, full)
    error = caught.value
    assert TOKEN not in str(error) and PASSWORD not in str(error)
    assert error.key == key
    assert error.line == next(n for n, line in enumerate(full.splitlines(), start=1) if needle in line)
    assert phrase in str(error)
