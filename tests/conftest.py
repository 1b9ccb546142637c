"""Suite-wide guards."""

from __future__ import annotations

import ipaddress
import sys

import pytest

from dynserver import propagation


@pytest.fixture(autouse=True)
def propagation_stays_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests send DNS traffic only to 127.0.0.0/8: a propagation check in this process
    that would ask anything else (a default public resolver, a nameserver's real address)
    fails the test instead of leaving the machine."""
    real = propagation.dns_asker

    def guarded(timeout: float) -> propagation.Ask:
        ask = real(timeout)

        async def checked(
            where: propagation.Endpoint, qname: str, qtype: str, recursion: bool
        ) -> propagation.Reply:
            if ipaddress.ip_address(where.host) not in ipaddress.ip_network("127.0.0.0/8"):
                raise AssertionError(f"a test asked {where} for {qname} {qtype}: only 127.0.0.0/8 is allowed")
            return await ask(where, qname, qtype, recursion)

        return checked

    # Every module that holds the asker by name (the package, where it is defined, and the
    # Checker's module, which calls it) gets the guarded one.
    for module in list(sys.modules.values()):
        held = getattr(module, "dns_asker", None) is real
        if held and module.__name__.startswith("dynserver.propagation"):
            monkeypatch.setattr(module, "dns_asker", guarded)
