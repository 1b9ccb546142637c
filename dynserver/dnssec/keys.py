"""DNSSEC keys: generation, the key's states in time, DS/DNSKEY, BIND's key files.

One key is one combined signing key (CSK, flags 257) by default. What a key does is read
from its times, as BIND's ``dnssec-settime`` sets them (RFC 7583 names the same events):
published (in the DNSKEY RRset) from ``publish`` until ``delete``, signing from
``activate`` until ``inactive``, and announced to the parent (CDS, CDNSKEY) from
``sync_publish`` until ``sync_delete``. A rollover is therefore a matter of setting times
on keys; the signer follows them.

Files are BIND's: ``K<zone>.+<alg>+<tag>.key`` holds the DNSKEY record and
``.private`` the private key with the times (``Private-key-format: v1.3``), so
``dnssec-signzone -K DIR`` signs with the very keys dynserver uses. The private key never
appears in ``repr`` or in a log line.
"""

from __future__ import annotations

import base64
import calendar
import functools
import hashlib
import struct
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from dynserver.dns import wire
from dynserver.dnssec.times import FIELDS, KeyStates
from dynserver.errors import ConfigError
from dynserver.types import Name

ECDSAP256SHA256 = 13
ED25519 = 15
ALGORITHMS = {ECDSAP256SHA256: "ECDSAP256SHA256", ED25519: "ED25519"}
CSK_FLAGS = 257  # ZONE + SEP: a key that signs the zone and is the parent's DS target
ZONE_FLAGS = 256
PROTOCOL = 3
DIGEST_SHA256 = 2
TYPE_DNSKEY = 48
TYPE_CDS = 59
TYPE_CDNSKEY = 60
_BIND_TIMES = {
    "created": "Created",
    "publish": "Publish",
    "activate": "Activate",
    "inactive": "Inactive",
    "delete": "Delete",
    "sync_publish": "SyncPublish",
    "sync_delete": "SyncDelete",
}
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeyFileError(ConfigError):
    """A key file (or a stored key) that cannot be read: which one and why."""


