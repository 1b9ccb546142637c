"""The notifier's delivery path against a real webhook receiver on 127.0.0.x: a refused
delivery is retried with growing waits until it lands, or reported failed after the last
attempt; a dead receiver delays only its own deliveries."""

from __future__ import annotations

import asyncio
import dataclasses

from dynserver.backoff import Backoff
from dynserver.model import NotifyConfig
from dynserver.notify import sender
from dynserver.notify.sender import Alert, Notifier
from tests.notify.receiver import receiver
from tests.support import free_port, loopback, until

FIRST = 0.05  # seconds before the first retry here; each next wait doubles
ALERT = Alert(
    event="failure",
    record="app.dyn.example.test.",
    type="A",
    target="charlie",
    value="192.0.2.21",
    previous="up",
    current="down",
    reason="timeout",
    time="2026-12-06T11:00:00Z",
)

Reported = tuple[str, Alert, bool, str]  # (url, alert, delivered, detail)


async def delivered(config: NotifyConfig, *alerts: Alert) -> tuple[Notifier, list[Reported]]:
    """Send ``alerts`` and wait until each destination is done with them."""
    reports: list[Reported] = []
    notifier = Notifier(config, lambda *report: reports.append(report), retry=Backoff(first=FIRST))
    await notifier.start()
    try:
        for alert in alerts:
            notifier.notify(alert)
        await asyncio.wait_for(notifier.drain(), timeout=30)
    finally:
        await notifier.stop()
    return notifier, reports


def test_a_refused_webhook_is_retried_until_it_is_delivered() -> None:
    with receiver(failures=2) as hook:
        url = f"{hook.url}/failure"
        notifier, reports = asyncio.run(delivered(NotifyConfig(on_failure=(url,)), ALERT))
        assert [(p.path, p.status) for p in hook.received] == [
            ("/failure", 503),
            ("/failure", 503),
            ("/failure", 200),
        ]
        assert all(p.body == dataclasses.asdict(ALERT) for p in hook.received)  # the same alert each time
        first, second = (b.at - a.at for a, b in zip(hook.received, hook.received[1:], strict=False))
        assert first >= FIRST * 0.9 and second >= 2 * FIRST * 0.9, (first, second)  # waits grow
        # Reported once, when it landed; the URL only by scheme and host (it may carry a token).
        assert reports == [(f"{hook.url}/...", ALERT, True, "attempt 3")]
        assert (notifier.delivered, notifier.failed) == (1, 0)


def test_a_webhook_that_never_accepts_is_reported_failed_after_the_last_attempt() -> None:
    with receiver(failures=1000) as hook:
        recovery = dataclasses.replace(ALERT, event="recovery", previous="pending", current="up")
        config = NotifyConfig(on_failure=(f"{hook.url}/failure",), on_recovery=(f"{hook.url}/recovery",))
        notifier, reports = asyncio.run(delivered(config, ALERT, recovery))
        paths = [p.path for p in hook.received]
        assert paths.count("/failure") == paths.count("/recovery") == sender.ATTEMPTS
        assert sorted(reports, key=lambda r: r[1].event) == [
            (f"{hook.url}/...", ALERT, False, "RuntimeError: status 503"),
            (f"{hook.url}/...", recovery, False, "RuntimeError: status 503"),
        ]
        assert (notifier.delivered, notifier.failed) == (0, 2)


def test_a_dead_receiver_delays_only_its_own_deliveries() -> None:
    host = loopback()
    dead = f"http://{host}:{free_port(host)}/failure"  # nothing listens: connection refused

    async def main(live: str) -> list[Reported]:
        reports: list[Reported] = []
        # Waits long enough that the dead receiver is still being retried at the end.
        notifier = Notifier(
            NotifyConfig(on_failure=(dead, live)),
            lambda *report: reports.append(report),
            retry=Backoff(first=60),
        )
        await notifier.start()
        try:
            notifier.notify(ALERT)
            await until(lambda: bool(reports), "the live receiver's delivery")
        finally:
            await notifier.stop()
        return reports

    with receiver() as hook:
        reports = asyncio.run(main(f"{hook.url}/failure"))
        assert reports == [(f"{hook.url}/...", ALERT, True, "attempt 1")]
        assert hook.posts == [("/failure", dataclasses.asdict(ALERT))]
