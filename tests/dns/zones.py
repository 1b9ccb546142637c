"""The zones the core's tests serve: every shape of name the answering core tells apart.

Two zones, so CNAME chains can cross between zones we serve; names are chosen so each
RFC case (RFC 1034 4.3.2, RFC 2308, RFC 4592, RFC 8482) has one name that shows it.
"""

from __future__ import annotations

DYN = """\
$ORIGIN dyn.example.test.
$TTL 300
@        3600 IN SOA ns1 hostmaster 7 3600 600 1209600 60
              IN NS  ns1
              IN NS  ns.other.test.
              IN MX  10 mail
              IN TXT "apex"
ns1           IN A    192.0.2.53
              IN AAAA 2001:db8::53
mail          IN A    192.0.2.25
www           IN A    192.0.2.10
              IN AAAA 2001:db8::10
alias         IN CNAME www
chain1        IN CNAME chain2
chain2        IN CNAME www
loop1         IN CNAME loop2
loop2         IN CNAME loop1
self          IN CNAME self
away          IN CNAME www.elsewhere.example.
cross         IN CNAME host.other.test.
crossback     IN CNAME back.other.test.
tonx          IN CNAME nothere
a.b.c         IN A    192.0.2.1
*.wild        IN A    192.0.2.99
*.wild        IN TXT  "wild"
sub.wild      IN A    192.0.2.98
host.ent.wild IN A    192.0.2.97
*.wc          IN CNAME www
deleg         IN NS   ns1.deleg
              IN NS   ns.other.test.
              IN DS   12345 13 2 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
ns1.deleg     IN A    192.0.2.54
nods          IN NS   ns.other.test.
todeleg       IN CNAME x.deleg
_https._tcp   IN SRV  10 5 443 www
"""

# RFC 2308 5: the negative TTL is min(SOA TTL, SOA MINIMUM); here the SOA TTL is lower.
OTHER = """\
$ORIGIN other.test.
$TTL 600
@    20 IN SOA ns hostmaster 1 3600 600 1209600 30
     IN NS ns
ns   IN A 192.0.2.60
host IN A 192.0.2.61
back IN CNAME www.dyn.example.test.
"""

# RRsets too large for 512 bytes and for 1232 bytes, and an MX whose additional addresses
# do not fit in 512.
BIG = (
    DYN
    + "bigmx         IN MX   10 big\n"
    + "".join(f"big           IN A    192.0.2.{i}\n" for i in range(1, 41))
    + "".join(f'huge          IN TXT  "{i:03d}{"x" * 250}"\n' for i in range(8))
)

ZONES = {"dyn.example.test": DYN, "other.test": OTHER}
BIG_ZONES = {"dyn.example.test": BIG, "other.test": OTHER}
