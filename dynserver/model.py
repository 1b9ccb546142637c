"""The validated configuration: frozen dataclasses, built only by dynserver.config.

MonitorType is defined here; a record's Policy and Fallback are defined beside the pure
policy that decides with them (dynserver.health.policy), and the config reads them from
here with the rest of the model.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from dynserver.dns.zone import RRset
from dynserver.health.conditions import JsonCondition

# Re-exported (`X as X`): the config imports them with the model.
from dynserver.health.policy import Fallback as Fallback
from dynserver.health.policy import Order as Order
from dynserver.health.policy import Policy as Policy
from dynserver.health.state import Thresholds
from dynserver.health.windows import MaintenanceWindow
from dynserver.types import Name, RecordType, TargetKey
from dynserver.update.limits import LimitPolicy
from dynserver.update.scopes import in_scope


@dataclass(frozen=True, slots=True)
class Listener:
    """An address to listen on. IPv6 hosts are written [::1]:5353 in the config."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RrlConfig:
    """[server.rrl]: response rate limiting (dynserver/dns/rrl.py); why these defaults:
    docs/security.md."""

    enabled: bool = True
    rate: int = 200  # replies a second per client network and kind of answer (NSD's)
    slip: int = 2  # every slip-th limited reply goes out as TC=1; 0: none, 1: all
    window: float = 1.0  # seconds of replies a network may get at once (the bucket's depth)
    exempt: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerConfig:
    dns: tuple[Listener, ...]
    http: Listener | None
    chaos_version: str | None = None  # answered to CH TXT version.bind when set
    chaos_hostname: str | None = None  # answered to CH TXT hostname.bind / id.server
    tcp_idle_timeout: float = 10.0  # RFC 7766 6.2.3: close idle connections
    tcp_message_timeout: float = 5.0  # longest time to receive one message
    tcp_max_connections: int = 1024
    tcp_max_connections_per_client: int = 64
    # The control socket of `dynserver reload`, relative to the config's folder; None:
    # dynserver.control next to the database (or the config); "": no control socket.
    control: str | None = None
    # Started as root: the user (and its group) the process becomes once its listeners are
    # bound, with every capability dropped (dynserver/privileges.py); None: stay as started.
    user: str | None = None
    rrl: RrlConfig = field(default_factory=RrlConfig)
    # DNS Cookies' server secret (16 bytes, shared by servers behind one address); None:
    # a random one per start, so cookies handed out before a restart are renewed.
    cookie_secret: bytes | None = None
    # Health checks running at once (each holds a socket): more wait for a slot, and if
    # they wait too long the scheduler says it is behind (dynserver/health/scheduler.py).
    checks_in_flight: int = 256


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    name: Name
    file: Path | None
    rrsets: tuple[RRset, ...]  # static data: from the master file or generated SOA/NS
    records: tuple[DynamicRecord, ...] = ()
    transfer: TransferConfig | None = None  # None: no secondaries, every transfer refused
    dnssec: DnssecConfig | None = None  # None: not signed (no table, or enabled = false)


@dataclass(frozen=True, slots=True)
class DnssecConfig:
    """[zones.NAME.dnssec]: sign the zone (docs/dnssec.md). Durations in seconds."""

    algorithm: int = 13  # 13 ECDSAP256SHA256, 15 ED25519
    key_directory: Path | None = None  # BIND K*.key/.private files; None: in the database
    signature_validity: float = 14 * 86400.0
    refresh: float = 7 * 86400.0  # re-sign when less than this validity remains
    inception_offset: float = 3600.0  # inception backdated by this


@dataclass(frozen=True, slots=True)
class Secondary:
    """A server that copies a zone from us (AXFR/IXFR) and is sent NOTIFY on every change."""

    host: str
    port: int = 53
    key: str | None = None  # a [keys.NAME]: NOTIFY is signed with it, and it may transfer


