"""``GET /nic/update`` in-process: authentication, lockout, durability, and the words.

Real clients (ddclient, inadyn, curl) are in test_clients.py; here every reply code is
reached on purpose, from chosen client addresses."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from dynserver.update.limits import LimitPolicy
from tests.update.common import APP, BRAVO, Running, ask, running


def run(tmp_path: Path, test: Any, limits: LimitPolicy | None = None) -> None:
    async def main() -> None:
        async with running(tmp_path, limits=limits) as live:
            await test(live)

    asyncio.run(main())


async def update(
    client: httpx.AsyncClient, auth: tuple[str, str] | None, path: str = "/nic/update", **params: str
) -> httpx.Response:
    return await client.get(path, params=params, auth=auth)


def test_good_then_nochg_live_and_recorded(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        secret = await live.credential("bravo-backup", targets=(f"{APP}/bravo",))
        auth = ("bravo-backup", secret)
        async with live.client("198.51.100.7") as client:
            first = await update(client, auth, hostname=BRAVO, myip="192.0.2.23")
            assert (first.status_code, first.text) == (200, "good 192.0.2.23\n")
            assert first.headers["content-type"] == "text/plain; charset=utf-8"
            assert ask(live.app, BRAVO) == ["192.0.2.23"]
            again = await update(client, auth, path="/v3/update", hostname=BRAVO, myip="192.0.2.23")
            assert again.text == "nochg 192.0.2.23\n"
            mine = await update(client, auth, hostname=BRAVO)  # no myip: the client's address
            assert mine.text == "good 198.51.100.7\n"
            several = await update(
                client,
                auth,
                hostname=f"{BRAVO},charlie.{APP},x,nope.{APP}",
                myip="2001:db8::1,192.0.2.40/24",
                system="dyndns",
                wildcard="NOCHG",
                offline="NO",
            )
            assert several.text == "good 192.0.2.40\nnohost\nnotfqdn\nnohost\n"
        assert live.app.store is not None
        [event] = await live.app.store.events(kind="update", limit=1)
        assert (event.actor, event.previous, event.current, event.target) == (
            "bravo-backup",
            "198.51.100.7",
            "192.0.2.40",
            "bravo",
        )
        assert event.detail == {"type": "A", "source": "198.51.100.7", "via": "dyndns2"}

    run(tmp_path, test)


def test_admin_updates_any_address_target_but_no_cname(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        auth = ("root", await live.credential("root", admin=True))
        async with live.client("2001:db8:77::5") as client:
            both = await update(client, auth, hostname=f"charlie.{APP},delta.v6.dyn.example.test")
            # the client's IPv6 address fits the AAAA target; the A target has none: nohost
            assert both.text == "nohost\ngood 2001:db8:77::5\n"
            cname = await update(client, auth, hostname="echo.www.dyn.example.test", myip="192.0.2.9")
            assert cname.text == "nohost\n"
            active = await update(client, auth, hostname=f"charlie.{APP}", myip="192.0.2.31")
            assert active.text == "good 192.0.2.31\n"
        assert ask(live.app, APP) == ["192.0.2.31"]  # the answered target changes at once

    run(tmp_path, test)


def test_badauth(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        secret = await live.credential("bravo-backup", targets=(f"{APP}/bravo",))
        async with live.client() as client:
            for auth in (None, ("bravo-backup", "wrong"), ("nobody", secret)):
                response = await update(client, auth, hostname=BRAVO, myip="192.0.2.9")
                assert (response.status_code, response.text) == (401, "badauth\n"), auth
                assert response.headers["www-authenticate"] == 'Basic realm="dynserver"'
        assert ask(live.app, BRAVO) == []

    run(tmp_path, test)


def test_brute_force_is_locked_out_and_other_credentials_keep_working(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        alpha = await live.credential("alpha", targets=(f"{APP}/bravo",))
        beta = await live.credential("beta", targets=(f"{APP}/charlie",))
        async with live.client("192.0.2.66") as attacker, live.client("192.0.2.10") as owner:
            codes = []
            for n in range(12):
                response = await update(attacker, ("alpha", f"guess-{n}"), hostname=BRAVO)
                codes.append(response.text.strip())
            assert codes == ["badauth"] * 10 + ["abuse"] * 2
            # locked: even the right secret from that client is refused, and says why
            locked = await update(attacker, ("alpha", alpha), hostname=BRAVO, myip="192.0.2.9")
            assert (locked.status_code, locked.text) == (200, "abuse\n")
            assert int(locked.headers["retry-after"]) > 800
            # the owner, from elsewhere, and other credentials are not affected
            assert (
                await update(owner, ("alpha", alpha), hostname=BRAVO, myip="192.0.2.9")
            ).text == "good 192.0.2.9\n"
            response = await update(owner, ("beta", beta), hostname=f"charlie.{APP}", myip="192.0.2.8")
            assert response.text == "good 192.0.2.8\n"
        assert ask(live.app, BRAVO) == ["192.0.2.9"]

    run(tmp_path, test)


def test_guesses_from_many_clients_lock_the_name_only(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        alpha = await live.credential("alpha", targets=(f"{APP}/bravo",))
        beta = await live.credential("beta", targets=(f"{APP}/charlie",))
        for n in range(4):
            async with live.client(f"203.0.113.{n}") as client:
                await update(client, ("alpha", "guess"), hostname=BRAVO)
        async with live.client("192.0.2.10") as owner:
            assert (await update(owner, ("alpha", alpha), hostname=BRAVO)).text == "abuse\n"
            assert (
                await update(owner, ("beta", beta), hostname=f"charlie.{APP}")
            ).text == "good 192.0.2.10\n"

    run(tmp_path, test, LimitPolicy(client_failures=10, credential_failures=4))


def test_rate_limit_is_abuse_per_line(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        auth = ("root", await live.credential("root", admin=True))
        async with live.client() as client:
            assert (await update(client, auth, hostname=BRAVO, myip="192.0.2.1")).status_code == 200
            assert (await update(client, auth, hostname=BRAVO, myip="192.0.2.2")).status_code == 200
            limited = await update(client, auth, hostname=f"{BRAVO},charlie.{APP}", myip="192.0.2.3")
            assert (limited.status_code, limited.text) == (200, "abuse\nabuse\n")
        assert ask(live.app, BRAVO) == ["192.0.2.2"]

    run(tmp_path, test, LimitPolicy(burst=2, rate=0.001))


def test_a_failed_commit_is_911_and_no_success_word(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        auth = ("root", await live.credential("root", admin=True))
        assert live.app.store is not None
        with mock.patch.object(
            live.app.store, "commit", side_effect=sqlite3.OperationalError("disk I/O error")
        ):
            async with live.client() as client:
                response = await update(client, auth, hostname=f"{BRAVO},charlie.{APP}", myip="192.0.2.5")
        assert (response.status_code, response.text) == (500, "911\n911\n")
        assert ask(live.app, BRAVO) == [] and ask(live.app, APP) == ["192.0.2.21"]

    run(tmp_path, test)


def test_an_unreadable_credential_table_is_911(tmp_path: Path) -> None:
    async def test(live: Running) -> None:
        assert live.app.store is not None
        with mock.patch.object(live.app.store, "credential", side_effect=sqlite3.OperationalError("locked")):
            async with live.client() as client:
                response = await update(client, ("root", "x"), hostname=BRAVO)
        assert (response.status_code, response.text) == (500, "911\n")

    run(tmp_path, test)
