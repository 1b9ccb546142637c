"""Zone data helpers: RRsets built from presentation-form RDATA."""

from __future__ import annotations

import pytest

from dynserver.dns import wire
from dynserver.dns.zone import rrset_from_texts


def test_rrset_from_texts_with_addresses() -> None:
    rrset = rrset_from_texts((b"www", b"example"), wire.TYPE_A, 60, ["192.0.2.1", "192.0.2.2", "192.0.2.1"])
    assert rrset.texts() == ["192.0.2.1", "192.0.2.2"], "a set: duplicates dropped"


@pytest.mark.parametrize(
    ("rtype", "text"),
    [
        (wire.TYPE_NS, "ns1.example.net."),
        (wire.TYPE_CNAME, "www.example.net."),
        (wire.TYPE_MX, "10 mx.example.net."),
    ],
)
def test_rrset_from_texts_with_names(rtype: int, text: str) -> None:
    rrset = rrset_from_texts((b"example",), rtype, 60, [text])
    assert rrset.texts() == [text]