@dataclass(frozen=True, slots=True)
class TransferConfig:
    """[zones.NAME.transfer]: who is told of changes, and who may copy the zone."""

    secondaries: tuple[Secondary, ...] = ()
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # may transfer unsigned
    allow_keys: tuple[str, ...] = ()  # may transfer from any address (besides secondaries' keys)
    journal: int = 1000  # changes kept for IXFR; 0: every transfer is a full one


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    apprise: tuple[str, ...] = ()  # apprise URLs: mailto://, slack://, tgram://, ntfy://, json://...
    on_failure: tuple[str, ...] = ()  # webhooks POSTed a JSON body when a target goes down
    on_recovery: tuple[str, ...] = ()  # ... and when it comes back


DEFAULT_RESOLVERS = ("8.8.8.8", "1.1.1.1", "9.9.9.9", "208.67.222.222")


@dataclass(frozen=True, slots=True)
class WebConfig:
    """[web]: who may use the dashboard, and which resolvers the propagation page asks."""

    admin_password_hash: str | None = None  # from `dynserver hash-password`; env overrides
    public: bool = False  # read-only pages without a login
    resolvers: tuple[str, ...] = DEFAULT_RESOLVERS
    propagation_timeout: float = 1.5  # seconds per query of the propagation page
    metrics_token: str | None = None  # /metrics wants it as a Bearer token; env overrides
    limits: LimitPolicy = field(default_factory=LimitPolicy)  # [web.limits]: rate limits, lockout


@dataclass(frozen=True, slots=True)
class TsigKey:
    """A shared secret for signed DNS messages (RFC 8945): UPDATE now, transfers later."""

    name: str  # lower-case, no trailing dot: nsupdate's -y hmac-sha256:NAME:SECRET
    algorithm: str  # hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1
    secret: bytes
    update: tuple[str, ...] = ()  # "app.dyn.example.test/bravo", "app.dyn.example.test/*", "*"
    # ACME DNS-01 (dynserver.update.acme): names whose _acme-challenge TXT this key may add
    # and delete ("dyn.example.test" covers it and every name under it), and how long such
    # a record is kept at most (seconds).
    acme: tuple[str, ...] = ()
    acme_max_age: float = 3600.0

    def may_update(self, target: TargetKey) -> bool:
        return in_scope(self.update, target)


@dataclass(frozen=True, slots=True)
class LocationsConfig:
    """[locations]: checks from several places (the server and its agents), decided by vote."""

    quorum: int = 2  # how many fresh locations must agree before a target changes state
    local: bool = True  # whether the server checks too
    name: str = "local"  # the server's location name
    stale_after: int = 3  # intervals without a result before a location stops counting
    canary: str | None = None  # "host:port" every location connects to: its own connectivity


@dataclass(frozen=True, slots=True)
class DemoBackend:
    """[demo] backends: a local web server (dynserver.demo) that fails on a schedule (make run)."""

    host: str
    port: int
    outage: tuple[float, float] | None  # [start, end) seconds within each cycle
    cycle: float = 60.0


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    server: ServerConfig
    zones: tuple[ZoneConfig, ...]
    monitors: tuple[Monitor, ...] = ()
    database: Path | None = None  # SQLite file: target states, events, history
    history_hours: float = 48.0  # retention of events and latency samples
    notify: NotifyConfig = NotifyConfig()
    demo: tuple[DemoBackend, ...] = ()  # local backends with scheduled outages (make run)
    keys: tuple[TsigKey, ...] = ()
    mirrors: tuple[MirrorConfig, ...] = ()  # providers that receive the answers (Cloudflare, RFC 2136)
    web: WebConfig = WebConfig()
    locations: LocationsConfig | None = None  # None: the server alone decides, as without agents


