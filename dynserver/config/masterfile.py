"""RFC 1035 master files: text in, RRsets out, or an error naming file, line and record.

We tokenize ourselves (so every error carries the line where its record starts, and
out-of-zone data is an error rather than silently dropped) and hand each record's RDATA
text to dnspython, which knows the presentation format of every type, including the
RFC 3597 ``\\# length hex`` form for unknown ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynserver.config.reader import read_text
from dynserver.dns import wire
from dynserver.dns.names import name_from_dnspython
from dynserver.dns.zone import RRset, make_rrset
from dynserver.errors import ConfigError
from dynserver.types import Name

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Each number but the last must carry a unit, so there is one way to match: a nested
# "(\d+[smhdw]?)+" backtracks exponentially on a long run of digits that does not match.
_TTL_RE = re.compile(r"^(?:\d+[smhdw])*\d*$", re.IGNORECASE)
_MAX_INCLUDE_DEPTH = 8

# What a record of each common type looks like, for error messages.
EXPECTED = {
    "A": "an IPv4 address, e.g. 192.0.2.1",
    "AAAA": "an IPv6 address, e.g. 2001:db8::1",
    "NS": "a host name, e.g. ns1.example.com.",
    "CNAME": "one host name, e.g. www.example.com.",
    "PTR": "a host name",
    "MX": "a preference and a host name, e.g. 10 mail.example.com.",
    "TXT": 'one or more strings, e.g. "v=spf1 -all"',
    "SRV": "priority weight port target, e.g. 10 5 443 host.example.com.",
    "CAA": 'flags tag value, e.g. 0 issue "letsencrypt.org"',
    "SOA": "mname rname serial refresh retry expire minimum",
}


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    quoted: bool


@dataclass(frozen=True, slots=True)
class _Entry:
    line: int
    indented: bool  # no owner: the previous owner applies
    tokens: list[_Token]


@dataclass(frozen=True, slots=True)
class RecordLine:
    """One parsed record and the line it came from."""

    line: int
    name: Name
    rtype: int
    ttl: int
    rdata: dns.rdata.Rdata


def _tokenize(text: str, path: str) -> list[_Entry]:
    """Split into entries: parentheses join lines, ';' starts a comment."""
    entries: list[_Entry] = []
    tokens: list[_Token] = []
    depth = 0
    start_line = 1
    indented = False
    i = 0
    line = 1
    n = len(text)
    at_line_start = True
    while i < n:
        char = text[i]
        if at_line_start and depth == 0:
            start_line = line
            indented = char in " \t"
            at_line_start = False
        if char == "\n":
            line += 1
            at_line_start = depth == 0
            if depth == 0 and tokens:
                entries.append(_Entry(start_line, indented, tokens))
                tokens = []
            i += 1
        elif char in " \t\r":
            i += 1
        elif char == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif char == "(":
            depth += 1
            i += 1
        elif char == ")":
            if depth == 0:
                raise ConfigError(
                    "')' without a matching '('; expected '(' earlier in the record",
                    path=path,
                    line=line,
                    key=_record_key(tokens, indented),
                )
            depth -= 1
            i += 1
        elif char == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                if j < n and text[j] == "\n":
                    raise _unterminated(path, line, tokens, indented)
                j += 1
            if j >= n:
                raise _unterminated(path, line, tokens, indented)
            tokens.append(_Token(text[i : j + 1], True))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n;()"':
                if text[j] == "\\":
                    j += 1
                j += 1
            tokens.append(_Token(text[i:j], False))
            i = j
    if depth:
        raise ConfigError(
            "'(' is never closed; expected ')' to end the record",
            path=path,
            line=start_line,
            key=_record_key(tokens, indented),
        )
    if tokens:
        entries.append(_Entry(start_line, indented, tokens))
    return entries


def _unterminated(path: str, line: int, tokens: list[_Token], indented: bool) -> ConfigError:
    return ConfigError(
        "unterminated quoted string; expected a closing '\"' on the same line",
        path=path,
        line=line,
        key=_record_key(tokens, indented),
    )


def _record_key(tokens: list[_Token], indented: bool) -> str:
    """What to call a record that cannot be tokenized: its type if seen, else its owner."""
    words = [t.text for t in tokens if not t.quoted]
    for word in words[0 if indented else 1 :]:
        if parse_ttl(word) is not None or word.upper() == "IN":
            continue
        if _rdtype(word) is not None:
            return word.upper()
        break
    return words[0] if words else "record"


def parse_ttl(text: str) -> int | None:
    """A TTL in seconds ('3600') or with BIND units ('1h30m'); None if it is not one."""
    if not text or not _TTL_RE.match(text):
        return None
    total = 0
    for number, unit in re.findall(r"(\d+)([smhdw]?)", text, re.IGNORECASE):
        total += int(number) * _TTL_UNITS[unit.lower() or "s"]
    return total if total < 2**31 else None


def _rdtype(text: str) -> int | None:
    try:
        value = int(dns.rdatatype.from_text(text))
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        return None
    return value


def read_master_file(path: Path, origin: Name, *, display_path: str | None = None) -> list[RecordLine]:
    """Read a master file for the zone ``origin``; every record must be inside it."""
    shown = display_path or str(path)
    try:
        text = read_text(path, shown, "master file, with other bytes as \\DDD escapes")
    except OSError as error:
        raise ConfigError(
            f"cannot read master file: {error.strerror}; expected a readable file", path=shown
        ) from None
    zone_origin = dns.name.from_text(wire.name_to_text(origin))
    return _read(text, shown, path.parent, zone_origin, zone_origin, 0)


def _read(
    text: str,
    path: str,
    folder: Path,
    zone_origin: dns.name.Name,
    origin: dns.name.Name,
    depth: int,
    default_ttl: int | None = None,
    last_ttl: int | None = None,
) -> list[RecordLine]:
    """Records of one file; an $INCLUDEd file starts with the includer's TTLs (as in BIND)."""
    records: list[RecordLine] = []
    owner: dns.name.Name | None = None
    for entry in _tokenize(text, path):
        tokens = entry.tokens
        first = tokens[0].text
        line = entry.line
        if not entry.indented and first.startswith("$"):
            directive = first.upper()
            args = [t.text for t in tokens[1:]]
            if directive == "$ORIGIN" and len(args) == 1:
                origin = _name(args[0], origin, path, line, "$ORIGIN")
            elif directive == "$TTL" and len(args) == 1:
                default_ttl = parse_ttl(args[0])
                if default_ttl is None:
                    raise ConfigError(
                        f"bad TTL {args[0]!r}; expected seconds, e.g. 3600 or 1h",
                        path=path,
                        line=line,
                        key="$TTL",
                    )
            elif directive == "$INCLUDE" and len(args) in (1, 2):
                if depth >= _MAX_INCLUDE_DEPTH:
                    raise ConfigError(
                        f"$INCLUDE nested too deeply; expected at most {_MAX_INCLUDE_DEPTH} levels "
                        "(does a file include itself?)",
                        path=path,
                        line=line,
                        key="$INCLUDE",
                    )
                included = folder / args[0]
                sub_origin = _name(args[1], origin, path, line, "$INCLUDE") if len(args) == 2 else origin
                try:
                    sub_text = read_text(included, str(included), "master file")
                except OSError as error:
                    raise ConfigError(
                        f"cannot read included file {args[0]!r}: {error.strerror}; expected a file "
                        "relative to the including one",
                        path=path,
                        line=line,
                        key="$INCLUDE",
                    ) from None
                records += _read(
                    sub_text,
                    str(included),
                    included.parent,
                    zone_origin,
                    sub_origin,
                    depth + 1,
                    default_ttl,
                    last_ttl,
                )
            else:
                raise ConfigError(
                    f"unknown or malformed directive {first!r}; expected $ORIGIN name, "
                    "$TTL ttl or $INCLUDE file [origin]",
                    path=path,
                    line=line,
                    key=first,
                )
            continue

        position = 0
        if not entry.indented:
            owner = _name(first, origin, path, line, "owner")
            position = 1
        elif owner is None:
            raise ConfigError(
                "record has no owner name (the line starts with a blank and no record precedes it); "
                "expected the owner at the start of the line, e.g. 'www 300 IN A 192.0.2.1'",
                path=path,
                line=line,
                key=_record_key(tokens, True),
            )
        ttl: int | None = None
        # [ttl] [class] type, or [class] [ttl] type.
        for _ in range(2):
            if position >= len(tokens):
                break
            word = tokens[position].text
            if ttl is None and (value := parse_ttl(word)) is not None:
                ttl = value
                position += 1
            elif ttl is None and word and _TTL_RE.match(word):
                raise ConfigError(
                    f"TTL {word} is too large; expected at most {2**31 - 1} seconds (RFC 2181 8)",
                    path=path,
                    line=line,
                    key="TTL",
                )
            elif word.upper() == "IN":
                position += 1
            elif word.upper() in ("CH", "HS", "CS") or word.upper().startswith("CLASS"):
                raise ConfigError(
                    f"class {word} is not served; expected IN (or no class)",
                    path=path,
                    line=line,
                    key=word,
                )
        if position >= len(tokens):
            raise ConfigError(
                "record has no type; expected e.g. 'www 300 IN A 192.0.2.1'",
                path=path,
                line=line,
                key=tokens[0].text,
            )
        type_text = tokens[position].text
        rtype = _rdtype(type_text)
        if rtype is None:
            raise ConfigError(
                f"unknown record type {type_text!r}; expected a type such as A, AAAA, CNAME, "
                "or TYPEnnn with RFC 3597 '\\# length hex' data",
                path=path,
                line=line,
                key=type_text,
            )
        type_name = dns.rdatatype.to_text(dns.rdatatype.RdataType(rtype))
        if ttl is None:
            ttl = default_ttl if default_ttl is not None else last_ttl
        if ttl is None:
            raise ConfigError(
                "record has no TTL and none applies; expected a TTL in the record or '$TTL 3600' above it",
                path=path,
                line=line,
                key=type_name,
            )
        last_ttl = ttl
        assert owner is not None
        if not owner.is_subdomain(zone_origin):
            raise ConfigError(
                f"out-of-zone data: {owner} is not in zone {zone_origin}; "
                f"expected names at or below {zone_origin}",
                path=path,
                line=line,
                key=type_name,
            )
        rdata_text = " ".join(t.text for t in tokens[position + 1 :])
        try:
            rdata = dns.rdata.from_text(
                dns.rdataclass.IN, dns.rdatatype.RdataType(rtype), rdata_text, origin=origin, relativize=False
            )
        except (dns.exception.DNSException, ValueError, UnicodeError) as error:
            if rdata_text.startswith("\\#"):
                expected = "'\\# length hex', the length counting the octets of the hex (RFC 3597 5)"
            else:
                expected = EXPECTED.get(type_name, f"valid {type_name} data")
            detail = str(error).rstrip(".")
            raise ConfigError(
                f"bad {type_name} record {rdata_text!r} ({detail}); expected {expected}",
                path=path,
                line=line,
                key=type_name,
            ) from None
        records.append(RecordLine(line, name_from_dnspython(owner), rtype, ttl, rdata))
    return records


