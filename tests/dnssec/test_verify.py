"""The whole signed zone, as a transfer carries it, passes ldns-verify-zone and BIND's
dnssec-verify: every RRSIG valid, the NSEC3 chain complete and in order, NSEC3PARAM
matching, DNSKEY self-signed; after a change signed incrementally too."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import dns.message
import pytest

from dynserver.dns import wire
from dynserver.dns.serial import next_serial
from dynserver.dns.zone import rrset_from_texts
from dynserver.xfr.records import record_count, soa_wire, zone_body
from tests.dnssec.support import signed_zones

VERIFIERS = {
    "ldns-verify-zone": ["ldns-verify-zone", "-V", "2"],
    "dnssec-verify": ["dnssec-verify", "-q", "-z", "-o", "dyn.example.test."],
}


def zone_text(zone: object) -> str:
    """The zone as AXFR sends it (SOA, body), in master file form."""
    lines = []
    for record in [soa_wire(zone), *zone_body(zone)]:  # type: ignore[arg-type]
        message = dns.message.from_wire(b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00" + record)
        lines.append(message.answer[0].to_text())
    return "\n".join(lines) + "\n"


def verify(tool: str, folder: Path, text: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing (Makefile TEST_DEBS)")
        pytest.skip(f"{tool} is not installed")
    path = folder / f"zone-{tool}"
    path.write_text(text)
    result = subprocess.run([*VERIFIERS[tool], str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tool", sorted(VERIFIERS))
def test_signed_zone_verifies(tmp_path: Path, tool: str) -> None:
    zones, signers = signed_zones(tmp_path)
    origin = (b"dyn", b"example", b"test")
    zone = zones[origin]
    text = zone_text(zone)
    assert text.count(" IN NSEC3 ") == len(zone.signed.chain)  # type: ignore[union-attr]
    assert record_count(zone) == len(text.splitlines())
    verify(tool, tmp_path, text)
    # A change: a new name (a new NSEC3 between two), a changed RRset, a name gone.
    signer = signers[origin]
    www = rrset_from_texts((b"www", *origin), wire.TYPE_A, 300, ["192.0.2.77"])
    new = rrset_from_texts((b"new", b"deep", *origin), wire.TYPE_A, 300, ["192.0.2.78"])
    changed = zone.with_nodes({www.name: {1: www}, new.name: {1: new}, (b"mail", *origin): {}})
    changed = changed.without([(b"mail", *origin)]).with_serial(next_serial(zone.serial))
    updated, _ = signer.update(changed, [www.name, new.name, (b"mail", *origin)], time.time())
    assert (b"deep", *origin) in updated.signed.hashes  # type: ignore[union-attr]  # the new ENT
    assert (b"mail", *origin) not in updated.signed.hashes  # type: ignore[union-attr]
    verify(tool, tmp_path, zone_text(updated))
    again = signer.sign(updated, time.time())
    assert again.signed.chain == updated.signed.chain  # type: ignore[union-attr]
