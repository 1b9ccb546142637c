"""Loading the TOML config: what works as written, and what every mistake says.

A mistake must name the file, the line and the key, say what is wrong and what was
expected ("file:line: key: what is wrong; expected ..."), before anything is served.
Errors inside master files are in tests/config/test_masterfile.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from dynserver import config
from dynserver.errors import ConfigError
from dynserver.model import Listener
from dynserver.update.limits import LimitPolicy
from tests.dns.zones import DYN
from tests.snapshots import ask, snapshot_of
from tests.support import ZONES

# The file of issue 2, section 2, exactly: it must keep working as it is.
MINIMAL = """\
[server]
dns = ["127.0.0.1:15353"]
http = "127.0.0.1:18080"

[zones."dyn.example.test"]
file = "dyn.example.test.zone"
"""


def write(folder: Path, text: str, files: dict[str, str] | None = None) -> Path:
    for name, content in (files if files is not None else {"dyn.example.test.zone": DYN}).items():
        (folder / name).write_text(content)
    path = folder / "dynserver.toml"
    path.write_text(text)
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    return caught.value


def test_the_minimal_config_from_the_issue_works(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, MINIMAL))
    assert loaded.server.dns == (Listener("127.0.0.1", 15353),)
    assert loaded.server.http == Listener("127.0.0.1", 18080)
    assert [zone.name for zone in loaded.zones] == [(b"dyn", b"example", b"test")]
    assert loaded.zones[0].file == tmp_path / "dyn.example.test.zone"
    reply = ask(snapshot_of(loaded), dns.message.make_query("www.dyn.example.test", "A"))
    assert [rdata.to_text() for rdata in reply.answer[0]] == ["192.0.2.10"]


def test_the_example_config_loads() -> None:
    loaded = config.load(ZONES / "dynserver.toml")
    assert loaded.zones


def test_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf" / "zones").mkdir(parents=True)
    (tmp_path / "conf" / "zones" / "dyn.zone").write_text(DYN)
    path = tmp_path / "conf" / "dynserver.toml"
    path.write_text('[zones."dyn.example.test"]\nfile = "zones/dyn.zone"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = config.load(path)
    assert loaded.zones[0].file == tmp_path / "conf" / "zones" / "dyn.zone"


def test_defaults(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n'))
    server = loaded.server
    assert server.dns == (Listener("127.0.0.1", 5353),)
    assert server.http is None
    assert (server.chaos_version, server.chaos_hostname) == (None, None)
    assert server.tcp_idle_timeout == 10.0


def test_web_limits(tmp_path: Path) -> None:
    """[web.limits] sets the update and login limits; what it leaves out keeps its default."""
    text = f"{ZONE}[web.limits]\nburst = 5\nrate = 0.5\nclient_failures = 4\nlockout = 120\n"
    limits = config.load(write(tmp_path, text)).web.limits
    assert (limits.burst, limits.rate, limits.client_failures, limits.lockout) == (5, 0.5, 4, 120.0)
    assert (limits.credential_failures, limits.failure_window) == (30, 300.0)
    assert config.load(write(tmp_path, ZONE)).web.limits == LimitPolicy()


FILE_HASH = "scrypt$from-the-file"
ENV_HASH = "scrypt$from-the-environment"
FILE_TOKEN = "from-the-file-0123456789"
ENV_TOKEN = "from-the-environment-0123456789"


def test_the_environment_overrides_the_web_secrets(tmp_path: Path) -> None:
    """DYNSERVER_ADMIN_PASSWORD_HASH and DYNSERVER_METRICS_TOKEN win over [web], and are
    applied by the loader, the one place configuration is read from the environment."""
    path = write(
        tmp_path, f'{ZONE}[web]\nadmin_password_hash = "{FILE_HASH}"\nmetrics_token = "{FILE_TOKEN}"\n'
    )
    web = config.load(path, environ={}).web
    assert (web.admin_password_hash, web.metrics_token) == (FILE_HASH, FILE_TOKEN)
    web = config.load(path, environ={config.ENV_HASH: ENV_HASH, config.ENV_TOKEN: ENV_TOKEN}).web
    assert (web.admin_password_hash, web.metrics_token) == (ENV_HASH, ENV_TOKEN)
    web = config.load(path, environ={config.ENV_HASH: "", config.ENV_TOKEN: ""}).web  # empty: unset
    assert (web.admin_password_hash, web.metrics_token) == (FILE_HASH, FILE_TOKEN)
    web = config.load(write(tmp_path, ZONE), environ={config.ENV_HASH: ENV_HASH}).web
    assert (web.admin_password_hash, web.metrics_token) == (ENV_HASH, None)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "DYNSERVER_ADMIN_PASSWORD_HASH",
            "hunter2-in-clear",
            "expected a hash from `dynserver hash-password`",
        ),
        ("DYNSERVER_METRICS_TOKEN", "short-secret", "expected at least 16 printable characters"),
        ("DYNSERVER_METRICS_TOKEN", "a token with spaces in it", "expected at least 16 printable characters"),
    ],
)
def test_a_bad_override_names_the_variable_and_not_its_value(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, ZONE), environ={variable: value})
    assert str(caught.value).startswith(f"environment: {variable}: {expected}")
    assert value not in str(caught.value)


@pytest.mark.parametrize(
    ("dns_value", "listeners"),
    [
        ('"127.0.0.2:53"', [Listener("127.0.0.2", 53)]),
        ('["127.0.0.2:53", "[::1]:5353"]', [Listener("127.0.0.2", 53), Listener("::1", 5353)]),
        ('["localhost:0"]', [Listener("localhost", 0)]),
    ],
)
def test_listeners(tmp_path: Path, dns_value: str, listeners: list[Listener]) -> None:
    text = f'[server]\ndns = {dns_value}\n[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n'
    assert list(config.load(write(tmp_path, text)).server.dns) == listeners


def test_several_zones(tmp_path: Path) -> None:
    other = DYN.replace("dyn.example.test.", "other.example.")
    text = (
        '[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n'
        '[zones."other.example"]\nfile = "other.zone"\n'
    )
    loaded = config.load(write(tmp_path, text, {"dyn.example.test.zone": DYN, "other.zone": other}))
    assert [zone.name for zone in loaded.zones] == [(b"dyn", b"example", b"test"), (b"other", b"example")]


# -- every mistake names file, line and key ------------------------------------------


@dataclass(frozen=True)
class Mistake:
    why: str
    text: str
    line: int
    key: str
    says: str  # a fragment of what is wrong

    def __str__(self) -> str:
        return self.why


ZONE = '[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n'

MISTAKES = [
    Mistake("unknown top-level key", f"bogus = 1\n{ZONE}", 1, "bogus", "unknown key"),
    Mistake("unknown top-level table", f"{ZONE}\n[extra]\nx = 1\n", 4, "extra", "unknown key"),
    Mistake(
        "unknown key in [server]",
        f'[server]\ndns = ["127.0.0.1:53"]\nlisten = "x"\n{ZONE}',
        3,
        "server.listen",
        "unknown key",
    ),
    Mistake(
        "unknown key in a zone",
        '[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\nfille = "x"\n',
        3,
        'zones."dyn.example.test".fille',
        "unknown key",
    ),
    Mistake(
        "a generated-zone key in a zone with a file",
        '[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\nnameservers = ["ns1.example.net"]\n',
        3,
        'zones."dyn.example.test".nameservers',
        'only for a zone without "file"',
    ),
    Mistake(
        "a listener without a port", f'[server]\ndns = ["127.0.0.1"]\n{ZONE}', 2, "server.dns", "host:port"
    ),
    Mistake(
        "a listener with a host name",
        f'[server]\nhttp = "example.com:80"\n{ZONE}',
        2,
        "server.http",
        "not an IP address",
    ),
    Mistake(
        "a port out of range",
        f'[server]\ndns = ["127.0.0.1:65536"]\n{ZONE}',
        2,
        "server.dns",
        "out of range",
    ),
    Mistake("a listener that is a number", f"[server]\ndns = 53\n{ZONE}", 2, "server.dns", "host:port"),
    Mistake(
        "a listener item that is not a string",
        f'[server]\ndns = ["127.0.0.1:53", 53]\n{ZONE}',
        2,
        "server.dns",
        "got a number",
    ),
    Mistake(
        "a number where a number is expected, but out of range",
        f"[server]\ntcp_idle_timeout = 0\n{ZONE}",
        2,
        "server.tcp_idle_timeout",
        "got 0",
    ),
    Mistake(
        "a boolean for a number",
        f"[server]\ntcp_max_connections = true\n{ZONE}",
        2,
        "server.tcp_max_connections",
        "got a boolean",
    ),
    Mistake("[server] that is not a table", f"server = 1\n{ZONE}", 1, "server", "expected a table"),
    Mistake(
        "the same zone twice, spelled differently",
        '[zones."Dyn.Example.Test"]\nfile = "dyn.example.test.zone"\n\n'
        '[zones."dyn.example.test."]\nfile = "dyn.example.test.zone"\n',
        4,
        'zones."dyn.example.test."',
        "duplicate zone",
    ),
    Mistake(
        "the same zone twice, as inline tables",
        '[zones]\n"dyn.example.test" = { file = "dyn.example.test.zone" }\n'
        '"DYN.example.test" = { file = "dyn.example.test.zone" }\n',
        3,
        'zones."DYN.example.test"',
        "duplicate zone",
    ),
    Mistake(
        "a bad zone name",
        '[zones."a..b"]\nnameservers = ["ns1.example.net"]\n',
        1,
        'zones."a..b"',
        "zone name",
    ),
    Mistake(
        "a zone without file and without nameservers",
        '[zones."dyn.example.test"]\nhostmaster = "admin@example.test"\n',
        1,
        'zones."dyn.example.test".nameservers',
        "nameservers",
    ),
    Mistake(
        "nameservers that are not a list",
        '[zones."dyn.example.test"]\nnameservers = "ns1.example.net"\n',
        2,
        'zones."dyn.example.test".nameservers',
        "nameservers",
    ),
    Mistake(
        "a master file that does not exist",
        '[zones."dyn.example.test"]\nfile = "nope.zone"\n',
        2,
        'zones."dyn.example.test".file',
        "no master file",
    ),
    Mistake("no zones at all", '[server]\ndns = ["127.0.0.1:53"]\n', 0, "zones", "no zones"),
    Mistake(
        "a bad nameserver name",
        '[zones."dyn.example.test"]\nnameservers = ["ns1..example.net"]\n',
        2,
        'zones."dyn.example.test".nameservers',
        "not a host name",
    ),
    Mistake(
        "a bad hostmaster",
        '[zones."dyn.example.test"]\nnameservers = ["ns1.example.net"]\nhostmaster = "a..b"\n',
        3,
        'zones."dyn.example.test".hostmaster',
        "not a host name",
    ),
    Mistake(
        "a negative TTL above a day",
        '[zones."dyn.example.test"]\nnameservers = ["ns1.example.net"]\nnegative_ttl = 90000\n',
        3,
        'zones."dyn.example.test".negative_ttl',
        "got 90000",
    ),
    # Glue rules for generated zones: a nameserver inside the zone needs its addresses
    # in glue; glue is only for such nameservers; glue values are lists of IP addresses.
    Mistake(
        "glue rule: an in-zone nameserver without glue",
        '[zones."dyn.example.test"]\nnameservers = ["ns2.example.net", "ns1.dyn.example.test"]\n',
        2,
        'zones."dyn.example.test".nameservers',
        "ns1.dyn.example.test. is inside the zone",
    ),
    Mistake(
        "glue rule: glue for an out-of-zone nameserver",
        '[zones."dyn.example.test"]\nnameservers = ["ns1.example.net"]\n'
        'glue = { "ns1.example.net" = ["192.0.2.1"] }\n',
        3,
        'zones."dyn.example.test".glue."ns1.example.net"',
        "not a nameserver inside this zone",
    ),
    Mistake(
        "glue rule: glue for an in-zone host that is not a nameserver",
        '[zones."dyn.example.test"]\nnameservers = ["ns1.dyn.example.test"]\n'
        '[zones."dyn.example.test".glue]\n"ns1.dyn.example.test" = ["192.0.2.1"]\n'
        '"www.dyn.example.test" = ["192.0.2.2"]\n',
        5,
        'zones."dyn.example.test".glue."www.dyn.example.test"',
        "not a nameserver inside this zone",
    ),
    Mistake(
        "glue rule: a bad address",
        '[zones."dyn.example.test"]\nnameservers = ["ns1.dyn.example.test"]\n'
        '[zones."dyn.example.test".glue]\n"ns1.dyn.example.test" = ["192.0.2.300"]\n',
        4,
        'zones."dyn.example.test".glue."ns1.dyn.example.test"',
        "not an IP address",
    ),
    Mistake(
        "glue rule: an address that is a number",
        '[zones."dyn.example.test"]\nnameservers = ["ns1.dyn.example.test"]\n'
        '[zones."dyn.example.test".glue]\n"ns1.dyn.example.test" = [3221225985]\n',
        4,
        'zones."dyn.example.test".glue."ns1.dyn.example.test"',
        "not an IP address",
    ),
    Mistake(
        "glue rule: a single address instead of a list",
        '[zones."dyn.example.test"]\nnameservers = ["ns1.dyn.example.test"]\n'
        '[zones."dyn.example.test".glue]\n"ns1.dyn.example.test" = "192.0.2.1"\n',
        4,
        'zones."dyn.example.test".glue."ns1.dyn.example.test"',
        "list of addresses",
    ),
    Mistake(
        "[web.limits]: an unknown key",
        f"{ZONE}[web.limits]\nburst = 5\nrate_per_minute = 3\n",
        5,
        "web.limits.rate_per_minute",
        "unknown key",
    ),
    Mistake(
        "[web.limits]: a rate of zero",
        f"{ZONE}[web.limits]\nrate = 0\n",
        4,
        "web.limits.rate",
        "from 0.001 to 10000",
    ),
    Mistake(
        "[web.limits]: a fractional burst",
        f"{ZONE}[web.limits]\nburst = 2.5\n",
        4,
        "web.limits.burst",
        "whole number",
    ),
    Mistake(
        "[web.limits]: a credential that locks before the client",
        f"{ZONE}[web.limits]\nclient_failures = 20\ncredential_failures = 20\n",
        5,
        "web.limits.credential_failures",
        "more than client_failures (20)",
    ),
    Mistake(
        "glue rule: an empty list",
        '[zones."dyn.example.test"]\nnameservers = ["ns1.dyn.example.test"]\n'
        '[zones."dyn.example.test".glue]\n"ns1.dyn.example.test" = []\n',
        4,
        'zones."dyn.example.test".glue."ns1.dyn.example.test"',
        "list of addresses",
    ),
]


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistakes_name_file_line_and_key(tmp_path: Path, mistake: Mistake) -> None:
    path = write(tmp_path, mistake.text)
    error = error_of(path)
    where = f"{path}:{mistake.line}" if mistake.line else str(path)
    assert str(error).startswith(f"{where}: {mistake.key}: "), str(error)
    assert (error.path, error.line, error.key) == (str(path), mistake.line, mistake.key)
    assert mistake.says in error.message
    assert "expected" in error.message, "every message says what was expected"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[server]\ndns = ["127.0.0.1:5353"\n\n[zones."x"]\n', 4),  # the parser notices at line 4
        ("[server]\n\n\ndns = = 1\n", 4),
        ('[zones."dyn.example.test"]\nfile = "a"\nfile = "b"\n', 3),  # a key written twice
        ('[server]\ndns = "unterminated\n', 2),
    ],
)
def test_bad_toml_gives_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    error = error_of(path)
    assert str(error).startswith(f"{path}:{line}: not valid TOML: "), str(error)
    assert "expected" in error.message


def test_a_config_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.toml"
    path.write_bytes(b'[zones."dyn.example.test"]\n# caf\xe9\nfile = "x"\n')
    error = error_of(path)
    assert str(error).startswith(f"{path}:2: encoding: not UTF-8 text; expected")


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "dyn.example.test.zone").write_bytes(b"\xef\xbb\xbf" + DYN.encode())
    path = tmp_path / "dynserver.toml"
    path.write_bytes(b"\xef\xbb\xbf" + ZONE.encode())
    assert config.load(path).zones


def test_an_unreadable_config(tmp_path: Path) -> None:
    error = error_of(tmp_path / "missing.toml")
    assert str(error).startswith(f"{tmp_path / 'missing.toml'}: cannot read config")


def test_a_master_file_error_names_the_master_file(tmp_path: Path) -> None:
    path = write(tmp_path, ZONE, {"dyn.example.test.zone": DYN + "bad IN A 192.0.2\n"})
    error = error_of(path)
    line = len(DYN.splitlines()) + 1
    assert str(error).startswith(f"{tmp_path / 'dyn.example.test.zone'}:{line}: A: bad A record")


# -- zones without a master file ---------------------------------------------------------
# Keys: nameservers (required; the first is the SOA MNAME), hostmaster, ttl, refresh,
# retry, expire, negative_ttl (SOA MINIMUM), glue (see the glue rules above).

GENERATED = """\
[zones."dyn.example.test"]
nameservers = ["ns1.dyn.example.test", "ns2.example.net"]
hostmaster = "admin@example.net"
ttl = 7200
refresh = 1000
retry = 200
expire = 100000
negative_ttl = 30
glue = { "ns1.dyn.example.test" = ["192.0.2.53", "2001:db8::53"] }
"""


def test_a_zone_without_a_file_answers_soa_and_ns(tmp_path: Path) -> None:
    snapshot = snapshot_of(config.load(write(tmp_path, GENERATED, {})))
    soa = ask(snapshot, dns.message.make_query("dyn.example.test", "SOA"))
    assert soa.flags & dns.flags.AA
    rdata = soa.answer[0][0]
    assert soa.answer[0].ttl == 7200
    assert (rdata.mname.to_text(), rdata.rname.to_text()) == ("ns1.dyn.example.test.", "admin.example.net.")
    assert (rdata.refresh, rdata.retry, rdata.expire, rdata.minimum) == (1000, 200, 100000, 30)
    assert rdata.serial > 0
    ns = ask(snapshot, dns.message.make_query("dyn.example.test", "NS"))
    assert sorted(r.to_text() for r in ns.answer[0]) == ["ns1.dyn.example.test.", "ns2.example.net."]
    assert sorted(line for rrset in ns.additional for line in rrset.to_text().splitlines()) == [
        "ns1.dyn.example.test. 7200 IN A 192.0.2.53",
        "ns1.dyn.example.test. 7200 IN AAAA 2001:db8::53",
    ]
    missing = ask(snapshot, dns.message.make_query("nx.dyn.example.test", "A"))
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.authority[0].ttl == 30, "RFC 2308: min(SOA TTL, negative_ttl)"


def test_a_zone_without_a_file_has_defaults(tmp_path: Path) -> None:
    loaded = config.load(
        write(tmp_path, '[zones."dyn.example.test"]\nnameservers = ["ns1.example.net."]\n', {})
    )
    soa = ask(snapshot_of(loaded), dns.message.make_query("dyn.example.test", "SOA")).answer[0]
    rdata = soa[0]
    assert soa.ttl == 3600
    assert rdata.rname.to_text() == "hostmaster.dyn.example.test."
    assert (rdata.refresh, rdata.retry, rdata.expire, rdata.minimum) == (3600, 600, 1209600, 60)


def test_glue_names_match_whatever_their_case_and_final_dot(tmp_path: Path) -> None:
    text = (
        '[zones."dyn.example.test"]\nnameservers = ["NS1.dyn.example.test."]\n'
        'glue = { "ns1.DYN.example.test" = ["192.0.2.53"] }\n'
    )
    loaded = config.load(write(tmp_path, text, {}))
    reply = ask(snapshot_of(loaded), dns.message.make_query("ns1.dyn.example.test", "A"))
    assert [r.to_text() for r in reply.answer[0]] == ["192.0.2.53"]


@pytest.mark.parametrize(
    ("hostmaster", "rname"),
    [
        ("admin@example.net", "admin.example.net."),
        ("first.last@example.net", "first\\.last.example.net."),
        ("hostmaster.example.net.", "hostmaster.example.net."),
    ],
)
def test_hostmaster_as_a_mailbox(tmp_path: Path, hostmaster: str, rname: str) -> None:
    """RFC 1035 8: the RNAME's first label is the local part; its own dots are escaped."""
    text = f'[zones."dyn.example.test"]\nnameservers = ["ns1.example.net"]\nhostmaster = "{hostmaster}"\n'
    snapshot = snapshot_of(config.load(write(tmp_path, text, {})))
    soa = ask(snapshot, dns.message.make_query("dyn.example.test", "SOA")).answer[0][0]
    assert soa.rname.to_text() == rname


def test_a_whole_number_is_required_where_one_is_meant(tmp_path: Path) -> None:
    text = '[zones."dyn.example.test"]\nnameservers = ["ns1.example.net"]\nttl = 300.5\n'
    error = error_of(write(tmp_path, text, {}))
    assert str(error).startswith(
        f'{tmp_path / "dynserver.toml"}:3: zones."dyn.example.test".ttl: expected a whole'
    )


@pytest.mark.parametrize("value", ["0", "[]", "false"])
def test_http_that_is_not_a_string_is_an_error(tmp_path: Path, value: str) -> None:
    error = error_of(write(tmp_path, f"[server]\nhttp = {value}\n{ZONE}"))
    assert (error.line, error.key) == (2, "server.http")
    assert 'expected a "host:port" string' in error.message


def test_http_empty_means_no_web_server(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, f'[server]\nhttp = ""\n{ZONE}')).server.http is None
