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
            await asyncio.sleep(0.3)  # let the writer's batch (events) go by too
            return [secret, admin]

    secrets = [*asyncio.run(main()), WRONG_PASSWORD, WRONG_TOKEN]
    # The updates were logged, with who and from where: the test saw the log.
    assert "event=target_update" in caplog.text and "actor=bravo-backup" in caplog.text
    assert "event=update_auth_failed" in caplog.text
    formatted = [
        formatter.format(r) for r in caplog.records for formatter in (TextFormatter(), JsonFormatter())
    ]
    for secret in secrets:
        basic = base64.b64encode(f"bravo-backup:{secret}".encode()).decode()
        for text in (caplog.text, *formatted):
            assert secret not in text
            assert basic not in text
