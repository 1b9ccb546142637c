"""[zones.NAME]: each zone's static data, from a master file or generated (SOA, NS, glue)."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynserver.config.masterfile import build_rrsets, read_master_file
from dynserver.config.mirrors import Mirrors
from dynserver.config.reader import KeyPath, Reader, describe, host_name, parse_name
from dynserver.config.records import read_records
from dynserver.dns import wire
from dynserver.dns.zone import RRset, SoaFields, make_rrset, soa_rrset
from dynserver.model import Monitor, ZoneConfig
from dynserver.types import Name

IN = dns.rdataclass.IN


_ZONE_FILE_KEYS = {"file", "records", "transfer", "dnssec"}
_ZONE_GENERATED_KEYS = {
    "nameservers",
    "hostmaster",
    "glue",
    "ttl",
    "refresh",
    "retry",
    "expire",
    "negative_ttl",
    "records",
    "transfer",
    "dnssec",
}


def read_zones(
    reader: Reader, raw: Any, folder: Path, monitors: dict[str, Monitor], mirrors: Mirrors | None = None
) -> tuple[ZoneConfig, ...]:
    zones_table = reader.table(raw, ("zones",))
    if not zones_table:
        raise reader.error(("zones",), 'no zones; expected at least one [zones."example.com"] table')
    seen: dict[Name, str] = {}
    result = []
    for zone_key, zone_raw in zones_table.items():
        key_path: KeyPath = ("zones", zone_key)
        try:
            origin = parse_name(zone_key)
        except Exception as error:
            detail = str(error).rstrip(".")
            raise reader.error(
                key_path, f"not a valid zone name ({detail}); expected e.g. dyn.example.com"
            ) from None
        if origin in seen:
            raise reader.error(
                key_path,
                f'duplicate zone: the same zone as [zones."{seen[origin]}"] (names ignore case and '
                "the final dot); expected each zone once",
            )
        seen[origin] = zone_key
        table = reader.table(zone_raw, key_path)
        if "file" in table:
            for key in table:
                if key in _ZONE_GENERATED_KEYS - _ZONE_FILE_KEYS:
                    raise reader.error(
                        (*key_path, key),
                        'only for a zone without "file" (its SOA and NS come from the master file); '
                        f"expected one of: {', '.join(sorted(_ZONE_FILE_KEYS))}",
                    )
            reader.unknown(table, key_path, _ZONE_FILE_KEYS)
            file_name = reader.get(table, key_path, "file", str, "", "a file name")
            file_path = folder / file_name
            if not file_name or not file_path.is_file():
                raise reader.error(
                    (*key_path, "file"),
                    f"no master file {str(file_path)!r}; expected the path of an RFC 1035 master "
                    "file, relative to the config file",
                )
            shown = str(Path(reader.path).parent / file_name)
            records = read_master_file(file_path, origin, display_path=shown)
            rrsets = build_rrsets(records, origin, shown)
        else:
            reader.unknown(table, key_path, _ZONE_GENERATED_KEYS)
            file_path = None
            rrsets = _generated(reader, table, key_path, origin)
        dynamic = read_records(reader, table.get("records", {}), key_path, origin, monitors, rrsets, mirrors)
        result.append(ZoneConfig(name=origin, file=file_path, rrsets=tuple(rrsets), records=dynamic))
    return tuple(result)


def _generated(reader: Reader, table: dict[str, Any], key_path: KeyPath, origin: Name) -> list[RRset]:
    """SOA and NS (plus glue) for a zone that has no master file.

    Keys: nameservers (required; the first is the SOA MNAME), hostmaster (default
    hostmaster.<zone>; "admin@example.com" works), ttl (of SOA, NS and glue; 3600),
    refresh (3600), retry (600), expire (1209600), negative_ttl (the SOA MINIMUM; 60) and
    glue = { "ns1.<zone>" = ["192.0.2.53", "2001:db8::53"] }, required for every
    nameserver inside the zone and allowed for no other. Everything is checked before
    anything is built.
    """
    ns_path = (*key_path, "nameservers")
    raw_ns = table.get("nameservers")
    if not isinstance(raw_ns, list) or not raw_ns or not all(isinstance(n, str) for n in raw_ns):
        raise reader.error(
            ns_path,
            'a zone without "file" needs its name servers; expected nameservers = '
            '["ns1.example.com", ...] (the host names its NS records list)',
        )
    nameservers = [host_name(reader, ns_path, text) for text in raw_ns]
    zone_text = wire.name_to_text(origin)
    hostmaster_text = reader.get(table, key_path, "hostmaster", str, f"hostmaster.{zone_text}", "a mailbox")
    # admin@example.com -> admin.example.com; a dot in the local part is escaped
    # (first.last@example.com -> first\.last.example.com, RFC 1035 8).
    local, at, domain = hostmaster_text.rpartition("@")
    mailbox = local.replace(".", "\\.") + "." + domain if at else hostmaster_text
    hostmaster = host_name(reader, (*key_path, "hostmaster"), mailbox)
    ttl = reader.number(table, key_path, "ttl", 3600, 1, 2**31 - 1, int)
    fields = SoaFields(
        mname=nameservers[0],
        rname=hostmaster,
        serial=int(time.time()),  # a fresh zone starts at the current time (RFC 1912 2.2)
        refresh=reader.number(table, key_path, "refresh", 3600, 1, 2**31 - 1, int),
        retry=reader.number(table, key_path, "retry", 600, 1, 2**31 - 1, int),
        expire=reader.number(table, key_path, "expire", 1209600, 1, 2**31 - 1, int),
        minimum=reader.number(table, key_path, "negative_ttl", 60, 0, 86400, int),
    )
    in_zone = [ns for ns in nameservers if ns[len(ns) - len(origin) :] == origin]
    glue_table = reader.table(table.get("glue", {}), (*key_path, "glue"))
    glue: dict[Name, dict[int, list[dns.rdata.Rdata]]] = {}
    for host_text, addresses in glue_table.items():
        glue_path = (*key_path, "glue", host_text)
        host = host_name(reader, glue_path, host_text)
        if host not in in_zone:
            raise reader.error(
                glue_path,
                f"glue for a host that is not a nameserver inside this zone; expected glue only for "
                f"nameservers ending in {zone_text} (others are found through their own zones)",
            )
        if not isinstance(addresses, list) or not addresses:
            raise reader.error(
                glue_path, f'expected a list of addresses, e.g. ["192.0.2.53"], got {describe(addresses)}'
            )
        by_type = glue.setdefault(host, {})
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address if isinstance(address, str) else "")
            except ValueError:
                raise reader.error(
                    glue_path, f"{address!r} is not an IP address; expected e.g. 192.0.2.53 or 2001:db8::53"
                ) from None
            rtype = dns.rdatatype.A if ip.version == 4 else dns.rdatatype.AAAA
            by_type.setdefault(int(rtype), []).append(dns.rdata.from_text(IN, rtype, str(ip)))
    for ns in in_zone:
        if ns not in glue:
            raise reader.error(
                ns_path,
                f"nameserver {wire.name_to_text(ns)} is inside the zone but has no address; expected "
                f'glue = {{ "{wire.name_to_text(ns)}" = ["192.0.2.53"] }}',
            )
    # No origin: names stay absolute, as the master file reader keeps them (relativize=False).
    ns_rdatas = [dns.rdata.from_text(IN, dns.rdatatype.NS, wire.name_to_text(ns)) for ns in nameservers]
    rrsets = [soa_rrset(origin, ttl, fields), make_rrset(origin, wire.TYPE_NS, ttl, ns_rdatas)]
    for host, by_type in glue.items():
        rrsets.extend(make_rrset(host, rtype, ttl, rdatas) for rtype, rdatas in by_type.items())
    return rrsets
