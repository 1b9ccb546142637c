"""Real clients against a running dynserver: dig, kdig, dnspython, and raw sockets.

These check what a client sees on the wire (section 3 of the answering contract): header
bits, EDNS, size limits and truncation, the question echoed byte for byte, bad packets
answered or dropped without stopping the server, and RFC 7766 TCP behaviour (reuse,
pipelining, idle and message timeouts, the per-client connection limit).

Every TCP connection is made from its own 127.x.y.z source address, so the per-client
limit of one test never counts another test's connections.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from tests.support import Server, dynserver, loopback, require_program, tcp_read, tcp_send

DATA = Path(__file__).parent / "data"
ZONE = "diff.example.test"
CHAOS_VERSION = "dynserver e2e"
CHAOS_HOSTNAME = "host-" + "x" * 300  # longer than one TXT string: sent as two
# Short TCP timeouts so the tests that wait for them stay quick.
IDLE_TIMEOUT = 1.0
MESSAGE_TIMEOUT = 1.0
PER_CLIENT = 2


def _config(folder: Path, server_keys: str) -> Path:
    (folder / f"{ZONE}.zone").write_text((DATA / f"{ZONE}.zone").read_text())
    config = folder / "dynserver.toml"
    config.write_text(
        f'[server]\ndns = ["127.0.0.1:0"]\n{server_keys}\n[zones."{ZONE}"]\nfile = "{ZONE}.zone"\n'
    )
    return config


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """dynserver with CHAOS version published and short TCP limits."""
    config = _config(
        tmp_path_factory.mktemp("clients"),
        f'chaos_version = "{CHAOS_VERSION}"\n'
        f'chaos_hostname = "{CHAOS_HOSTNAME}"\n'
        f"tcp_idle_timeout = {IDLE_TIMEOUT}\n"
        f"tcp_message_timeout = {MESSAGE_TIMEOUT}\n"
        f"tcp_max_connections_per_client = {PER_CLIENT}\n",
    )
    with dynserver(config, zone=ZONE) as running:
        yield running


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """dynserver with every [server] setting at its default."""
    with dynserver(_config(tmp_path_factory.mktemp("plain"), ""), zone=ZONE) as running:
        yield running


# -- helpers ------------------------------------------------------------------------------


def name(label: str) -> str:
    return f"{label}.{ZONE}." if label else f"{ZONE}."


def udp_exchange(server: Server, wire: bytes, timeout: float = 2.0) -> bytes | None:
    """Send one datagram; the reply, or None when none comes within ``timeout``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(wire, (server.host, server.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def tcp_connect(server: Server) -> socket.socket:
    """A TCP connection from a fresh source address (a client of its own)."""
    return socket.create_connection((server.host, server.port), timeout=5.0, source_address=(loopback(), 0))


def closed_by_peer(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closes ``sock`` (EOF or reset), or None if it does not."""
    started = time.monotonic()
    sock.settimeout(within)
    try:
        data = sock.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started
    except TimeoutError:
        return None
    assert data == b"", f"unexpected data from the server: {data!r}"
    return time.monotonic() - started


def query(
    qname: str, qtype: str = "A", *, rd: bool = True, edns: int | None = None, **edns_args: object
) -> bytes:
    message = dns.message.make_query(qname, qtype, use_edns=False)
    message.flags = dns.flags.RD if rd else 0
    if edns is not None:
        message.use_edns(0, payload=edns, **edns_args)  # type: ignore[arg-type]
    return message.to_wire()


def parse(wire: bytes) -> dns.message.Message:
    reply = dns.message.from_wire(wire)
    assert not reply.flags & dns.flags.RA, "RA must never be set: we are not a resolver"
    return reply


def answers(reply: dns.message.Message) -> set[str]:
    return {rdata.to_text() for rrset in reply.answer for rdata in rrset}


def header_only(wire: bytes) -> tuple[int, int, int, int]:
    """(id, flags, qdcount, ancount) of a reply, for replies dnspython may refuse to parse."""
    ident, flags, qdcount, ancount = struct.unpack_from("!HHHH", wire)
    return ident, flags, qdcount, ancount


def still_answering(server: Server) -> None:
    reply = udp_exchange(server, query(name("www")))
    assert reply is not None, "the server stopped answering"
    assert answers(parse(reply)) == {"192.0.2.10"}


# -- dig and kdig -------------------------------------------------------------------------


@dataclass
class ToolReply:
    """What dig or kdig printed: status, header flags and the answer section."""

    status: str
    flags: set[str]
    answer: list[tuple[str, str, str]]  # (owner, type, rdata)


def run_tool(program: str, server: Server, *args: str) -> ToolReply:
    command = [program, f"@{server.host}", "-p", str(server.port), "-b", loopback(), "+retry=0", "+time=3"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=30, check=True)
    return parse_tool_output(done.stdout)


def parse_tool_output(text: str) -> ToolReply:
    """Parse dig's or kdig's text output (they differ only in punctuation and case)."""
    status = re.search(r"status: (\w+)", text)
    flags = re.search(r"^;; flags: ([a-z ]*);", text, re.MULTILINE | re.IGNORECASE)
    assert status and flags, f"unexpected output:\n{text}"
    answer: list[tuple[str, str, str]] = []
    section = re.search(r";; ANSWER SECTION:\n(.*?)(?:\n\n|\Z)", text, re.DOTALL)
    if section:
        for line in section.group(1).splitlines():
            owner, _ttl, _class, rtype, rdata = line.split(None, 4)
            answer.append((owner.lower(), rtype, rdata))
    return ToolReply(status=status.group(1), flags=set(flags.group(1).split()), answer=answer)


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dig(server: Server, transport: str) -> None:
    dig = require_program("dig", "dnsutils")
    reply = run_tool(dig, server, transport, name("www"), "A")
    assert (reply.status, reply.flags) == ("NOERROR", {"qr", "aa", "rd"})
    assert reply.answer == [(name("www"), "A", "192.0.2.10")]

    reply = run_tool(dig, server, transport, "+norec", name("chain1"), "AAAA")
    assert (reply.status, reply.flags) == ("NOERROR", {"qr", "aa"})
    assert reply.answer == [
        (name("chain1"), "CNAME", name("chain2")),
        (name("chain2"), "CNAME", name("chain3")),
        (name("chain3"), "CNAME", name("www")),
        (name("www"), "AAAA", "2001:db8::10"),
    ]

    reply = run_tool(dig, server, transport, name("nothing"), "A")
    assert (reply.status, reply.answer) == ("NXDOMAIN", [])
    reply = run_tool(dig, server, transport, "www.outside.test.", "A")
    assert (reply.status, reply.flags) == ("REFUSED", {"qr", "rd"})


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_kdig(server: Server, transport: str) -> None:
    kdig = require_program("kdig", "knot-dnsutils")
    reply = run_tool(kdig, server, transport, name("foo.wild"), "TXT")
    assert (reply.status, reply.flags) == ("NOERROR", {"qr", "aa", "rd"})
    assert reply.answer == [(name("foo.wild"), "TXT", '"from the wildcard"')]

    reply = run_tool(kdig, server, transport, "+norec", name("host.sub"), "A")
    assert (reply.status, reply.flags, reply.answer) == ("NOERROR", {"qr"}, [])  # a referral

    reply = run_tool(kdig, server, transport, name("b.c.ent"), "A")
    assert (reply.status, reply.answer) == ("NOERROR", [])  # an empty non-terminal: NODATA


def test_dig_big_answer_retries_over_tcp(server: Server) -> None:
    """dig sees TC over UDP and retries over TCP by itself, getting all 200 records."""
    dig = require_program("dig", "dnsutils")
    reply = run_tool(dig, server, name("huge"), "ANY")
    assert reply.status == "NOERROR"
    assert len(reply.answer) in (100, 200)  # ANY: one RRset (RFC 8482), A or AAAA
    reply = run_tool(dig, server, "+noedns", name("huge"), "AAAA")
    assert len(reply.answer) == 100


# -- dnspython over UDP and TCP -----------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True])
def test_dnspython(server: Server, tcp: bool) -> None:
    send = dns.query.tcp if tcp else dns.query.udp
    q = dns.message.make_query(name("_sip._udp"), "SRV")
    reply = send(q, server.host, port=server.port, timeout=3)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.RD and not reply.flags & dns.flags.RA
    assert answers(reply) == {"10 60 5060 sip.diff.example.test."}

    q = dns.message.make_query(name("nothing"), "A", use_edns=0)
    reply = send(q, server.host, port=server.port, timeout=3)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    [soa] = reply.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == 60  # RFC 2308: min(SOA TTL, MINIMUM)
    assert reply.edns == 0 and reply.payload == 1232


# -- TCP (RFC 7766) ----------------------------------------------------------------------


def test_tcp_many_queries_on_one_connection(server: Server) -> None:
    with tcp_connect(server) as sock:
        for label in ("www", "mail", "ns1", "sip", "www"):
            tcp_send(sock, query(name(label)))
            reply = parse(tcp_read(sock))
            assert reply.rcode() == dns.rcode.NOERROR and len(answers(reply)) == 1


def test_tcp_pipelined(server: Server) -> None:
    """Ten queries sent back to back in one write; ten replies, each to its query."""
    labels = ["www", "mail", "ns1", "sip", "nothing", "alias", "big", "foo.wild", "", "outside"]
    messages = [dns.message.make_query(name(label), "A") for label in labels]
    with tcp_connect(server) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (m.to_wire() for m in messages)))
        replies = [parse(tcp_read(sock)) for _ in messages]
    assert sorted(r.id for r in replies) == sorted(m.id for m in messages)
    by_id = {r.id: r for r in replies}
    for message in messages:
        reply = by_id[message.id]
        assert reply.question == message.question
    assert answers(by_id[messages[0].id]) == {"192.0.2.10"}
    assert len(answers(by_id[messages[6].id])) == 40  # no size limit over TCP


def test_tcp_idle_timeout_closes_the_connection(server: Server) -> None:
    with tcp_connect(server) as sock:
        tcp_send(sock, query(name("www")))
        tcp_read(sock)
        waited = closed_by_peer(sock, within=IDLE_TIMEOUT + 4)
    assert waited is not None, "an idle connection was kept open"
    assert IDLE_TIMEOUT * 0.8 <= waited <= IDLE_TIMEOUT + 2


def test_tcp_connection_limit_per_client(server: Server) -> None:
    source = loopback()
    address = (server.host, server.port)
    first = socket.create_connection(address, timeout=5, source_address=(source, 0))
    second = socket.create_connection(address, timeout=5, source_address=(source, 0))
    try:
        for sock in (first, second):  # both admitted and served
            tcp_send(sock, query(name("www")))
            assert answers(parse(tcp_read(sock))) == {"192.0.2.10"}
        with socket.create_connection(address, timeout=5, source_address=(source, 0)) as third:
            assert closed_by_peer(third, within=2) is not None, "a third connection was accepted"
        with tcp_connect(server) as other:  # another client is not affected
            tcp_send(other, query(name("www")))
            assert answers(parse(tcp_read(other))) == {"192.0.2.10"}
        tcp_send(first, query(name("mail")))  # the admitted ones still work
        assert answers(parse(tcp_read(first))) == {"192.0.2.25"}
    finally:
        first.close()
        second.close()


def test_tcp_slow_sender_is_closed(server: Server) -> None:
    """A message dribbled a byte at a time, never idle for long, still gets a deadline."""
    wire = query(name("www"))
    framed = struct.pack("!H", len(wire)) + wire  # ~40 bytes: ~6 s at 0.15 s a byte
    started = time.monotonic()
    closed_after: float | None = None
    with tcp_connect(server) as sock:
        for byte in framed[:-1]:  # never complete the message
            try:
                sock.sendall(bytes([byte]))
            except (ConnectionResetError, BrokenPipeError):
                closed_after = time.monotonic() - started
                break
            if closed_by_peer(sock, within=0.15) is not None:
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "a slow sender was never cut off"
    assert closed_after < MESSAGE_TIMEOUT + 1.5


# -- UDP size and truncation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "qtype", "edns", "limit", "truncated", "records"),
    [
        ("big", "A", None, 512, True, 40),  # 690 bytes
        ("big", "A", 1232, 1232, False, 40),
        ("big", "A", 600, 600, True, 40),
        ("big", "A", 100, 512, True, 40),  # below the RFC 6891 minimum: 512
        ("huge", "AAAA", 4096, 1232, True, 100),  # 2.8 kB: never more than 1232 over UDP
        ("bigtxt", "TXT", None, 512, True, 4),
        ("bigtxt", "TXT", 1232, 1232, False, 4),
        ("hugetxt", "TXT", 65535, 1232, True, 8),
        ("longtxt", "TXT", None, 512, True, 1),
        ("longtxt", "TXT", 512, 512, True, 1),
        ("www", "A", None, 512, False, 1),
    ],
)
def test_udp_size_limits_and_truncation(
    server: Server, label: str, qtype: str, edns: int | None, limit: int, truncated: bool, records: int
) -> None:
    wire = query(name(label), qtype, edns=edns)
    udp = udp_exchange(server, wire)
    assert udp is not None
    assert len(udp) <= limit
    reply = parse(udp)
    assert bool(reply.flags & dns.flags.TC) == truncated
    assert (reply.edns >= 0) == (edns is not None), "OPT is kept in a truncated reply"
    full = parse(_tcp_once(server, wire))
    assert not full.flags & dns.flags.TC
    assert len(answers(full)) == records
    if not truncated:
        assert answers(reply) == answers(full)


# -- the question, header bits and odd packets --------------------------------------------


@pytest.mark.parametrize(
    "qname",
    [
        "wWw.DiFf.ExAmPlE.tEsT.",
        "NoThInG.dIfF.eXaMpLe.TeSt.",
        "X.wIlD.DIFF.example.TEST.",
        "WwW.OuTsIdE.tEsT.",
    ],
)
@pytest.mark.parametrize("edns", [None, 1232])
def test_question_echoed_byte_for_byte(server: Server, qname: str, edns: int | None) -> None:
    """0x20 randomisation: resolvers check the case of every letter of the echo."""
    wire = query(qname, edns=edns)
    end = 12 + len(dns.name.from_text(qname).to_wire()) + 4
    udp = udp_exchange(server, wire)
    assert udp is not None and udp[12:end] == wire[12:end]
    assert _tcp_once(server, wire)[12:end] == wire[12:end]


def test_rd_copied_and_ra_never_set(server: Server) -> None:
    for rd in (False, True):
        for qname in (name("www"), name("nothing"), "www.outside.test.", name("host.sub")):
            reply = udp_exchange(server, query(qname, rd=rd))
            assert reply is not None
            flags = parse(reply).flags
            assert bool(flags & dns.flags.RD) == rd


def test_out_of_zone_is_refused(server: Server) -> None:
    for qname in ("www.outside.test.", "example.test.", ".", "xdiff.example.test."):
        reply = udp_exchange(server, query(qname, rd=True))
        assert reply is not None
        message = parse(reply)
        assert message.rcode() == dns.rcode.REFUSED
        assert not message.answer and not message.authority
        assert not message.flags & dns.flags.AA


def test_responses_get_no_reply(server: Server) -> None:
    """QR=1: answering a response could start a loop between two servers."""
    message = dns.message.make_query(name("www"), "A")
    message.flags |= dns.flags.QR
    assert udp_exchange(server, message.to_wire(), timeout=0.5) is None
    still_answering(server)


@pytest.mark.parametrize("opcode", [1, 2, 3, 6, 15])  # IQUERY, STATUS, unassigned
def test_unknown_opcode_is_notimp(server: Server, opcode: int) -> None:
    message = dns.message.make_query(name("www"), "A")
    message.set_opcode(opcode)
    reply = udp_exchange(server, message.to_wire())
    assert reply is not None
    ident, flags, _, ancount = header_only(reply)
    assert ident == message.id and flags & 0x8000 and (flags >> 11) & 0xF == opcode
    assert flags & 0xF == dns.rcode.NOTIMP and ancount == 0


@pytest.mark.parametrize("qdcount", [0, 2])
def test_qdcount_other_than_one_is_formerr(server: Server, qdcount: int) -> None:
    base = dns.message.make_query(name("www"), "A").to_wire()
    question = base[12:]
    wire = base[:4] + struct.pack("!H", qdcount) + base[6:12] + question * qdcount
    reply = udp_exchange(server, wire)
    assert reply is not None
    ident, flags, _, ancount = header_only(reply)
    assert ident == struct.unpack_from("!H", wire)[0] and flags & 0x8000
    assert flags & 0xF == dns.rcode.FORMERR and ancount == 0


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"\x12\x34\x01\x00\x00", b"\xff" * 11])
def test_garbage_shorter_than_a_header_is_dropped(server: Server, garbage: bytes) -> None:
    assert udp_exchange(server, garbage, timeout=0.3) is None
    still_answering(server)


def test_malformed_body_is_formerr_and_server_keeps_answering(server: Server) -> None:
    wire = query(name("www"))
    for broken in (wire[:-3], wire + b"\x00\x01", wire[:12] + b"\xc0\x0c" + wire[-4:]):
        reply = udp_exchange(server, broken)
        assert reply is not None and reply[3] & 0xF == dns.rcode.FORMERR
    still_answering(server)


# -- EDNS(0) ------------------------------------------------------------------------------


def test_edns_version_1_gets_badvers(server: Server) -> None:
    message = dns.message.make_query(name("www"), "A", use_edns=1)
    reply = udp_exchange(server, message.to_wire())
    assert reply is not None
    parsed = parse(reply)
    assert parsed.rcode() == dns.rcode.BADVERS  # 16: 0 in the header, 1 in the OPT
    assert parsed.edns == 0, "BADVERS carries the version we do support (RFC 6891 6.1.3)"
    assert not parsed.answer


def test_unknown_edns_options_are_not_echoed(server: Server) -> None:
    options = [
        dns.edns.GenericOption(65001, b"private"),
        dns.edns.GenericOption(dns.edns.NSID, b""),
        # (COOKIE is answered now, with a server cookie: tests/server/ and docs/security.md)
    ]
    wire = query(name("www"), edns=1232, options=options)
    for reply in (udp_exchange(server, wire), _tcp_once(server, wire)):
        assert reply is not None
        parsed = parse(reply)
        assert parsed.rcode() == dns.rcode.NOERROR and answers(parsed) == {"192.0.2.10"}
        assert parsed.edns == 0 and not parsed.options


def test_unknown_edns_flags_are_not_echoed(server: Server) -> None:
    """RFC 6891 6.1.4: the Z bits are ignored by responders and cleared in replies."""
    for label in ("www", "big"):  # a templated reply, and one truncated on the full path
        wire = query(name(label), edns=512, ednsflags=dns.flags.DO | 0x4000 | 0x0001)
        reply = udp_exchange(server, wire)
        assert reply is not None
        assert parse(reply).ednsflags == dns.flags.DO


@pytest.mark.parametrize("do", [False, True])
def test_do_bit_echoed(server: Server, do: bool) -> None:
    for label in ("www", "nothing", "big"):
        wire = query(name(label), edns=1232, ednsflags=dns.flags.DO if do else 0)
        reply = udp_exchange(server, wire)
        assert reply is not None
        assert bool(parse(reply).ednsflags & dns.flags.DO) == do


def test_no_opt_without_edns(server: Server) -> None:
    reply = udp_exchange(server, query(name("www")))
    assert reply is not None and parse(reply).edns == -1


def _tcp_once(server: Server, wire: bytes) -> bytes:
    with tcp_connect(server) as sock:
        tcp_send(sock, wire)
        return tcp_read(sock)


# -- CHAOS, zone transfers ----------------------------------------------------------------


def chaos(server: Server, qname: str) -> dns.message.Message:
    message = dns.message.make_query(qname, "TXT", rdclass=dns.rdataclass.CH)
    reply = udp_exchange(server, message.to_wire())
    assert reply is not None
    return parse(reply)


def test_chaos_refused_by_default(plain: Server) -> None:
    for qname in ("version.bind.", "hostname.bind.", "id.server.", "version.server."):
        assert chaos(plain, qname).rcode() == dns.rcode.REFUSED
    dig = require_program("dig", "dnsutils")
    assert run_tool(dig, plain, "version.bind", "CH", "TXT").status == "REFUSED"


def test_chaos_version_when_configured(server: Server) -> None:
    reply = chaos(server, "VERSION.bind.")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    [rrset] = reply.answer
    assert rrset.rdclass == dns.rdataclass.CH and answers(reply) == {f'"{CHAOS_VERSION}"'}
    assert chaos(server, "version.bind.").rcode() == dns.rcode.NOERROR
    dig = require_program("dig", "dnsutils")
    reply_text = run_tool(dig, server, "version.bind", "CH", "TXT")
    assert reply_text.status == "NOERROR" and reply_text.answer[0][2] == f'"{CHAOS_VERSION}"'


def test_chaos_text_longer_than_one_string(server: Server) -> None:
    """RFC 1035 3.3.14: a TXT holds strings of up to 255 octets; a long text is split."""
    for qname in ("hostname.bind.", "id.server."):
        [rrset] = chaos(server, qname).answer
        [rdata] = rrset
        assert [len(part) for part in rdata.strings] == [255, len(CHAOS_HOSTNAME) - 255]
        assert b"".join(rdata.strings).decode() == CHAOS_HOSTNAME


@pytest.mark.parametrize("qtype", ["AXFR", "IXFR"])
def test_zone_transfers_refused(server: Server, qtype: str) -> None:
    message = dns.message.make_query(name(""), qtype)
    if qtype == "IXFR":  # RFC 1995: the client's SOA goes in the authority section
        soa = dns.rrset.from_text(name(""), 0, "IN", "SOA", ". . 1 0 0 0 0")
        message.authority.append(soa)
    for reply in (_tcp_once(server, message.to_wire()), udp_exchange(server, message.to_wire())):
        assert reply is not None
        parsed = parse(reply)
        assert parsed.rcode() == dns.rcode.REFUSED and not parsed.answer
