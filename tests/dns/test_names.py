"""Name normalisation: one text form and one Name from dnspython or dnslib."""

from __future__ import annotations

import dns.name
import pytest
from dnslib import DNSLabel

from dynserver.dns.names import fqdn, name_from_dnslib, name_from_dnspython, name_text


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("app.dyn.example.test", "app.dyn.example.test"),
        ("App.Dyn.Example.Test.", "app.dyn.example.test"),
        ("  app.dyn.example.test.  ", "app.dyn.example.test"),
        (".", ""),
        ("", ""),
    ],
)
def test_fqdn(written: str, normal: str) -> None:
    assert fqdn(written) == normal


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ((b"app", b"dyn", b"example", b"test"), "app.dyn.example.test"),
        ((), ""),
        ((b"a.b", b"test"), "a\\.b.test"),  # an escaped dot stays a part of its label
    ],
)
def test_name_text(name: tuple[bytes, ...], text: str) -> None:
    assert name_text(name) == text


def test_names_from_the_libraries_are_lower_case_label_tuples() -> None:
    expected = (b"www", b"example", b"test")
    assert name_from_dnspython(dns.name.from_text("WWW.Example.TEST.")) == expected
    assert name_from_dnslib(DNSLabel("WWW.Example.TEST.")) == expected
    assert name_from_dnspython(dns.name.root) == name_from_dnslib(DNSLabel([])) == ()
