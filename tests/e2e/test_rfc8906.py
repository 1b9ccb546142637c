"""RFC 8906 §8: the whole list of checks, as the RFC writes them with dig, against dynserver
and against NSD (the reference: every case NSD passes, dynserver passes).

Each row is the section, dig's options from the RFC, and what the reply must show: its
status, whether it answers with the SOA, EDNS absent or of version 0, and no option or
flag echoed that the query made up.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.test_differential_nsd import NSD_CONF, NSD_ZONE
from tests.support import (
    Server,
    dynserver,
    free_port,
    loopback,
    master_file,
    require_program,
    server_process,
    write_config,
)

pytestmark = pytest.mark.slow

ZONE = "rfc8906.example.test"


@dataclass(frozen=True)
class Case:
    section: str
    options: str  # dig's options, as RFC 8906 §8 gives them
    status: str
    soa: bool = True  # the SOA in the answer section
    edns: bool = False  # an OPT in the reply, version 0


BASIC = "+noedns +noad +norec"
EDNS0 = "+edns=0 +nocookie +noad +norec"
EDNS1 = "+edns=1 +noednsneg +nocookie +noad +norec"
CASES = [
    Case("8.1.1 zone configured", f"{BASIC} soa", "NOERROR"),
    Case("8.1.2 unknown type", f"{BASIC} type1000", "NOERROR", soa=False),
    Case("8.1.3.1 CD=1", f"{BASIC} +cd soa", "NOERROR"),
    Case("8.1.3.2 AD=1", "+noedns +norec +ad soa", "NOERROR"),
    Case("8.1.3.3 reserved Z bit", f"{BASIC} +zflag soa", "NOERROR"),
    Case("8.1.4 unknown opcode", "+noedns +noad +opcode=15 +norec +header-only", "NOTIMP", soa=False),
    Case("8.1.5 TCP", f"{BASIC} +tcp soa", "NOERROR"),
    Case("8.2.1 minimal EDNS", f"{EDNS0} soa", "NOERROR", edns=True),
    Case("8.2.2 EDNS version negotiation", f"{EDNS1} soa", "BADVERS", soa=False, edns=True),
    Case("8.2.3 unknown EDNS option", f"{EDNS0} +ednsopt=100 soa", "NOERROR", edns=True),
    Case("8.2.4 unknown EDNS flag", f"{EDNS0} +ednsflags=0x80 soa", "NOERROR", edns=True),
    Case("8.2.5 version and unknown flag", f"{EDNS1} +ednsflags=0x80 soa", "BADVERS", soa=False, edns=True),
    Case("8.2.6 version and unknown option", f"{EDNS1} +ednsopt=100 soa", "BADVERS", soa=False, edns=True),
    Case(
        "8.2.7 truncated responses",
        f"{EDNS0} +dnssec +bufsize=512 +ignore dnskey",
        "NOERROR",
        soa=False,
        edns=True,
    ),
    Case("8.2.8 DO=1", f"{EDNS0} +dnssec soa", "NOERROR", edns=True),
    Case("8.2.9 version and DO=1", f"{EDNS1} +dnssec soa", "BADVERS", soa=False, edns=True),
    Case(
        "8.2.10 several EDNS options",
        "+edns=0 +noad +norec +cookie +nsid +expire +subnet=0.0.0.0/0 soa",
        "NOERROR",
        edns=True,
    ),
]


@pytest.fixture(scope="module")
def zone_text() -> str:
    return master_file(ZONE, "www IN A 192.0.2.1\n")


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory, zone_text: str) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("dynserver")
    with dynserver(write_config(folder, {ZONE: zone_text}), zone=ZONE) as server:
        yield server


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory, zone_text: str) -> Iterator[Server]:
    program = require_program("nsd", "nsd")
    run = tmp_path_factory.mktemp("nsd")
    (run / f"{ZONE}.zone").write_text(zone_text)
    host = loopback()
    port = free_port(host)
    conf = run / "nsd.conf"
    conf.write_text(
        NSD_CONF.format(host=host, port=port, run=run, edns_size=1232) + NSD_ZONE.format(zone=ZONE)
    )
    with server_process([program, "-d", "-c", str(conf)], host, port, ZONE, run / "nsd.out") as server:
        yield server


def dig(server: Server, options: str) -> str:
    program = require_program("dig", "bind9-dnsutils")
    command = [program, f"@{server.host}", "-p", str(server.port), "+time=3", "+tries=1", *options.split()]
    if "+header-only" not in options:
        command.append(ZONE)
    return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout


def check(case: Case, output: str) -> None:
    status = re.search(r"status: (\w+)", output)
    assert status is not None, output
    assert status.group(1) == case.status, output
    answer = re.search(r";; ANSWER SECTION:\n(.*?)\n\n", output, re.DOTALL)
    has_soa = answer is not None and re.search(r"\sIN\s+SOA\s", answer.group(1)) is not None
    assert has_soa == case.soa, output
    edns = re.search(r"EDNS: version: (\d+), flags:([^;]*);", output)
    if case.edns:
        assert edns is not None and edns.group(1) == "0", output
        assert "MBZ" not in output, "an unknown EDNS flag is not echoed"
        assert "OPT=100" not in output, "an unknown option is not echoed"
        if "+dnssec" in case.options and case.status == "NOERROR":
            assert "do" in edns.group(2).split(), "DO is echoed"
    else:
        assert edns is None, output
    assert "MBZ" not in output.split("OPT PSEUDOSECTION")[0], "the Z bit is not echoed"


@pytest.mark.parametrize("case", CASES, ids=[case.section for case in CASES])
def test_rfc_8906_section_8(case: Case, ours: Server, nsd: Server) -> None:
    check(case, dig(nsd, case.options))  # the reference passes it ...
    check(case, dig(ours, case.options))  # ... and so do we


def test_every_check_of_section_8_is_listed() -> None:
    sections = {case.section.split()[0] for case in CASES}
    assert sections == {
        *(f"8.1.{n}" for n in (1, 2, 4, 5)),
        *(f"8.1.3.{n}" for n in (1, 2, 3)),
        *(f"8.2.{n}" for n in range(1, 11)),
    }