@dataclass(frozen=True)
class Key(KeyStates):
    """One DNSSEC key of one zone. Times are Unix seconds; None: never (or not set)."""

    zone: Name
    algorithm: int
    flags: int
    private: PrivateKey = field(repr=False, compare=False)
    public: bytes  # the DNSKEY's public key field
    created: float | None = None
    publish: float | None = None
    activate: float | None = None
    inactive: float | None = None
    delete: float | None = None
    sync_publish: float | None = None
    sync_delete: float | None = None

    @functools.cached_property
    def rdata(self) -> bytes:
        """The DNSKEY RDATA in wire form."""
        return struct.pack("!HBB", self.flags, PROTOCOL, self.algorithm) + self.public

    @functools.cached_property
    def tag(self) -> int:
        return key_tag(self.rdata)

    def ds_rdata(self, digest: int = DIGEST_SHA256) -> bytes:
        """The DS RDATA for this key (RFC 4034 5.1.4): SHA-256 unless told otherwise."""
        if digest != DIGEST_SHA256:
            raise ValueError(f"digest type {digest} is not supported (only 2, SHA-256)")
        value = hashlib.sha256(wire.name_to_wire(self.zone) + self.rdata).digest()
        return struct.pack("!HBB", self.tag, self.algorithm, digest) + value

    def ds_text(self) -> str:
        value = self.ds_rdata()[4:].hex().upper()
        return f"{wire.name_to_text(self.zone)} IN DS {self.tag} {self.algorithm} {DIGEST_SHA256} {value}"

    def dnskey_text(self) -> str:
        public = base64.b64encode(self.public).decode()
        return f"{wire.name_to_text(self.zone)} IN DNSKEY {self.flags} {PROTOCOL} {self.algorithm} {public}"

    def sign(self, data: bytes) -> bytes:
        """The RRSIG signature field over ``data`` (RFC 6605: r || s; RFC 8080: raw)."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(data)
        der = self.private.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def key_tag(rdata: bytes) -> int:
    """RFC 4034 Appendix B."""
    total = 0
    for i, byte in enumerate(rdata):
        total += byte if i & 1 else byte << 8
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def generate(
    zone: Name, algorithm: int = ECDSAP256SHA256, now: float | None = None, avoid: Collection[int] = ()
) -> Key:
    """A new CSK, published, signing and announced to the parent from ``now``; its tag is
    none of ``avoid`` (the zone's other keys: RFC 7583 rollovers tell keys by tag)."""
    at = float(int(time.time() if now is None else now))
    while True:
        private: PrivateKey
        if algorithm == ECDSAP256SHA256:
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == ED25519:
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(f"algorithm {algorithm} is not supported (13 or 15)")
        key = Key(
            zone=zone,
            algorithm=algorithm,
            flags=CSK_FLAGS,
            private=private,
            public=_public_bytes(private),
            created=at,
            publish=at,
            activate=at,
            sync_publish=at,
        )
        if key.tag not in avoid:
            return key


def with_times(key: Key, **times: float | None) -> Key:
    """The key with some of its times changed (``publish=..., inactive=...``)."""
    unknown = set(times) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a key time: {', '.join(sorted(unknown))}")
    return replace(key, **times)  # type: ignore[arg-type]


def _public_bytes(private: PrivateKey) -> bytes:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return point[1:]  # RFC 6605 4: x || y, without the 0x04 prefix


# -- BIND's key files ------------------------------------------------------------------


def key_basename(key: Key) -> str:
    """``Kexample.org.+013+12345``: BIND's name for the key's two files."""
    return f"K{wire.name_to_text(key.zone)}+{key.algorithm:03d}+{key.tag:05d}"


def _stamp(value: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(value))


def _parse_stamp(text: str) -> float:
    return float(calendar.timegm(time.strptime(text.strip(), "%Y%m%d%H%M%S")))


def key_file_text(key: Key) -> str:
    kind = "key-signing" if key.flags & 1 else "zone-signing"
    lines = [f"; This is a {kind} key, keyid {key.tag}, for {wire.name_to_text(key.zone)}"]
    for attr in FIELDS:
        value = getattr(key, attr)
        if value is not None:
            lines.append(f"; {_BIND_TIMES[attr]}: {_stamp(value)} ({time.asctime(time.gmtime(value))})")
    lines.append(key.dnskey_text())
    return "\n".join(lines) + "\n"


def private_file_text(key: Key) -> str:
    private = key.private
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    else:
        raw = private.private_numbers().private_value.to_bytes(32, "big")
    lines = [
        "Private-key-format: v1.3",
        f"Algorithm: {key.algorithm} ({ALGORITHMS[key.algorithm]})",
        f"PrivateKey: {base64.b64encode(raw).decode()}",
    ]
    for attr in FIELDS:
        value = getattr(key, attr)
        if value is not None:
            lines.append(f"{_BIND_TIMES[attr]}: {_stamp(value)}")
    return "\n".join(lines) + "\n"


def parse_key_files(key_text: str, private_text: str, where: str = "key") -> Key:
    """The inverse of ``key_file_text`` + ``private_file_text`` (and BIND's own files)."""
    record = [line for line in key_text.splitlines() if line.strip() and not line.lstrip().startswith(";")]
    if len(record) != 1:
        raise KeyFileError(f"{where}: expected one DNSKEY record in the .key file")
    tokens = record[0].split()
    try:
        index = [t.upper() for t in tokens].index("DNSKEY")
        flags, protocol, algorithm = int(tokens[index + 1]), int(tokens[index + 2]), int(tokens[index + 3])
        public = base64.b64decode("".join(tokens[index + 4 :]), validate=True)
    except (ValueError, IndexError) as error:
        raise KeyFileError(f"{where}: the .key file's DNSKEY record cannot be read ({error})") from None
    owner = tokens[0].lower().rstrip(".")
    zone: Name = tuple(label.encode() for label in owner.split(".")) if owner else ()
    fields_: dict[str, str] = {}
    for line in private_text.splitlines():
        if ":" in line:
            name, _, value = line.partition(":")
            fields_[name.strip()] = value.strip()
    if protocol != PROTOCOL or algorithm not in ALGORITHMS:
        raise KeyFileError(f"{where}: algorithm {algorithm} is not supported (13 or 15)")
    if fields_.get("Algorithm", "").split(" ")[0] != str(algorithm):
        raise KeyFileError(f"{where}: the .private file's algorithm differs from the .key file's")
    try:
        raw = base64.b64decode(fields_["PrivateKey"], validate=True)
    except (KeyError, ValueError):
        raise KeyFileError(f"{where}: the .private file has no readable PrivateKey") from None
    private: PrivateKey
    try:
        if algorithm == ED25519:
            private = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
        else:
            private = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        raise KeyFileError(f"{where}: the private key is not a valid {ALGORITHMS[algorithm]} key") from None
    if _public_bytes(private) != public:
        raise KeyFileError(f"{where}: the private key does not match the DNSKEY")
    times: dict[str, Any] = {}
    for attr, label in _BIND_TIMES.items():
        if label in fields_:
            try:
                times[attr] = _parse_stamp(fields_[label])
            except ValueError:
                raise KeyFileError(f"{where}: {label} is not a YYYYMMDDHHMMSS time") from None
    return Key(zone=zone, algorithm=algorithm, flags=flags, private=private, public=public, **times)
