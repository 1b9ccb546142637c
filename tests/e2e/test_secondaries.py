"""NSD, Knot and BIND as secondaries of a real dynserver, with and without TSIG.

Each secondary runs in the foreground on 127.0.0.x with a random free port
(tests/secondaries.py has their configs). A real failover (a backend killed, its tcp
check fails, the answer moves) must reach every secondary, through NOTIFY and IXFR,
and the time from the health transition (dynserver's log line) to each secondary
answering is printed. Transfers from elsewhere are refused; after a dynserver restart
the secondaries, paused meanwhile, continue with IXFR from the journal stored in SQLite.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import pytest

from tests.backends import Backend, backends
from tests.secondaries import (
    KINDS,
    PROGRAMS,
    Key,
    Primary,
    Secondary,
    listen_host,
    logged_transition,
    primary_config,
    secondary,
)
from tests.support import Server, dynserver, free_port, loopback, master_file, poll, require_program

pytestmark = pytest.mark.slow

ZONE = "dyn.example.test"
APP = f"app.{ZONE}."
SECRET = base64.b64encode(b"secondaries-test-secret-01234567").decode()
OTHER = base64.b64encode(b"not-allowed-for-transfers-765432").decode()
INTERVAL = 0.2  # seconds between checks: a failover happens well within a second
POLL = 0.01  # seconds: when each secondary first answered is measured to this


def zone_file() -> str:
    hosts = "".join(f"host{i} IN A 198.51.100.{i}\n" for i in range(1, 40))
    return master_file(ZONE, f"ns1 IN A 192.0.2.53\nwww IN A 192.0.2.10\n{hosts}")


@dataclass
class Cluster:
    """dynserver, its two backends and its three secondaries."""

    folder: Path
    tsig: bool
    config: Path
    host: str
    port: int
    alpha: Backend
    beta: Backend
    secondaries: dict[str, Secondary] = field(default_factory=dict)
    server: Server | None = None
    _stack: ExitStack = field(default_factory=ExitStack)

    @property
    def primary(self) -> Server:
        assert self.server is not None
        return self.server

    def start_dynserver(self) -> None:
        self.server = self._stack.enter_context(
            dynserver(self.config, host=self.host, port=self.port, zone=ZONE)
        )

    def restart_dynserver(self) -> None:
        self._stack.close()  # stops dynserver by PID (SIGTERM: a clean stop)
        self._stack = ExitStack()
        self.start_dynserver()


@pytest.fixture(scope="module", params=[False, True], ids=["no-tsig", "tsig"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    programs = {kind: require_program(*PROGRAMS[kind]) for kind in KINDS}
    tsig: bool = request.param
    folder = tmp_path_factory.mktemp("tsig" if tsig else "plain")
    port = free_port("127.0.0.1")
    with backends(folder) as pool:
        backend_port = free_port("127.0.0.1")
        alpha = pool.add("tcp", "alpha", loopback(), backend_port)
        beta = pool.add("tcp", "beta", loopback(), backend_port)
        places = {kind: listen_host(kind, loopback()) for kind in KINDS}
        addresses = {kind: (host, free_port(host)) for kind, host in places.items()}
        (folder / "zone").write_text(zone_file())
        config = folder / "dynserver.toml"
        config.write_text(
            primary_config(
                ZONE,
                addresses,
                {"xfr": SECRET, "other": OTHER},
                tsig,
                ((alpha.host, alpha.port), (beta.host, beta.port)),
                INTERVAL,
            )
        )
        cluster = Cluster(folder, tsig, config, loopback(), port, alpha, beta)
        cluster.start_dynserver()
        primary = Primary(cluster.host, cluster.port, ZONE)
        key = Key("xfr", SECRET) if tsig else None
        with ExitStack() as stack:
            for kind, (host, kind_port) in addresses.items():
                cluster.secondaries[kind] = stack.enter_context(
                    secondary(kind, programs[kind], folder / kind, host, kind_port, primary, key)
                )
            try:
                yield cluster
            finally:
                cluster._stack.close()


# -- helpers ---------------------------------------------------------------------------


def primary_answer(cluster: Cluster) -> frozenset[str]:
    reply = dns.query.udp(
        dns.message.make_query(APP, "A"), cluster.primary.host, port=cluster.primary.port, timeout=1
    )
    return frozenset(r.to_text() for rrset in reply.answer for r in rrset)


def primary_serial(cluster: Cluster) -> int:
    reply = dns.query.udp(
        dns.message.make_query(ZONE + ".", "SOA"), cluster.primary.host, port=cluster.primary.port
    )
    return int(reply.answer[0][0].serial)


def transfers(server: Server, peer: str) -> list[tuple[str, str]]:
    """(type, from serial) of every transfer dynserver served to ``peer``."""
    return re.findall(
        rf"event=transfer type=(\S+) zone=\S+ serial=\d+ from=(\S+) peer={re.escape(peer)} ",
        server.log_text(),
    )


def transition_time(server: Server, target: str, current: str, after: int) -> float:
    """When ``target`` went ``current``, as logged after the first ``after`` characters."""
    at = poll(
        lambda: logged_transition(server.log_text()[after:], target, current),
        lambda found: found is not None,
        f"{target} {current} in the log",
        every=POLL,
    )
    assert at is not None
    return at


def wait_everywhere(cluster: Cluster, expected: frozenset[str]) -> dict[str, float]:
    """Wait until every secondary answers ``expected`` for app; when each first did."""
    seen: dict[str, float] = {}

    def check() -> dict[str, float]:
        for kind, running in cluster.secondaries.items():
            if kind not in seen and running.addresses(APP) == expected:
                seen[kind] = time.time()
        return seen

    poll(
        check,
        lambda s: len(s) == len(cluster.secondaries),
        f"every secondary answering {set(expected)}",
        every=POLL,
    )
    return seen


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n    {text}", end="")


# -- the tests -------------------------------------------------------------------------


def test_the_secondaries_serve_the_zone(cluster: Cluster) -> None:
    serial = primary_serial(cluster)
    for kind, running in cluster.secondaries.items():
        poll(running.serial, lambda s: s == serial, f"{kind} at serial {serial}", every=POLL)
        assert running.addresses(APP) == primary_answer(cluster) == {cluster.alpha.host}, kind
        assert running.addresses(f"host7.{ZONE}.") == {"198.51.100.7"}, kind


def test_a_failover_reaches_every_secondary_by_ixfr(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    server = cluster.primary
    poll(lambda: primary_answer(cluster), lambda a: a == {cluster.alpha.host}, "alpha answered", every=POLL)
    wait_everywhere(cluster, frozenset({cluster.alpha.host}))
    before = {kind: len(transfers(server, s.host)) for kind, s in cluster.secondaries.items()}
    mark = len(server.log_text())

    cluster.alpha.kill()
    seen = wait_everywhere(cluster, frozenset({cluster.beta.host}))
    down = transition_time(server, "alpha", "down", mark)
    mode = "tsig" if cluster.tsig else "no tsig"
    report(capsys, f"failover ({mode}): " + ", ".join(f"{k} {seen[k] - down:.3f} s" for k in KINDS))

    mark = len(server.log_text())
    cluster.alpha.start()
    seen = wait_everywhere(cluster, frozenset({cluster.alpha.host}))
    up = transition_time(server, "alpha", "up", mark)
    report(capsys, f"failback ({mode}): " + ", ".join(f"{k} {seen[k] - up:.3f} s" for k in KINDS))

    for kind, running in cluster.secondaries.items():
        new = transfers(server, running.host)[before[kind] :]
        assert new and all(kind_ == "IXFR" for kind_, _ in new), (kind, new)


def test_a_transfer_from_elsewhere_is_refused(cluster: Cluster) -> None:
    server = cluster.primary
    stranger = loopback()
    query = dns.message.make_query(ZONE + ".", dns.rdatatype.AXFR)
    reply = dns.query.tcp(query, server.host, port=server.port, source=stranger, timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED and not reply.answer
    if not cluster.tsig:
        return
    # Keyed secondaries are trusted for their key, not their address.
    nsd = cluster.secondaries["nsd"].host
    reply = dns.query.tcp(query, server.host, port=server.port, source=nsd, timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED
    wrong = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", OTHER)})
    signed = dns.message.make_query(ZONE + ".", dns.rdatatype.AXFR)
    signed.use_tsig(wrong, keyname="xfr.")
    with pytest.raises(dns.tsig.PeerBadSignature):
        dns.query.tcp(signed, server.host, port=server.port, source=stranger, timeout=5)
    other = dns.tsigkeyring.from_text({"other.": ("hmac-sha256", OTHER)})
    signed = dns.message.make_query(ZONE + ".", dns.rdatatype.AXFR)
    signed.use_tsig(other, keyname="other.")  # a key we know, not allowed to transfer
    reply = dns.query.tcp(signed, server.host, port=server.port, source=stranger, timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED and reply.had_tsig


def test_after_a_restart_the_secondaries_continue_incrementally(cluster: Cluster) -> None:
    wait_everywhere(cluster, frozenset({cluster.alpha.host}))
    serial = primary_serial(cluster)
    for running in cluster.secondaries.values():
        running.pause()  # they miss the next change entirely
    try:
        cluster.alpha.kill()
        poll(
            lambda: primary_answer(cluster),
            lambda a: a == {cluster.beta.host},
            "the failover at dynserver",
            every=POLL,
        )
        cluster.restart_dynserver()
        assert primary_answer(cluster) == {cluster.beta.host}
    finally:
        for running in cluster.secondaries.values():
            running.resume()
    wait_everywhere(cluster, frozenset({cluster.beta.host}))
    for kind, running in cluster.secondaries.items():
        served = transfers(cluster.primary, running.host)  # the new process's log only
        assert ("IXFR", str(serial)) in served, (kind, served)
        assert not any(kind_ in ("AXFR", "IXFR-AXFR") for kind_, _ in served), (kind, served)
    cluster.alpha.start()
    wait_everywhere(cluster, frozenset({cluster.alpha.host}))
