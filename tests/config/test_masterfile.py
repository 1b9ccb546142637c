"""RFC 1035 master files: every feature the issue lists, and every mistake located.

Files are loaded the way users load them, through the config, so error messages carry
the master file's path as the user wrote it: "file:line: key: what is wrong; expected ...".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from dynserver import config
from dynserver.dns import wire
from dynserver.errors import ConfigError
from tests.snapshots import ask, snapshot_of

# Every feature of the format at least once; the expected RRsets follow.
RICH = """\
; A zone with every feature of the format the issue lists.
$ORIGIN example.test.
$TTL 1h
@   IN  SOA ns1.example.test. hostmaster ( ; the SOA over several lines
        2024010101 ; serial
        2h         ; refresh
        30m        ; retry
        2w         ; expire
        1h30m )    ; minimum
    IN  NS  ns1
        NS  ns2.example.net.
ns1 300 IN A 192.0.2.1
ns1 IN 300 AAAA 2001:db8::1
www     A 192.0.2.10
        IN 1d TXT "v=spf1 -all" "second string" unquoted
mail.example.test. 60 MX 10 mail
long TXT "{a250}" "{b250}" "{c250}"
_sip._tcp SRV 10 60 5060 sip.example.net.
@ CAA 0 issue "letsencrypt.org"
  CAA 128 iodef "mailto:security@example.test"
