"""A parent zone that delegates to dynserver, and a resolver (unbound) that follows the
delegation, run inside a private network namespace (tests/netns.py).

A delegation's glue is an address without a port, so a resolver following it, and
anything that asks a zone's nameservers by name, uses port 53: every server here listens
on port 53 of its own 127.0.0.x, which inside the namespace touches nothing of the host.
Used by tests/e2e/test_unbound.py and tests/web/test_propagation.py.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from tests.netns import NetNamespace
from tests.support import ROOT, require_program


def serve_dynserver(
    ns: NetNamespace,
    folder: Path,
    zone: str,
    text: str,
    host: str,
    extra: str = "",
    http: str | None = None,
) -> Path:
    """Serve ``zone`` from ``text`` with dynserver on host:53 (and the web UI on ``http``)
    inside the namespace; ``extra`` is appended to its config. Returns the config path."""
    work = folder / zone
    work.mkdir()
    (work / f"{zone}.zone").write_text(text)
    config = work / "dynserver.toml"
    config.write_text(f'[server]\ndns = ["{host}:53"]\n\n[zones."{zone}"]\nfile = "{zone}.zone"\n{extra}')
    log = work / "dynserver.log"
    argv = [
        sys.executable,
        "-m",
        "dynserver",
        "serve",
        "--config",
        config,
        *(["--http", http] if http else []),
    ]
    process = ns.popen(argv, log, cwd=ROOT)
    ns.wait_for_dns(host, 53, zone, process=process, log=log)
    return config


def serve_nsd(ns: NetNamespace, folder: Path, zone: str, text: str, host: str, name: str = "nsd") -> None:
    """Serve ``zone`` from ``text`` (a static copy) with NSD on host:53 inside the namespace."""
    nsd = require_program("nsd", "nsd")
    work = folder / name
    work.mkdir()
    (work / f"{zone}.zone").write_text(text)
    config = work / "nsd.conf"
    config.write_text(
        textwrap.dedent(f"""\
        server:
            ip-address: {host}
            port: 53
            do-ip6: no
            server-count: 1
            username: ""
            chroot: ""
            zonesdir: "{work}"
            database: ""
            zonelistfile: "{work}/zone.list"
            xfrdfile: "{work}/xfrd.state"
            xfrdir: "{work}"
            pidfile: "{work}/nsd.pid"
            logfile: "{work}/nsd.log"
            verbosity: 1
        remote-control:
            control-enable: no
        zone:
            name: "{zone}"
            zonefile: "{zone}.zone"
        """)
    )
    log = work / "nsd.out"
    process = ns.popen([nsd, "-d", "-c", config], log)
    ns.wait_for_dns(host, 53, zone, process=process, log=log)


def serve_unbound(ns: NetNamespace, folder: Path, host: str, stubs: dict[str, str]) -> Path:
    """Start unbound on host:53, knowing only where each zone of ``stubs`` is (zone ->
    server address, a stub-zone each). Returns its config (for unbound-control)."""
    unbound = require_program("unbound", "unbound")
    work = folder / "unbound"
    work.mkdir()
    stub_zones = "".join(
        f'stub-zone:\n    name: "{zone}"\n    stub-addr: {address}@53\n' for zone, address in stubs.items()
    )
    config = work / "unbound.conf"
    config.write_text(
        textwrap.dedent(f"""\
        server:
            interface: {host}
            port: 53
            outgoing-interface: {host}
            access-control: 127.0.0.0/8 allow
            do-ip6: no
            # the parent and dynserver are on 127.0.0.x: unbound must be allowed to ask them
            do-not-query-localhost: no
            # no DNSSEC validation: the test zones are unsigned and there is no trust anchor
            module-config: "iterator"
            # test. is one of unbound's default blocked local zones (RFC 6761)
            local-zone: "test." nodefault
            username: ""
            chroot: ""
            directory: "{work}"
            pidfile: "{work}/unbound.pid"
            use-syslog: no
            logfile: ""
            verbosity: 1
            num-threads: 1
            so-reuseport: no
        remote-control:
            # a TCP control port is private to the namespace, so no certificates are needed
            control-enable: yes
            control-interface: {host}
            control-port: 8953
            control-use-cert: no
        """)
        + stub_zones
    )
    checked = ns.run([require_program("unbound-checkconf", "unbound"), config], check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    log = work / "unbound.log"
    process = ns.popen([unbound, "-d", "-c", config], log)
    ns.wait_for_dns(host, 53, next(iter(stubs)), process=process, log=log)
    return config
