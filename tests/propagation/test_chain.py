"""The CNAME box: hostnames it takes and refuses, one reply's step along a chain, the
chain's verdict, and following a chain through a scripted Ask."""

from __future__ import annotations

import asyncio

import dns.rcode
import pytest

from dynserver import propagation as p
from dynserver.propagation import Chain, Endpoint
from tests.propagation.replies import NAME, Script, message, scripted


@pytest.mark.parametrize(
    "given",
    ["www.example.com", "WWW.Example.COM.", "_acme-challenge.example.com", "a.b", "x" * 63 + ".example"],
)
def test_hostnames_the_box_takes(given: str) -> None:
    assert p.parse_hostname(given) == given.rstrip(".").lower()


@pytest.mark.parametrize(
    "given",
    [
        "",
        "localhost",  # one label: not a static hostname of a zone
        "a..b",
        ".example.com",
        "-www.example.com",
        "www-.example.com",
        "x" * 64 + ".example",
        ("abcdefghi." * 26)[:-1],  # 259 characters
        "www.exämple.com",  # IDN: enter the punycode (xn--...) form
        "www example.com",
        "www.example.com\n",
        " www.example.com",
        "www.example.com/path",
        "192.0.2.1:80",
    ],
)
def test_hostnames_the_box_refuses_with_what_it_expects(given: str) -> None:
    with pytest.raises(ValueError, match=r"hostname"):
        p.parse_hostname(given)


def test_a_hostname_of_253_characters_is_the_longest() -> None:
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(longest) == 253 and p.parse_hostname(longest) == longest
    with pytest.raises(ValueError, match="at most 253"):
        p.parse_hostname(longest + "b")


def test_a_resolvers_chain_is_followed_hop_by_hop() -> None:
    reply = message(
        "www.example.com",
        "A",
        aa=False,
        answer=[
            "www.example.com. 300 CNAME edge.example.net.",
            "edge.example.net. 60 CNAME APP.dyn.example.test.",
            f"{NAME}. 30 A 192.0.2.21",
        ],
    )
    step = p.chain_step(reply, "www.example.com", "A")
    assert [(h.name, h.cname, h.ttl) for h in step.hops] == [
        ("www.example.com", "edge.example.net", 300),
        ("edge.example.net", NAME, 60),
    ]
    assert (step.end, step.values, step.done) == (NAME, ("192.0.2.21",), True)
    chain = Chain("www.example.com", Endpoint("127.0.0.2"), step.hops, step.end, step.values, "NOERROR")
    assert chain.verdict(NAME) == (True, f"www.example.com reaches {NAME} in 2 hop(s)")
    assert chain.verdict("other.dyn.example.test") == (
        False,
        f"the chain ends at {NAME}, not at other.dyn.example.test",
    )


def test_a_chain_cut_short_is_not_done_and_a_loop_is_caught() -> None:
    partial = message(
        "www.example.com", "A", aa=False, answer=["www.example.com. 300 CNAME edge.example.net."]
    )
    step = p.chain_step(partial, "www.example.com", "A")
    assert step.end == "edge.example.net" and not step.done  # ask again from edge.example.net
    negative = message(
        "www.example.com",
        "A",
        rcode=dns.rcode.NXDOMAIN,
        answer=["www.example.com. 300 CNAME gone.example.net."],
        authority=["example.net. 60 SOA a. b. 1 1 1 1 1"],
    )
    assert p.chain_step(negative, "www.example.com", "A").done
    loop = message(
        "a.example", "A", answer=["a.example. 1 CNAME b.example.", "b.example. 1 CNAME a.example."]
    )
    looped = p.chain_step(loop, "a.example", "A")
    assert looped.loop and looped.done


def test_chain_verdicts_say_why_a_hostname_does_not_point_here() -> None:
    here = Endpoint("127.0.0.2")
    assert Chain(NAME, here, rcode="NOERROR", values=("192.0.2.21",)).verdict(NAME) == (
        True,
        f"{NAME} is this record",
    )
    direct = Chain("www.example.com", here, end="www.example.com", values=("192.0.2.9",), rcode="NOERROR")
    assert direct.verdict(NAME) == (False, "www.example.com has no CNAME: it answers 192.0.2.9 itself")
    missing = Chain("www.example.com", here, end="www.example.com", rcode="NXDOMAIN")
    assert missing.verdict(NAME) == (False, "www.example.com does not exist (NXDOMAIN)")
    failed = Chain("www.example.com", here, error="timeout after 1.5 s")
    assert failed.verdict(NAME) == (False, "www.example.com: timeout after 1.5 s")
    assert p.chain_type("CNAME") == "A" and p.chain_type("AAAA") == "AAAA"


def test_following_a_chain_asks_again_where_a_reply_stopped() -> None:
    resolver = Endpoint("192.0.2.53")
    script: Script = {
        ("192.0.2.53", "www.example.com", "A"): message(
            "www.example.com", "A", aa=False, answer=["www.example.com. 300 CNAME edge.example.net."]
        ),
        ("192.0.2.53", "edge.example.net", "A"): message(
            "edge.example.net",
            "A",
            aa=False,
            answer=[f"edge.example.net. 60 CNAME {NAME}.", f"{NAME}. 30 A 192.0.2.21"],
        ),
    }
    chain = asyncio.run(p.follow_chain("www.example.com", "A", resolver, scripted(script, [])))
    assert [h.cname for h in chain.hops] == ["edge.example.net", NAME]
    assert chain.values == ("192.0.2.21",)
    assert p.cname_check_body(chain, NAME).reaches_record is True
    failed = asyncio.run(p.follow_chain("www.example.com", "A", Endpoint("192.0.2.54"), scripted({}, [])))
    assert failed.error == "timeout after 1 s" and p.cname_check_body(failed, NAME).reaches_record is False