class MonitorType(enum.StrEnum):
    """How a monitor checks a target."""

    HTTP = "http"  #: an HTTP request; the status (and optionally the body) decide
    HTTPS = "https"  #: the same over TLS (the certificate is verified unless allow_insecure)
    TCP = "tcp"  #: a TCP connection (optionally send, then expect a reply)
    DNS = "dns"  #: a DNS query; the rcode (and optionally the data) decide
    ICMP = "icmp"  #: an echo request (ping)
    PUSH = "push"  #: nothing is probed: heartbeats come in (the push URL, or updates)


class Heartbeat(enum.StrEnum):
    """What counts as a push monitor's heartbeat (its ``heartbeat``)."""

    PUSH = "push"  #: a request to the target's push URL (/api/v1/push/TOKEN)
    UPDATES = "updates"  #: that, and every address update of the target (dyndns2, API, RFC 2136)


# The state machine's defaults are the monitor's: one place for both.
_THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True)
class Monitor:
    """A reusable health-check definition (option names follow Cloudflare's monitors).

    The defaults here are the defaults of the config file: [monitors.NAME] reads them
    from this class, and docs/configuration.md lists them.
    """

    name: str
    type: MonitorType
    port: int | None = None
    path: str = "/"
    interval: float = _THRESHOLDS.interval
    timeout: float = _THRESHOLDS.timeout  # at most the interval: the config lowers it to fit
    retries: int = 0
    consecutive_up: int = _THRESHOLDS.consecutive_up
    consecutive_down: int = _THRESHOLDS.consecutive_down
    failback_delay: float = _THRESHOLDS.failback_delay
    method: str = "GET"
    header: tuple[tuple[str, str], ...] = ()
    expected_codes: tuple[tuple[int, int], ...] = ((200, 299), (300, 399))  # "2xx,3xx"
    expected_body: str | None = None
    unexpected_body: str | None = None
    follow_redirects: bool = False
    allow_insecure: bool = False
    max_response_bytes: int = 1 << 20
    user_agent: str | None = None
    send: str | None = None
    expect: str | None = None
    query_name: str | None = None
    query_type: str = "A"
    expected_rcode: str = "NOERROR"
    expected_data: str | None = None
    # Conditions on one result (health/conditions.py), applied by the probe.
    expected_json: JsonCondition | None = None  # http(s): `$.path OP literal` on the body
    max_response_time: float | None = None  # seconds, below timeout: slower passes fail
    invert: bool = False  # the check must fail: the outcome after retries is flipped
    quorum: int | None = None  # [locations]: how many locations must agree (None: the table's)
    # https: warn (an event, a notification) when the certificate expires within this many
    # days; the check fails for it only with certificate_expiry_fails.
    certificate_expiry_days: float | None = None
    certificate_expiry_fails: bool = False
    # push: what counts as a heartbeat; the target is up while one arrives at least every
    # interval * consecutive_down seconds.
    heartbeat: Heartbeat = Heartbeat.PUSH


@dataclass(frozen=True, slots=True)
class Target:
    """One server behind a dynamic record."""

    name: str
    value: str | None  # an IP (A/AAAA) or a host name (CNAME); None until first update
    priority: int = 1
    maintenance: bool = False
    weight: int = 1  # its share of first places in its group's rotating answer
    host: str | None = None  # overrides the monitor's Host header (and TLS SNI)
    port: int | None = None  # overrides the monitor's port (config: port or check_port)
    path: str | None = None  # overrides the monitor's path
    # What the probe connects to instead of the value (NAT, a load balancer, a health
    # sidecar); DNS still answers the value, and updates move the value, not the check.
    check_address: str | None = None
    # Scheduled maintenance (health/windows.py): drained during each window, as if set.
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    # Combined checks: the target's own monitors (None: the record's) and how many of
    # them must be up (None: the record's require, else all of them).
    monitors: tuple[str, ...] | None = None
    require: int | None = None


