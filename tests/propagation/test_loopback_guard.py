"""The suite's own guard (tests/conftest.py): a propagation check may ask only 127.0.0.0/8.

The guard patches the asker where the Checker looks it up; if the package is split again
and the patch lands on a name nobody reads, this test fails instead of the suite silently
being free to ask the internet."""

from __future__ import annotations

import asyncio

import pytest

from dynserver import propagation
from dynserver.propagation import cache


def test_a_check_that_would_leave_loopback_fails() -> None:
    async def ask_outside() -> None:
        ask = cache.dns_asker(0.5)  # what Checker calls
        await ask(propagation.Endpoint("192.0.2.1", 53), "www.example.test.", "A", False)

    with pytest.raises(AssertionError, match="only 127.0.0.0/8 is allowed"):
        asyncio.run(ask_outside())
