"""Reading replies: values in canonical order with their TTL, a CNAME never mistaken
for the answer."""

from __future__ import annotations

from dynserver import propagation as p
from tests.propagation.replies import NAME, message


def test_answer_values_are_canonical_sorted_and_carry_the_ttl() -> None:
    reply = message(NAME, "AAAA", answer=[f"{NAME}. 42 AAAA 2001:DB8::0010|2001:db8:0:0::2|2001:db8::1"])
    assert p.answer_values(reply, NAME, "AAAA") == (("2001:db8::1", "2001:db8::2", "2001:db8::10"), 42)
    numeric = message(NAME, "A", answer=[f"{NAME}. 5 A 192.0.2.100|192.0.2.9"])
    assert p.answer_values(numeric, NAME, "A")[0] == ("192.0.2.9", "192.0.2.100")


def test_a_cname_where_an_address_was_asked_never_looks_like_the_answer() -> None:
    reply = message(
        NAME, "A", answer=[f"{NAME}. 60 CNAME Other.Example.NET.", "other.example.net. 60 A 192.0.2.21"]
    )
    assert p.answer_values(reply, NAME, "A") == (("CNAME other.example.net.",), 60)
    assert p.answer_values(message(NAME, "A"), NAME, "A") == ((), None)
    cname = message(NAME, "CNAME", answer=[f"{NAME}. 60 CNAME Target.Example.NET."])
    assert p.answer_values(cname, NAME, "CNAME") == (("target.example.net.",), 60)
