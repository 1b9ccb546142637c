"""No secret reaches the logs: dyndns2 passwords and API Bearer tokens, right or wrong,
in any level, in either log format (dynserver.logs), on success and on failure."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path

import pytest

from dynserver.logs import JsonFormatter, TextFormatter
from tests.update.common import APP, BRAVO, running

WRONG_PASSWORD = "Wrong-Password-4a7c1e9b"
WRONG_TOKEN = "wrong-token-0f3d8c2a7e6b"


def test_update_paths_never_log_a_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> list[str]:
        async with running(tmp_path) as live:
            secret = await live.credential("bravo-backup", targets=(f"{APP}/bravo",))
            admin = await live.credential("ops", admin=True)
            async with live.client() as client:
                good = await client.get(
                    "/nic/update",
                    params={"hostname": BRAVO, "myip": "192.0.2.77"},
                    auth=("bravo-backup", secret),
                )
                assert good.text == "good 192.0.2.77\n"
                wrong = await client.get(
                    "/nic/update", params={"hostname": BRAVO}, auth=("bravo-backup", WRONG_PASSWORD)
                )
                assert wrong.text == "badauth\n"
                path = f"/api/v1/records/{APP}/targets/bravo"
                changed = await client.put(
                    path, json={"value": "192.0.2.78"}, headers={"Authorization": f"Bearer {admin}"}
                )
                assert changed.status_code == 200 and changed.json()["changed"] is True
                refused = await client.put(
                    path, json={"value": "192.0.2.79"}, headers={"Authorization": f"Bearer {WRONG_TOKEN}"}
                )
                assert refused.status_code == 401
                # The scoped credential as a Bearer token, on a target it may not update.
                forbidden = await client.put(
                    f"/api/v1/records/{APP}/targets/charlie",
                    json={"value": "192.0.2.80"},
                    headers={"Authorization": f"Bearer {secret}"},
                )
                assert forbidden.status_code == 403
            # The events are written too (a failed write would be logged): wait for them.
            assert live.app.writer is not None
            await live.app.writer.flush()
            return [secret, admin]

    secrets = [*asyncio.run(main()), WRONG_PASSWORD, WRONG_TOKEN]
    assert all(secrets)
    formatted = [
        formatter.format(r) for r in caplog.records for formatter in (TextFormatter(), JsonFormatter())
    ]
    # A positive control: the log read below holds the line of every request that carried
    # a secret, in both formats, so the absence checks cannot pass on a missing log.
    controls = {  # the request -> the parts of its line, the last one naming who
        "good password": ("event=target_update", "via=dyndns2", "actor=bravo-backup"),
        "good token": ("event=target_update", "via=api", "actor=ops"),
        "wrong password": ("event=update_auth_failed", "credential=bravo-backup"),
        "wrong token": ("event=update_auth_failed", "credential=-"),
    }
    for request, parts in controls.items():
        lines = [r for r in caplog.records if all(part in r.getMessage() for part in parts)]
        assert len(lines) == 1, f"the {request} request's log line ({parts}) is not in the log"
        assert all(part in caplog.text for part in parts)
        event, who = parts[0].split("=")[1], parts[-1].split("=")[1]
        for formatter in (TextFormatter(), JsonFormatter()):
            text = formatter.format(lines[0])
            assert event in text and who in text
    for secret in secrets:
        basic = base64.b64encode(f"bravo-backup:{secret}".encode()).decode()
        for text in (caplog.text, *formatted):
            assert secret not in text
            assert basic not in text
