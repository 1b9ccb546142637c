"""What the store tests share: a target state to write and a store opened on a file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from dynserver.store.db import Store, StoredState


def state(target: str, observed: str = "up", successes: int = 1, value: str | None = None) -> StoredState:
    """A state row of app.dyn.example.test A; ``value``: an address set by an update."""
    return StoredState(
        record="app.dyn.example.test",
        type="A",
        target=target,
        observed=observed,
        since=1.0,
        successes=successes,
        failures=0,
        pending_until=None,
        maintenance=False,
        config_maintenance=False,
        last_ok=True,
        last_reason="status 200",
        last_at=2.0,
        last_latency=0.01,
        value=value,
        value_set_at=None if value is None else 3.0,
    )


def run(database: Path, test: Callable[[Store], Awaitable[None]]) -> None:
    """Run ``test`` on its own event loop with the store at ``database`` open."""

    async def main() -> None:
        store = await Store.open(database)
        try:
            await test(store)
        finally:
            await store.close()

    asyncio.run(main())
