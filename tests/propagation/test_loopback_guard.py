"""The suite's own guard (tests/conftest.py): a propagation check may ask only 127.0.0.0/8.

The guard must reach every module that holds the asker by name; if the package is split
again and a module keeps the real one, this test fails instead of the suite silently
being free to ask the internet."""

from __future__ import annotations

import asyncio
import sys

import pytest

import dynserver.propagation  # loads every module of the package


def holders() -> list[str]:
    return sorted(
        name
        for name, module in sys.modules.items()
        if name.startswith("dynserver.propagation") and hasattr(module, "dns_asker")
    )


def test_the_package_and_the_checker_hold_the_asker() -> None:
    assert {"dynserver.propagation", "dynserver.propagation.cache"} <= set(holders())


@pytest.mark.parametrize("name", holders())
def test_a_check_that_would_leave_loopback_fails(name: str) -> None:
    asker = sys.modules[name].dns_asker

    async def ask_outside() -> None:
        ask = asker(0.5)
        await ask(dynserver.propagation.Endpoint("192.0.2.1", 53), "www.example.test.", "A", False)

    with pytest.raises(AssertionError, match=r"only 127\.0\.0\.0/8 is allowed"):
        asyncio.run(ask_outside())
