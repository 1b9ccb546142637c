"""Prometheus metrics, served at ``/metrics`` (docs/operations.md lists every one).

Two kinds, by how often they move:

- per event (an update, a mirror push, a login...): prometheus_client's own Counter,
  incremented where the event happens. Check results (thousands a second at scale) add
  to plain numbers instead (LoopHistogram), rendered at scrape time;
- per DNS query and current state: read at scrape time by a custom collector. The DNS
  fast path only increments a list entry (dynserver.dns.stats: a labelled Counter per
  query would cost more than the answer); target states and zone serials are read from
  the engine as they are when scraped, so they are never stale and cost nothing between
  scrapes.

Each Runtime has its own registry (no process-global state: tests run several in one
process). Labels are bounded: question types and rcodes are fixed sets, record, target,
monitor and mirror names come from the config, location names from the config and the
registered agents, results are the small sets below.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from dynserver import __version__
from dynserver.dns.rrl import RateLimiter
from dynserver.dns.stats import QueryStats
from dynserver.health.state import Health

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Probe latency: from sub-millisecond (a LAN TCP connect) to the longest timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How late a check starts against its due time; issue 3's bar is p99 <= 1 s.
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
UPDATE_PATHS = ("dyndns2", "api", "rfc2136")
# changed / unchanged: applied (or already so); failed: ours (the database did not
# commit); unauthorized: no or wrong credential; limited: rate limited or locked out;
# refused: authenticated, but not this target, or a request that cannot be applied.
UPDATE_RESULTS = ("changed", "unchanged", "failed", "unauthorized", "limited", "refused")
STATES = tuple(health.value for health in Health)


@dataclass(frozen=True, slots=True)
class TargetSample:
    """One target as the state gauge shows it."""

    record: str
    type: str
    target: str
    state: str
    forced: str | None = None  # "up" or "down" while an admin forces it
    forced_until: float | None = None  # Unix time it ends (None: until cleared)


class LocationSample(Protocol):
    """What the location gauges read of a location (dynserver.locations.quorum's
    LocationStatus has these fields: the Runtime passes its location_statuses)."""

    @property
    def name(self) -> str: ...
    @property
    def fresh_targets(self) -> int: ...
    @property
    def last_contact(self) -> float | None: ...  # Unix time; None: never heard from
    @property
    def excluded(self) -> str | None: ...  # why it is excluded from the vote; None: it votes


class CheckLoad(Protocol):
    """What the check-load gauges read (dynserver.health.scheduler's Load has these fields:
    the Runtime passes its scheduler's load)."""

    @property
    def checks(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def max_in_flight(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def behind(self) -> bool: ...


class Metrics:
    """Every metric of one running dynserver, and the registry that renders them.

    ``targets``, ``serials`` and ``locations`` are read at scrape time (the Runtime passes
    functions that read its current engine, zones and locations)."""

    def __init__(
        self,
        *,
        targets: Callable[[], Iterable[TargetSample]] = tuple,
        serials: Callable[[], Mapping[str, int]] = dict,
        locations: Callable[[], Iterable[LocationSample]] = tuple,
        checks: Callable[[], CheckLoad | None] = lambda: None,
        process: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queries = QueryStats()
        registry = self.registry
        # Per check (thousands a second at scale): plain numbers the event loop adds to,
        # rendered at scrape time (_CheckCollector); see LoopHistogram.
        self._check_counts: dict[tuple[str, str, bool], list[int]] = {}
        self._check_latency: dict[tuple[str, str], LoopHistogram] = {}
        self.check_lateness = LoopHistogram(LATENESS_BUCKETS)
        self.transitions = Counter(
            "dynserver_target_transitions",
            "Target health state changes, by record, type, target and the new state.",
            ["record", "type", "target", "state"],
            registry=registry,
        )
        self.answer_changes = Counter(
            "dynserver_answer_changes",
            "Times a dynamic record's answer (values or TTL) changed.",
            ["record", "type"],
            registry=registry,
        )
        self._transition_children: dict[tuple[str, str, str, str], Counter] = {}
        self._answer_children: dict[tuple[str, str], Counter] = {}
        self.updates = Counter(
            "dynserver_updates",
            "Address updates by path (dyndns2, api, rfc2136) and result.",
            ["path", "result"],
            registry=registry,
        )
        self.mirror_pushes = Counter(
            "dynserver_mirror_pushes",
            "Mirror push attempts by mirror and result (ok, drift, error, permanent).",
            ["mirror", "result"],
            registry=registry,
        )
        self.notifications = Counter(
            "dynserver_notifications",
            "Notification deliveries by result (ok, fail: after every retry).",
            ["result"],
            registry=registry,
        )
        self.logins = Counter(
            "dynserver_logins",
            "Admin logins by result (ok, fail, limited).",
            ["result"],
            registry=registry,
        )
        for path in UPDATE_PATHS:  # present from the start, so rate() sees the first one
            for result in UPDATE_RESULTS:
                self.updates.labels(path, result)
        for result in ("ok", "fail", "limited"):
            self.logins.labels(result)
        self.location_results = Counter(
            "dynserver_location_results",
            "Check results by location (the server's own and each agent's) and result (ok or fail).",
            ["location", "result"],
            registry=registry,
        )
        self._location_children: dict[tuple[str, bool], Counter] = {}
        registry.register(_StateCollector(self.queries, targets, serials, locations))
        registry.register(_CheckLoadCollector(checks))
        registry.register(_CheckCollector(self._check_counts, self._check_latency, self.check_lateness))
        if process:
            ProcessCollector(registry=registry)  # CPU, memory, open files (Linux /proc)

    def check_result(self, monitor: str, type_: str, ok: bool, latency: float | None) -> None:
        """One check's result (from the event loop only: no lock)."""
        count = self._check_counts.get((monitor, type_, ok))
        if count is None:
            count = self._check_counts[(monitor, type_, ok)] = [0]
        count[0] += 1
        if latency is not None:
            histogram = self._check_latency.get((monitor, type_))
            if histogram is None:
                histogram = self._check_latency[(monitor, type_)] = LoopHistogram(LATENCY_BUCKETS)
            histogram.observe(latency)

    def transition(self, record: str, type_: str, target: str, state: str) -> None:
        """A target's health changed (looked up once per label set: at start every target
        makes one, and labels() validates and builds tuples each time)."""
        key = (record, type_, target, state)
        child = self._transition_children.get(key)
        if child is None:
            child = self._transition_children[key] = self.transitions.labels(*key)
        child.inc()

    def answer_changed(self, record: str, type_: str) -> None:
        """A dynamic record's answer changed."""
        child = self._answer_children.get((record, type_))
        if child is None:
            child = self._answer_children[(record, type_)] = self.answer_changes.labels(record, type_)
        child.inc()

    def location_result(self, location: str, ok: bool) -> None:
        """One result from a location (the Runtime calls it for every result it feeds
        into the vote): looked up once per label pair, as check_result does."""
        self._location_child(location, ok).inc()

    def location_batch(self, location: str, ok: int, failed: int) -> None:
        """A batch of results from a location: ``ok`` passed, ``failed`` did not."""
        if ok:
            self._location_child(location, True).inc(ok)
        if failed:
            self._location_child(location, False).inc(failed)

    def _location_child(self, location: str, ok: bool) -> Counter:
        child = self._location_children.get((location, ok))
        if child is None:
            child = self.location_results.labels(location, "ok" if ok else "fail")
            self._location_children[(location, ok)] = child
        return child

    def update(self, path: str, result: str) -> None:
        self.updates.labels(path, result).inc()

    def watch_rrl(self, limiter: RateLimiter) -> None:
        """Export a response rate limiter's counts (read at scrape time: the hot path only
        adds to plain integers)."""
        self.registry.register(_RrlCollector(limiter))

    def render(self) -> bytes:
        """The text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)


class LoopHistogram:
    """A histogram observed from the event loop only: a bisect and two adds, no lock.
    prometheus_client's Histogram takes a lock for its sum and for the bucket, after
    scanning the buckets: with the counter's lock, three locks per check, and the
    lateness and latency histograms had 5.5 % of dynserver's CPU checking 20,000
    targets (py-spy --native --gil). Read at scrape time (_CheckCollector)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket (value <= bound), the last +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, as the exposition format has them."""
        out, running = [], 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == math.inf else repr(bound), float(running)))
        return out


class _SampledCollector(Collector):
    """A collector whose families are described without samples and collected with them:
    registering must not read what the samples come from (the Runtime is still being
    built then)."""

    def describe(self) -> Iterator[Metric]:
        return self._families(samples=False)

    def collect(self) -> Iterator[Metric]:
        return self._families(samples=True)

    def _families(self, samples: bool) -> Iterator[Metric]:
        raise NotImplementedError


class _CheckCollector(_SampledCollector):
    """Check results, their latency and the scheduler's lateness (see LoopHistogram)."""

    def __init__(
        self,
        counts: Mapping[tuple[str, str, bool], list[int]],
        latency: Mapping[tuple[str, str], LoopHistogram],
        lateness: LoopHistogram,
    ) -> None:
        self._counts = counts
        self._latency = latency
        self._lateness = lateness

    def _families(self, samples: bool) -> Iterator[Metric]:
        checks = CounterMetricFamily(
            "dynserver_checks",
            "Check results by monitor, monitor type and result (ok or fail).",
            labels=["monitor", "type", "result"],
        )
        latency = HistogramMetricFamily(
            "dynserver_check_latency_seconds",
            "Latency of checks that measured one, by monitor and monitor type.",
            labels=["monitor", "type"],
        )
        lateness = HistogramMetricFamily(
            "dynserver_check_lateness_seconds",
            "How late each check started against its due time (scheduler load).",
        )
        if samples:
            for (monitor, type_, ok), count in list(self._counts.items()):
                checks.add_metric([monitor, type_, "ok" if ok else "fail"], float(count[0]))
            for (monitor, type_), histogram in list(self._latency.items()):
                latency.add_metric([monitor, type_], histogram.buckets(), histogram.total)
            lateness.add_metric([], self._lateness.buckets(), self._lateness.total)
        yield checks
        yield latency
        yield lateness


class _CheckLoadCollector(Collector):
    """The scheduler's load, read at scrape time: checks in flight against the cap,
    checks due but waiting for a slot, and whether checks run late (back pressure)."""

    def __init__(self, load: Callable[[], CheckLoad | None]) -> None:
        self._load = load

    def describe(self) -> Iterator[Metric]:
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        return self._families(self._load())

    def _families(self, load: CheckLoad | None) -> Iterator[Metric]:
        for name, doc, value in (
            ("dynserver_checks_scheduled", "Distinct checks the scheduler runs.", "checks"),
            ("dynserver_checks_in_flight", "Checks running now (each holds a socket).", "in_flight"),
            (
                "dynserver_checks_in_flight_limit",
                "The cap on checks running at once ([server] checks_in_flight).",
                "max_in_flight",
            ),
            ("dynserver_checks_waiting", "Checks due and waiting for a free slot.", "waiting"),
            (
                "dynserver_checks_behind",
                "1 while checks start over a second late (the machine cannot keep up), else 0.",
                "behind",
            ),
        ):
            family = GaugeMetricFamily(name, doc)
            if load is not None:
                family.add_metric([], float(getattr(load, value)))
            yield family


class _StateCollector(_SampledCollector):
    """What is read at scrape time: DNS reply counts, target states, zone serials,
    locations."""

    def __init__(
        self,
        queries: QueryStats,
        targets: Callable[[], Iterable[TargetSample]],
        serials: Callable[[], Mapping[str, int]],
        locations: Callable[[], Iterable[LocationSample]],
    ) -> None:
        self._queries = queries
        self._targets = targets
        self._serials = serials
        self._locations = locations

    def _families(self, samples: bool) -> Iterator[Metric]:
        replies = CounterMetricFamily(
            "dynserver_dns_queries",
            "DNS messages answered, by transport, question type (other: any type not "
            "listed in docs/operations.md) and the reply's rcode.",
            labels=["transport", "qtype", "rcode"],
        )
        for transport, qtype, rcode, count in self._queries.totals() if samples else ():
            replies.add_metric([transport, qtype, rcode], count)
        yield replies
        dropped = CounterMetricFamily(
            "dynserver_dns_dropped",
            "DNS messages dropped without a reply (a reply sent to us, shorter than a header).",
            labels=["transport"],
        )
        for transport, count in zip(("udp", "tcp"), self._queries.dropped if samples else (), strict=False):
            dropped.add_metric([transport], count)
        yield dropped
        states = GaugeMetricFamily(
            "dynserver_target_state",
            "1 for each target's current health state, 0 for the others.",
            labels=["record", "type", "target", "state"],
        )
        for sample in self._targets() if samples else ():
            for state in STATES:
                value = 1.0 if state == sample.state else 0.0
                states.add_metric([sample.record, sample.type, sample.target, state], value)
        yield states
        forced = GaugeMetricFamily(
            "dynserver_target_forced",
            "Targets an admin forced up or down (state label): the Unix time it ends, +Inf until cleared.",
            labels=["record", "type", "target", "state"],
        )
        for sample in self._targets() if samples else ():
            if sample.forced is not None:
                until = math.inf if sample.forced_until is None else sample.forced_until
                forced.add_metric([sample.record, sample.type, sample.target, sample.forced], until)
        yield forced
        serials = GaugeMetricFamily("dynserver_zone_serial", "Each zone's SOA serial.", labels=["zone"])
        for zone, serial in sorted(self._serials().items()) if samples else ():
            serials.add_metric([zone], serial)
        yield serials
        yield from self._location_families(samples)
        info = GaugeMetricFamily(
            "dynserver_build_info", "Always 1; the version is a label.", labels=["version"]
        )
        if samples:
            info.add_metric([__version__], 1)
        yield info

    def _location_families(self, samples: bool) -> Iterator[Metric]:
        """Each location's freshness, age and exclusion: empty without [locations]."""
        fresh = GaugeMetricFamily(
            "dynserver_location_fresh_targets",
            "Targets whose last result from this location is fresh enough to vote.",
            labels=["location"],
        )
        contact = GaugeMetricFamily(
            "dynserver_location_last_contact_seconds",
            "Seconds since this location was last heard from (absent: never).",
            labels=["location"],
        )
        excluded = GaugeMetricFamily(
            "dynserver_location_excluded",
            "1 while this location is excluded from the vote (its own connectivity is gone), else 0.",
            labels=["location"],
        )
        now = time.time()
        for location in self._locations() if samples else ():
            fresh.add_metric([location.name], location.fresh_targets)
            if location.last_contact is not None:
                contact.add_metric([location.name], max(0.0, now - location.last_contact))
            excluded.add_metric([location.name], 1.0 if location.excluded else 0.0)
        yield fresh
        yield contact
        yield excluded


class _RrlCollector(Collector):
    """Response rate limiting: replies limited, and of those how many slipped (TC=1 or
    BADCOOKIE) and were dropped (dynserver/dns/rrl.py)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def collect(self) -> Iterator[Metric]:
        limiter = self._limiter
        limited = CounterMetricFamily(
            "dynserver_rrl_limited", "UDP replies over the rate limit (slipped + dropped)."
        )
        limited.add_metric([], limiter.limited)
        yield limited
        outcome = CounterMetricFamily(
            "dynserver_rrl_replies",
            "Limited UDP replies by what was sent: slipped (TC=1 or BADCOOKIE) or dropped.",
            labels=["result"],
        )
        outcome.add_metric(["slipped"], limiter.slipped)
        outcome.add_metric(["dropped"], limiter.dropped)
        yield outcome