1.2 PTR host.example.net.
$ORIGIN sub
x A 192.0.2.99
@ A 192.0.2.98
unknown TYPE65534 \\# 4 0a000001
empty TYPE65533 \\# 0
generic A \\# 4 c0000201
esc\\.aped TXT "a \\" quote; not a comment" ( "and a (parenthesis)" )
$ORIGIN example.test.
Upper.Case 2W1D A 192.0.2.7
""".format(a250="a" * 250, b250="b" * 250, c250="c" * 250)

RICH_RRSETS = {
    ("example.test.", "SOA"): (
        3600,
        ["ns1.example.test. hostmaster.example.test. 2024010101 7200 1800 1209600 5400"],
    ),
    ("example.test.", "NS"): (3600, ["ns1.example.test.", "ns2.example.net."]),
    ("ns1.example.test.", "A"): (300, ["192.0.2.1"]),
    ("ns1.example.test.", "AAAA"): (300, ["2001:db8::1"]),
    ("www.example.test.", "A"): (3600, ["192.0.2.10"]),
    ("www.example.test.", "TXT"): (86400, ['"v=spf1 -all" "second string" "unquoted"']),
    ("mail.example.test.", "MX"): (60, ["10 mail.example.test."]),
    ("long.example.test.", "TXT"): (3600, [f'"{"a" * 250}" "{"b" * 250}" "{"c" * 250}"']),
    ("_sip._tcp.example.test.", "SRV"): (3600, ["10 60 5060 sip.example.net."]),
    ("example.test.", "CAA"): (
        3600,
        ['0 issue "letsencrypt.org"', '128 iodef "mailto:security@example.test"'],
    ),
    ("1.2.example.test.", "PTR"): (3600, ["host.example.net."]),
    ("x.sub.example.test.", "A"): (3600, ["192.0.2.99"]),
    ("sub.example.test.", "A"): (3600, ["192.0.2.98"]),
    ("unknown.sub.example.test.", "TYPE65534"): (3600, ["\\# 4 0a000001"]),
    ("empty.sub.example.test.", "TYPE65533"): (3600, ["\\# 0"]),
    ("generic.sub.example.test.", "A"): (3600, ["192.0.2.1"]),
    ("esc\\.aped.sub.example.test.", "TXT"): (3600, ['"a \\" quote; not a comment" "and a (parenthesis)"']),
    ("upper.case.example.test.", "A"): (2 * 604800 + 86400, ["192.0.2.7"]),
}


def load(folder: Path, text: str, zone: str = "example.test") -> config.Config:
    (folder / "zone.db").write_text(text)
    path = folder / "dynserver.toml"
    path.write_text(f'[zones."{zone}"]\nfile = "zone.db"\n')
    return config.load(path)


def rrsets(loaded: config.Config) -> dict[tuple[str, str], tuple[int, list[str]]]:
    return {
        (wire.name_to_text(rrset.name), dns.rdatatype.to_text(dns.rdatatype.RdataType(rrset.rtype))): (
            rrset.ttl,
            sorted(text.strip() for text in rrset.texts()),
        )
        for zone in loaded.zones
        for rrset in zone.rrsets
    }


def test_every_feature(tmp_path: Path) -> None:
    assert rrsets(load(tmp_path, RICH)) == {
        key: (ttl, sorted(texts)) for key, (ttl, texts) in RICH_RRSETS.items()
    }


@pytest.mark.parametrize(("owner", "rtype"), list(RICH_RRSETS))
def test_every_record_is_served_as_written(tmp_path: Path, owner: str, rtype: str) -> None:
    """The wire form (dnslib) says what the text (dnspython) said, TTL and all."""
    snapshot = snapshot_of(load(tmp_path, RICH))
    reply = ask(snapshot, dns.message.make_query(owner, rtype), tcp=True)
    ttl, texts = RICH_RRSETS[(owner, rtype)]
    assert len(reply.answer) == 1
    assert reply.answer[0].ttl == ttl
    assert sorted(rdata.to_text().strip() for rdata in reply.answer[0]) == sorted(texts)


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        ("0", 0),
        ("300", 300),
        ("1s", 1),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1H30M", 5400),
        ("1w2d3h4m5s", 788645),
        ("2147483647", 2147483647),
    ],
)
def test_ttl_units(tmp_path: Path, ttl: str, seconds: int) -> None:
    text = f"$TTL {ttl}\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nwww {ttl} A 192.0.2.1\n"
    found = rrsets(load(tmp_path, text))
    assert found[("example.test.", "SOA")][0] == seconds, "$TTL"
    assert found[("www.example.test.", "A")][0] == seconds, "record TTL"


@pytest.mark.parametrize(
    "line",
    ["www 60 IN A 192.0.2.1", "www IN 60 A 192.0.2.1", "www 60 A 192.0.2.1", "www in 60 a 192.0.2.1"],
)
def test_class_and_ttl_in_either_order(tmp_path: Path, line: str) -> None:
    text = f"$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\n{line}\n"
    assert rrsets(load(tmp_path, text))[("www.example.test.", "A")] == (60, ["192.0.2.1"])


def test_without_ttl_a_record_takes_the_previous_ones(tmp_path: Path) -> None:
    """No $TTL: RFC 1035 5.1, the last TTL stated applies."""
    text = "@ 120 SOA ns hm 1 2 3 4 5\n@ NS ns\nwww A 192.0.2.1\n"
    found = rrsets(load(tmp_path, text))
    assert found[("example.test.", "NS")][0] == 120
    assert found[("www.example.test.", "A")][0] == 120


def test_the_first_ttl_of_an_rrset_wins(tmp_path: Path) -> None:
    text = "$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nwww 60 A 192.0.2.1\nwww 90 A 192.0.2.2\n"
    assert rrsets(load(tmp_path, text))[("www.example.test.", "A")] == (60, ["192.0.2.1", "192.0.2.2"])


def test_duplicate_records_are_one(tmp_path: Path) -> None:
    text = "$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nwww A 192.0.2.1\nWWW A 192.0.2.1\n"
    assert rrsets(load(tmp_path, text))[("www.example.test.", "A")] == (300, ["192.0.2.1"])


def test_include_with_an_origin(tmp_path: Path) -> None:
    """The included file starts at the given origin with the includer's $TTL; the
    includer's origin comes back after it (RFC 1035 5.1)."""
    (tmp_path / "part.db").write_text("host A 192.0.2.5\n@ TXT here\n")
    text = "$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\n$INCLUDE part.db sub.example.test.\nafter A 192.0.2.6\n"
    found = rrsets(load(tmp_path, text))
    assert found[("host.sub.example.test.", "A")] == (300, ["192.0.2.5"])
    assert found[("sub.example.test.", "TXT")] == (300, ['"here"'])
    assert found[("after.example.test.", "A")] == (300, ["192.0.2.6"]), "the origin comes back after it"