def _name(text: str, origin: dns.name.Name, path: str, line: int, key: str) -> dns.name.Name:
    try:
        if text == "@":
            return origin
        return dns.name.from_text(text, origin)
    except dns.exception.DNSException as error:
        detail = str(error).rstrip(".")
        raise ConfigError(
            f"bad name {text!r} ({detail}); expected a domain name such as www or www.example.com.",
            path=path,
            line=line,
            key=key,
        ) from None


def build_rrsets(records: list[RecordLine], origin: Name, path: str) -> list[RRset]:
    """Group records into RRsets and check the zone's shape (SOA, NS, CNAME rules)."""
    groups: dict[tuple[Name, int], list[RecordLine]] = {}
    for record in records:
        groups.setdefault((record.name, record.rtype), []).append(record)
    soa = groups.get((origin, wire.TYPE_SOA))
    if not soa:
        raise ConfigError(
            f"no SOA record at the zone apex {wire.name_to_text(origin)}; expected one, e.g. "
            "'@ IN SOA ns1 hostmaster 1 3600 600 86400 60'",
            path=path,
            line=records[0].line if records else 1,
            key="SOA",
        )
    if len(soa) > 1:
        raise ConfigError(
            "more than one SOA record at the apex; expected exactly one",
            path=path,
            line=soa[1].line,
            key="SOA",
        )
    if (origin, wire.TYPE_NS) not in groups:
        raise ConfigError(
            f"no NS records at the zone apex {wire.name_to_text(origin)}; expected at least one",
            path=path,
            line=soa[0].line,
            key="NS",
        )
    types_at: dict[Name, list[RecordLine]] = {}
    for record in records:
        types_at.setdefault(record.name, []).append(record)
        if record.rtype == wire.TYPE_SOA and record.name != origin:
            raise ConfigError(
                f"SOA record below the zone apex; expected it only at {wire.name_to_text(origin)} "
                "(a child zone is a zone of its own in the config)",
                path=path,
                line=record.line,
                key="SOA",
            )
    for name, lines in types_at.items():
        kinds = {r.rtype for r in lines}
        cnames = [r for r in lines if r.rtype == wire.TYPE_CNAME]
        if len(cnames) > 1:
            raise ConfigError(
                f"{wire.name_to_text(name)} has more than one CNAME; expected exactly one",
                path=path,
                line=cnames[1].line,
                key="CNAME",
            )
        if cnames and kinds - {wire.TYPE_CNAME, 46, 47}:  # RRSIG and NSEC may sit beside it
            other = next(r for r in lines if r.rtype != wire.TYPE_CNAME)
            later = max(cnames[0], other, key=lambda r: r.line)
            raise ConfigError(
                f"{wire.name_to_text(name)} has a CNAME and other data (RFC 1034 3.6.2); "
                "expected the CNAME alone",
                path=path,
                line=later.line,
                key="CNAME",
            )
    rrsets = []
    for (name, rtype), lines in groups.items():
        # RFC 2181 5.2: one TTL per RRset; like BIND, the first one given wins.
        rrsets.append(make_rrset(name, rtype, lines[0].ttl, [r.rdata for r in lines]))
    return rrsets
