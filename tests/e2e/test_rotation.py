"""Rotating and weighted answers end to end (issue 17): a real dynserver, asked hundreds
of times by dnspython over UDP (every reader: the receive thread, recvmmsg on the event
loop and recvfrom, so the packet cache of each) and TCP, puts each target first as often
as its weight says; a record with ``order = "fixed"`` always answers in config order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.server.test_udp import READERS, use_reader
from tests.support import Server, dynserver, master_file, write_config

ZONE = "rot.example.test"
WEIGHTED = {"192.0.2.1": 3, "192.0.2.2": 1, "192.0.2.3": 1}  # a cycle of 5 answers
FIXED = ("192.0.2.11", "192.0.2.12", "192.0.2.13")
CONFIG = f"""\
[server.rrl]
exempt = ["127.0.0.0/8"]

[zones."{ZONE}".records.www]
type = "A"
targets = [
  {{ name = "a", value = "192.0.2.1", weight = 3 }},
  {{ name = "b", value = "192.0.2.2" }},
  {{ name = "c", value = "192.0.2.3" }},
  {{ name = "backup", value = "192.0.2.9", priority = 2, weight = 50 }},
]

[zones."{ZONE}".records.fixed]
type = "A"
order = "fixed"
targets = [
  {{ name = "a", value = "{FIXED[0]}" }},
  {{ name = "b", value = "{FIXED[1]}" }},
  {{ name = "c", value = "{FIXED[2]}" }},
]
"""


def orders(server: Server, label: str, count: int, tcp: bool = False) -> list[tuple[str, ...]]:
    """The answer's addresses in wire order, for ``count`` queries in a row."""
    query = dns.message.make_query(f"{label}.{ZONE}.", "A")
    found = []
    for _ in range(count):
        query.id = (query.id + 1) & 0xFFFF
        if tcp:
            reply = dns.query.tcp(query, server.host, port=server.port, timeout=2.0)
        else:
            reply = dns.query.udp(query, server.host, port=server.port, timeout=2.0)
        (rrset,) = [r for r in reply.answer if r.rdtype == dns.rdatatype.A]
        found.append(tuple(r.to_text() for r in rrset))
    return found


@pytest.mark.parametrize("reader", READERS)
def test_first_places_follow_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    use_reader(reader, monkeypatch)  # the server process inherits the environment
    config = write_config(tmp_path, {ZONE: master_file(ZONE, "ns1 IN A 127.0.0.1\n")}, CONFIG)
    with dynserver(config, zone=ZONE) as server:
        answers = orders(server, "www", 500)
        assert {frozenset(a) for a in answers} == {frozenset(WEIGHTED)}, "the best group only"
        firsts = Counter(a[0] for a in answers)
        # 100 cycles of 5; a reply lost and asked again costs one turn at most.
        for address, weight in WEIGHTED.items():
            assert abs(firsts[address] - 100 * weight) <= 3, firsts
        for a in set(answers):  # the others follow in cyclic order
            start = list(WEIGHTED).index(a[0])
            assert list(a) == (list(WEIGHTED) * 2)[start : start + 3]
        assert len(set(orders(server, "www", 5, tcp=True))) == 3, "TCP answers rotate too"
        assert set(orders(server, "fixed", 20)) == {FIXED}
        assert set(orders(server, "fixed", 3, tcp=True)) == {FIXED}
