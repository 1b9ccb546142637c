"""Check results handed over together (the scheduler's results of one loop pass): every
health change among them is published in one snapshot swap, each record answers its new
answer right after the call, and each transition still has its own event, log line and
metric (docs/benchmarks.md, issue 19: the first cycle of 20,000 targets)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dynserver import config
from dynserver.app import App
from dynserver.dns.snapshot import Snapshot
from dynserver.health.state import Result
from dynserver.types import CheckKey

ZONE = "dyn.example.test"
CONFIG = f"""\
[server]
dns = ["127.0.0.1:0"]

[monitors.web]
type = "tcp"
port = 9
interval = 3600

[zones."{ZONE}"]
nameservers = ["ns1.example.net"]
""" + "".join(
    f"""
[zones."{ZONE}".records.r{n}]
type = "A"
monitor = "web"
ttl = 30
targets = [
  {{ name = "primary", value = "192.0.2.{n + 10}", priority = 1 }},
  {{ name = "backup", value = "198.51.100.{n + 10}", priority = 2 }},
]
"""
    for n in range(3)
)


def answer(app: App, name: str) -> list[str]:
    reply = app.runtime.answer(dns.message.make_query(name, dns.rdatatype.A).to_wire(), False)
    assert isinstance(reply, bytes)
    return sorted(r.to_text() for rrset in dns.message.from_wire(reply).answer for r in rrset)


def serial(app: App) -> int:
    return next(iter(app.runtime.zones.values())).serial


def test_the_changes_of_results_handed_over_together_are_one_swap_each_answer_right_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dynserver.toml"
    path.write_text(CONFIG)
    caplog.set_level(logging.INFO, logger="dynserver")

    async def main() -> None:
        app = App(dataclasses.replace(config.load(path), database=tmp_path / "state.db"))
        runtime = app.runtime
        monkeypatch.setattr(runtime, "refresh_checks", lambda: None)  # results come from the test
        await app.start()
        runtime._check_targets = {key: targets for key, (_, _, targets) in runtime.engine.checks().items()}
        by_address: dict[str, CheckKey] = {key.address: key for key in runtime._check_targets}
        swaps: list[Snapshot] = []
        swap = runtime.swap

        def counted(snapshot: Snapshot) -> None:
            swaps.append(snapshot)
            swap(snapshot)

        monkeypatch.setattr(runtime, "swap", counted)
        loop = asyncio.get_running_loop()

        def results(*seen: tuple[str, bool]) -> list[tuple[CheckKey, Result]]:
            return [
                (by_address[address], Result(ok=ok, reason="ok" if ok else "refused", at=loop.time()))
                for address, ok in seen
            ]

        try:
            first = serial(app)
            # Every target's first result (unknown -> up or down): six transitions, two
            # records change their answer (r0 and r2 to their backup), r1 keeps its own.
            runtime.on_results(
                results(
                    ("192.0.2.10", False),
                    ("198.51.100.10", True),
                    ("192.0.2.11", True),
                    ("198.51.100.11", True),
                    ("198.51.100.12", True),
                    ("192.0.2.12", False),
                )
            )
            assert len(swaps) == 1 and serial(app) == first + 1
            assert answer(app, f"r0.{ZONE}") == ["198.51.100.10"]
            assert answer(app, f"r1.{ZONE}") == ["192.0.2.11"]
            assert answer(app, f"r2.{ZONE}") == ["198.51.100.12"]
            # Back: two transitions, two answers, one swap again.
            runtime.on_results(results(("192.0.2.10", True), ("192.0.2.12", True), ("192.0.2.11", True)))
            assert len(swaps) == 2 and serial(app) == first + 2
            assert answer(app, f"r0.{ZONE}") == ["192.0.2.10"]
            assert answer(app, f"r2.{ZONE}") == ["192.0.2.12"]
            # Nothing changes: no swap.
            runtime.on_results(results(("192.0.2.10", True), ("198.51.100.11", True)))
            assert len(swaps) == 2
            assert app.store is not None and app.writer is not None
            await app.writer.flush()
            health = await app.store.events(kind="health")
            answers = await app.store.events(kind="answer")
        finally:
            await app.stop()
        moves = sorted((e.record, e.target, e.previous, e.current) for e in health)
        assert moves == sorted(
            [
                (f"r0.{ZONE}.", "primary", "unknown", "down"),
                (f"r0.{ZONE}.", "backup", "unknown", "up"),
                (f"r1.{ZONE}.", "primary", "unknown", "up"),
                (f"r1.{ZONE}.", "backup", "unknown", "up"),
                (f"r2.{ZONE}.", "backup", "unknown", "up"),
                (f"r2.{ZONE}.", "primary", "unknown", "down"),
                (f"r0.{ZONE}.", "primary", "down", "up"),
                (f"r2.{ZONE}.", "primary", "down", "up"),
            ]
        )
        # Each answer change says what the record answered before its batch, and after.
        assert sorted((e.record, e.previous, e.current) for e in answers) == [
            (f"r0.{ZONE}.", "192.0.2.10", "198.51.100.10"),
            (f"r0.{ZONE}.", "198.51.100.10", "192.0.2.10"),
            (f"r2.{ZONE}.", "192.0.2.12", "198.51.100.12"),
            (f"r2.{ZONE}.", "198.51.100.12", "192.0.2.12"),
        ]
        lines = [r.getMessage() for r in caplog.records]
        assert sum("event=target_health" in line for line in lines) == 8
        assert sum("event=answer_changed" in line for line in lines) == 4
        counts = {
            (s.labels["record"], s.labels["target"], s.labels["state"]): s.value
            for family in text_string_to_metric_families(runtime.metrics.render().decode())
            for s in family.samples
            if s.name == "dynserver_target_transitions_total"
        }
        assert counts[(f"r0.{ZONE}", "primary", "down")] == 1 and counts[(f"r0.{ZONE}", "primary", "up")] == 1
        assert sum(counts.values()) == 8
        changes = [
            s.value
            for family in text_string_to_metric_families(runtime.metrics.render().decode())
            for s in family.samples
            if s.name == "dynserver_answer_changes_total"
        ]
        assert sorted(changes) == [2, 2]

    asyncio.run(main())


def test_a_result_alone_is_published_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """on_result (one result, as tests and the agent path hand them) changes the answer
    in the call, as before."""
    path = tmp_path / "dynserver.toml"
    path.write_text(CONFIG)

    async def main() -> None:
        app = App(config.load(path))
        runtime = app.runtime
        monkeypatch.setattr(runtime, "refresh_checks", lambda: None)
        await app.start()
        runtime._check_targets = {key: targets for key, (_, _, targets) in runtime.engine.checks().items()}
        key = next(k for k in runtime._check_targets if k.address == "198.51.100.11")
        try:
            runtime.on_result(key, Result(ok=True, reason="ok", at=asyncio.get_running_loop().time()))
            assert answer(app, f"r1.{ZONE}") == ["198.51.100.11"]  # the only target up
        finally:
            await app.stop()

    asyncio.run(main())