def test_crlf_line_ends(tmp_path: Path) -> None:
    text = "$TTL 300\r\n@ SOA ns hm ( 1 2 3\r\n 4 5 )\r\n@ NS ns\r\nwww A 192.0.2.1\r\n"
    assert rrsets(load(tmp_path, text))[("www.example.test.", "A")] == (300, ["192.0.2.1"])


@pytest.mark.timeout(10)
def test_a_long_run_of_digits_is_quick(tmp_path: Path) -> None:
    """A TTL-like token that is not one must not backtrack for ever (it once did)."""
    text = "$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nwww " + "1" * 60 + "x A 192.0.2.1\n"
    with pytest.raises(ConfigError, match="unknown record type"):
        load(tmp_path, text)


# -- every mistake names the file, the line and the key -----------------------------

HEAD = (
    "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n  NS ns1\nns1 A 192.0.2.1\n"
)
MULTILINE_HEAD = """\
$TTL 300
@ IN SOA ns1 hostmaster ( ; comments and blank lines count as lines
        1      ; serial

        3600   ; refresh
        600 86400 60 )
  NS ns1
"""


@dataclass(frozen=True)
class Mistake:
    why: str
    text: str
    line: int
    key: str
    says: str

    def __str__(self) -> str:
        return self.why


MISTAKES = [
    Mistake("a bad A record", HEAD + "www A 192.0.2\n", 6, "A", "bad A record"),
    Mistake("a bad AAAA record", HEAD + "www AAAA 192.0.2.1\n", 6, "AAAA", "bad AAAA record"),
    Mistake("a bad MX record", HEAD + "@ MX mail\n", 6, "MX", "bad MX record"),
    Mistake("a bad SRV record", HEAD + "_x._tcp SRV 10 5 host\n", 6, "SRV", "bad SRV record"),
    Mistake("a bad CAA record", HEAD + "@ CAA 0 issue\n", 6, "CAA", "bad CAA record"),
    Mistake("A without data", HEAD + "www A\n", 6, "A", "bad A record"),
    Mistake("a TXT string over 255 octets", HEAD + f'www TXT "{"x" * 256}"\n', 6, "TXT", "bad TXT record"),
    Mistake("a bad \\# length", HEAD + "www TYPE65534 \\# 5 0a000001\n", 6, "TYPE65534", "bad TYPE65534"),
    Mistake(
        "a bad record after a multi-line SOA", MULTILINE_HEAD + "www A 300.1.2.3\n", 8, "A", "bad A record"
    ),
    Mistake("an unknown type", HEAD + "www FOO bar\n", 6, "FOO", "unknown record type"),
    Mistake("a class we do not serve", HEAD + "www CH TXT x\n", 6, "CH", "class CH"),
    Mistake("no SOA", "$TTL 300\n\n@ NS ns1\nns1 A 192.0.2.1\n", 3, "SOA", "no SOA record"),
    Mistake("an empty file", "", 1, "SOA", "no SOA record"),
    Mistake("two SOA records", HEAD + "@ SOA ns1 hm 2 3600 600 86400 60\n", 6, "SOA", "more than one SOA"),
    Mistake("an SOA below the apex", HEAD + "sub SOA ns1 hm 1 2 3 4 5\n", 6, "SOA", "below the zone apex"),
    Mistake("no NS", "$TTL 300\n\n@ SOA ns1 hm 1 2 3 4 5\nns1 A 192.0.2.1\n", 3, "NS", "no NS records"),
    Mistake("out-of-zone data", HEAD + "www.example.net. A 192.0.2.1\n", 6, "A", "out-of-zone data"),
    Mistake(
        "out-of-zone data after $ORIGIN",
        HEAD + "$ORIGIN example.net.\n\nwww A 192.0.2.1\n",
        8,
        "A",
        "out-of-zone data",
    ),
    Mistake("the parent's name", HEAD + "test. A 192.0.2.1\n", 6, "A", "out-of-zone data"),
    Mistake(
        "a CNAME and other data",
        HEAD + "www CNAME ns1\nwww A 192.0.2.2\n",
        7,
        "CNAME",
        "CNAME and other data",
    ),
    Mistake(
        "other data, then a CNAME",
        HEAD + "www A 192.0.2.2\nwww TXT x\nwww CNAME ns1\n",
        8,
        "CNAME",
        "CNAME and other data",
    ),
    Mistake("a CNAME at the apex", HEAD + "@ CNAME www.example.net.\n", 6, "CNAME", "CNAME and other data"),
    Mistake("two CNAMEs", HEAD + "www CNAME ns1\nwww CNAME ns2\n", 7, "CNAME", "more than one CNAME"),
    Mistake("')' without '('", HEAD + "www A 192.0.2.2 )\n", 6, "A", "')' without a matching '('"),
    Mistake("'(' never closed", HEAD + 'www TXT ( "a"\n  "b"\n', 6, "TXT", "'(' is never closed"),
    Mistake(
        "the SOA's '(' never closed",
        "$TTL 300\n@ IN SOA ns1 hm (\n 1 2 3\n 4 5\n\n@ NS ns1\n",
        2,
        "SOA",
        "'(' is never closed",
    ),
    Mistake(
        "an unterminated quote", HEAD + 'www TXT "abc\nnext A 192.0.2.1\n', 6, "TXT", "unterminated quoted"
    ),
    Mistake("a quote open at the end", HEAD + 'www TXT "abc', 6, "TXT", "unterminated quoted"),
    Mistake("no TTL at all", "$ORIGIN example.test.\n@ SOA ns1 hm 1 2 3 4 5\n", 2, "SOA", "no TTL"),
    Mistake("a bad $TTL", "$TTL 1x\n", 1, "$TTL", "bad TTL"),
    Mistake("a TTL too large", HEAD + "www 2147483648 A 192.0.2.1\n", 6, "TTL", "too large"),
    Mistake("an unknown directive", HEAD + "$GENERATE 1-9 x$ A 192.0.2.$\n", 6, "$GENERATE", "directive"),
    Mistake("$ORIGIN without a name", HEAD + "$ORIGIN\n", 6, "$ORIGIN", "directive"),
    Mistake("$ORIGIN with a bad name", HEAD + "$ORIGIN a..b\n", 6, "$ORIGIN", "bad name"),
    Mistake("a label over 63 octets", HEAD + "x" * 64 + " A 192.0.2.1\n", 6, "owner", "bad name"),
    Mistake("a first record without owner", "  A 192.0.2.1\n", 1, "A", "no owner name"),
    Mistake("a record without type", HEAD + "www 300\n", 6, "www", "no type"),
    Mistake(
        "an $INCLUDE that is missing", HEAD + "$INCLUDE nope.db\n", 6, "$INCLUDE", "cannot read included"
    ),
]


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_mistakes_name_file_line_and_key(tmp_path: Path, mistake: Mistake) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, mistake.text)
    error = caught.value
    assert str(error).startswith(f"{tmp_path / 'zone.db'}:{mistake.line}: {mistake.key}: "), str(error)
    assert mistake.says in error.message
    assert "expected" in error.message, "every message says what was expected"


def test_a_mistake_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "part.db").write_text("; included\nhost A 192.0.2\n")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HEAD + "$INCLUDE part.db\n")
    assert str(caught.value).startswith(f"{tmp_path / 'part.db'}:2: A: bad A record")


def test_an_include_loop_stops(tmp_path: Path) -> None:
    (tmp_path / "loop.db").write_text("$INCLUDE loop.db\n")
    with pytest.raises(ConfigError, match=r"\$INCLUDE: \$INCLUDE nested too deeply; expected"):
        load(tmp_path, HEAD + "$INCLUDE loop.db\n")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "zone.db").write_bytes(HEAD.encode() + b'www TXT "\xff"\n')
    path = tmp_path / "dynserver.toml"
    path.write_text('[zones."example.test"]\nfile = "zone.db"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value).startswith(f"{tmp_path / 'zone.db'}:6: encoding: not UTF-8 text; expected")


def test_an_included_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "part.db").write_bytes(b'; part\nwww TXT "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HEAD + "$INCLUDE part.db\n")
    assert str(caught.value).startswith(f"{tmp_path / 'part.db'}:2: encoding: not UTF-8 text; expected")
