"""The ICMP probe against real loopback addresses: an echo reply is up; no reply within
the timeout is down. Silence is made in a network namespace of the test's own, where
echo requests can be ignored without touching the host; there the probe runs once with
an unprivileged ICMP socket and once with a raw one (its two ways of pinging)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from dynserver.health.probes import Check, run_check
from dynserver.health.state import Result
from dynserver.model import Monitor, MonitorType
from tests.netns import net_namespace
from tests.support import ROOT

MONITOR = Monitor(name="ping", type=MonitorType.ICMP, timeout=0.5)
NOT_PERMITTED = "icmp not permitted"  # the probe's reason when the OS refuses both sockets


def ping(address: str) -> Result:
    return asyncio.run(run_check(Check(monitor=MONITOR, address=address, port=None, path="/", headers=())))


@pytest.mark.parametrize("address", ["127.0.0.1", "127.31.41.59", "::1"])
def test_an_echo_reply_from_loopback_is_up(address: str) -> None:
    result = ping(address)
    if result.reason.startswith(NOT_PERMITTED):
        pytest.skip(f"the OS refuses ICMP sockets to this user: {result.reason}")
    if not result.ok and address == "::1" and not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("this host has no IPv6")
    assert (result.ok, result.reason) == (True, "echo reply")
    assert result.latency is not None and 0 <= result.latency < MONITOR.timeout


# Runs inside the namespace (as its root): chooses the socket the probe gets through
# net.ipv4.ping_group_range, pings 127.0.0.1, then makes the namespace ignore echo
# requests and pings again. Prints both results as JSON.
_IN_NAMESPACE = r"""
import asyncio, json, sys
from dynserver.health.probes import Check, run_check
from dynserver.model import Monitor, MonitorType

def sysctl(name, value):
    with open("/proc/sys/" + name.replace(".", "/"), "w") as handle:
        handle.write(value)

async def ping():
    monitor = Monitor(name="ping", type=MonitorType.ICMP, timeout=float(sys.argv[2]))
    result = await run_check(Check(monitor=monitor, address="127.0.0.1", port=None, path="/", headers=()))
    return [result.ok, result.reason]

async def main():
    sysctl("net.ipv4.ping_group_range", sys.argv[1])
    answered = await ping()
    sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    print(json.dumps({"answered": answered, "ignored": await ping()}))

asyncio.run(main())
"""

# ping_group_range: every group may open an unprivileged ICMP socket, or none may (the
# probe then falls back to a raw socket, which the namespace's root may open).
SOCKETS = {"unprivileged": "0 2147483647", "raw": "1 0"}


@pytest.mark.parametrize("socket_kind", list(SOCKETS))
def test_no_echo_reply_within_the_timeout_is_down(socket_kind: str) -> None:
    with net_namespace() as ns:
        done = ns.run(
            [sys.executable, "-c", _IN_NAMESPACE, SOCKETS[socket_kind], str(MONITOR.timeout)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    results = json.loads(done.stdout)
    assert results["answered"] == [True, "echo reply"]  # the same address, before the silence
    assert results["ignored"] == [False, "timeout"]