@dataclass(frozen=True, slots=True)
class DynamicRecord:
    """A name + type whose answer is computed from its targets' health."""

    zone: Name
    name: Name  # absolute
    type: RecordType
    ttl: int
    targets: tuple[Target, ...]
    monitor: str | None = None  # None: never checked, targets count as up
    policy: Policy = Policy.FAILOVER
    fallback: Fallback = Fallback.PREFERRED
    min_up: int = 1
    order: Order = Order.ROTATE  # several values: rotate them answer after answer, or not
    pending_ttl: int | None = None  # TTL while a target is pending or the answer is in flux
    mirror: tuple[MirrorRecord, ...] = ()  # the records at mirrors that follow this answer
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()  # for every target of the record
    # Combined checks (monitor = ["web", "db"]): every monitor named, the first also being
    # ``monitor``; empty when one monitor (or none) is named. ``require``: how many must be
    # up (None: all of them).
    monitors: tuple[str, ...] = ()
    require: int | None = None
    # Its targets by name, built once: looking a target up by scanning ``targets`` made
    # the 30 s state refresh quadratic in a record's targets (one record of 20,000 held
    # the event loop ~5 s, bench/check_scale.py table --point 20000:1).
    by_name: dict[str, Target] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {t.name: t for t in self.targets})

    def target(self, name: str) -> Target:
        """The target of this name (KeyError if the record has none)."""
        return self.by_name[name]


def monitors_of(record: DynamicRecord, target: Target) -> tuple[str, ...]:
    """The monitors that check a target: its own, else its record's (empty: unchecked)."""
    if target.monitors is not None:
        return target.monitors
    if record.monitors:
        return record.monitors
    return (record.monitor,) if record.monitor is not None else ()


def required(record: DynamicRecord, target: Target) -> int:
    """How many of a target's monitors must be up for it to be up (require)."""
    count = len(monitors_of(record, target))
    need = target.require
    if need is None and target.monitors is None:
        need = record.require  # the record's monitors, the record's rule
    return count if need is None else min(need, count)


def is_checked(record: DynamicRecord) -> bool:
    """Whether any target of the record has a monitor."""
    return any(monitors_of(record, target) for target in record.targets)


# -- mirrors ---------------------------------------------------------------------------

CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"


class Secret:
    """A credential (an API token): its repr and str never show it, so a logged config,
    a traceback or a page that prints one cannot leak it. ``reveal()`` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    """[mirrors.NAME]: an external DNS provider that receives the current answers."""

    name: str
    type: str  # cloudflare | rfc2136 | lexicon | dyndns2
    zone: str  # lower-case, no final dot; cloudflare: a zone name or its 32-hex id
    reconcile_interval: float = 300.0  # seconds between drift checks of every mirrored record
    timeout: float = 10.0  # per request to the provider
    api_token: Secret | None = None  # cloudflare
    api_base: str = CLOUDFLARE_API  # cloudflare (tests point it at a fake); lexicon: "" = the provider's
    primary: Listener | None = None  # rfc2136: where UPDATEs go
    key: str | None = None  # rfc2136: the [keys.NAME] that signs them
    provider: str = ""  # lexicon: the provider's name in dns-lexicon ("hetzner", "digitalocean")
    # lexicon: the provider's credential options (auth_token, auth_secret...), read from files
    # or the environment, sorted by option name
    credentials: tuple[tuple[str, Secret], ...] = ()
    options: tuple[tuple[str, str], ...] = ()  # lexicon: the provider's other options (not secret)
    url: str = ""  # dyndns2: the update URL, e.g. "https://dyn.dns.he.net/nic/update"
    username: str = ""  # dyndns2
    password: Secret | None = None  # dyndns2


@dataclass(frozen=True, slots=True)
class MirrorRecord:
    """One entry of a dynamic record's ``mirror`` list: a name at a mirror that is kept
    equal to the record's current answer (same type)."""

    to: str  # a [mirrors.NAME]
    name: str  # absolute, lower-case, no final dot: "www.example.com"
    ttl: int  # cloudflare: 1 (automatic) or 60-86400
    proxied: bool | None = None  # cloudflare; None: leave as found (new records: not proxied)
    comment: str | None = None  # cloudflare; None: leave as found
