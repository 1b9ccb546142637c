"""An RFC 2136 primary (BIND, Knot, PowerDNS) as a mirror: one signed UPDATE replaces the
RRset of the mirrored name.

Each sync first asks the primary what it serves (a plain query over TCP), so an
unchanged answer sends nothing and a periodic reconcile can tell drift (someone ran
nsupdate by hand) from a no-op. The UPDATE itself is TSIG-signed with a [keys.NAME] key
and sent over TCP (no truncation, no lost datagrams). REFUSED, NOTAUTH, NOTZONE and TSIG
errors are permanent (the primary's ACL or key must change); SERVFAIL, timeouts and
network errors are retried.
"""

from __future__ import annotations

import base64

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from dynserver.mirror.base import Desired, MirrorError, Outcome, canonical
from dynserver.model import MirrorConfig, TsigKey

_TRANSIENT = {dns.rcode.SERVFAIL}


class Rfc2136:
    """One [mirrors.NAME] of type rfc2136."""

    kind = "rfc2136"

    def __init__(self, config: MirrorConfig, key: TsigKey) -> None:
        if config.primary is None:
            raise ValueError(f"mirror {config.name}: no primary")
        self.config = config
        self.key = key
        self._secret_text = base64.b64encode(key.secret).decode()

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._secret_text,)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def sync(self, desired: Desired) -> Outcome:
        assert self.config.primary is not None
        host, port = self.config.primary.host, self.config.primary.port
        name = dns.name.from_text(desired.name + ".")
        zone = dns.name.from_text(self.config.zone + ".")
        if not name.is_subdomain(zone):
            raise MirrorError(f"{desired.name} is not in the zone {self.config.zone}", permanent=True)
        rdtype = dns.rdatatype.from_text(desired.type)
        before, ttl = await self._current(name, rdtype, desired.type, host, port)
        if before == desired.values and (ttl == desired.ttl or not before):
            return Outcome((), before, before, f"query {host}: in place", _records(before, ttl))
        update = dns.update.UpdateMessage(
            zone, keyring=dns.tsig.Key(self.key.name, self.key.secret, self.key.algorithm)
        )
        if desired.values:
            values = [v + "." if desired.type == "CNAME" else v for v in desired.values]
            update.replace(name, desired.ttl, rdtype, *values)
        else:
            update.delete(name, rdtype)
        try:
            response = await dns.asyncquery.tcp(update, host, port=port, timeout=self.config.timeout)
        except dns.tsig.PeerError as error:
            reply = f"UPDATE {host}: TSIG {type(error).__name__}"
            raise MirrorError(
                f"the primary refused the key {self.key.name} for {desired.name} {desired.type} ({reply}): "
                "check the key's name and secret and the primary's update ACL",
                permanent=True,
                reply=reply,
            ) from None
        except (dns.exception.Timeout, TimeoutError):
            raise MirrorError(f"UPDATE {host}:{port}: timeout after {self.config.timeout:g} s") from None
        except (OSError, EOFError, dns.exception.DNSException) as error:
            raise MirrorError(f"UPDATE {host}:{port}: {type(error).__name__}: {error}") from None
        rcode = response.rcode()
        reply = f"UPDATE {host}: {dns.rcode.to_text(rcode)}"
        if rcode != dns.rcode.NOERROR:
            raise MirrorError(
                f"the primary answered {dns.rcode.to_text(rcode)} to the UPDATE of {desired.name} "
                f"{desired.type}" + ("" if rcode in _TRANSIENT else " (check its update ACL and key)"),
                permanent=rcode not in _TRANSIENT,
                reply=reply,
            )
        if desired.values:
            action = f"replace {desired.type} {','.join(desired.values)} ttl {desired.ttl}"
        else:
            action = f"delete {desired.type}"
        was = f" (was {','.join(before) or 'none'})"
        return Outcome((action + was,), before, desired.values, reply, _records(desired.values, desired.ttl))

    async def _current(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, rtype: str, host: str, port: int
    ) -> tuple[tuple[str, ...], int | None]:
        """What the primary serves for the name and type: (values, TTL)."""
        query = dns.message.make_query(name, rdtype)
        try:
            response = await dns.asyncquery.tcp(query, host, port=port, timeout=self.config.timeout)
        except (dns.exception.Timeout, TimeoutError):
            raise MirrorError(f"query {host}:{port}: timeout after {self.config.timeout:g} s") from None
        except (OSError, EOFError, dns.exception.DNSException) as error:
            raise MirrorError(f"query {host}:{port}: {type(error).__name__}: {error}") from None
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise MirrorError(
                f"query {host}:{port}: {dns.rcode.to_text(rcode)} for {name}",
                permanent=rcode == dns.rcode.REFUSED,
            )
        for rrset in response.answer:
            if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN:
                values = tuple(sorted({canonical(rtype, r.to_text()) for r in rrset}))
                return values, rrset.ttl
        return (), None


def _records(values: tuple[str, ...], ttl: int | None) -> tuple[dict[str, object], ...]:
    return tuple({"content": v, "ttl": ttl} for v in values)
