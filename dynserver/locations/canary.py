"""A location's canary: a TCP connect to an address every location should reach
([locations] canary). When it fails, the location's own connectivity is gone and its
votes do not count (locations.quorum.Connectivity). The server and every agent run it."""

from __future__ import annotations

from dynserver.config.server import parse_listener
from dynserver.health.probes import Check
from dynserver.model import Monitor, MonitorType

# How often a canary is checked, and how long a connect may take.
CANARY_INTERVAL = 5.0
CANARY_TIMEOUT = 2.0


def canary_check(address: str, interval: float = CANARY_INTERVAL) -> Check:
    """``host:port`` as a tcp check (connect, nothing sent). ValueError if it is not one."""
    listener = parse_listener(address)
    timeout = min(CANARY_TIMEOUT, interval)
    monitor = Monitor(
        name="canary", type=MonitorType.TCP, port=listener.port, interval=interval, timeout=timeout
    )
    return Check(monitor=monitor, address=listener.host, port=listener.port, path="/", headers=())
