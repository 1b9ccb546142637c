"""Checks from several locations, decided by quorum (issue 13), with real processes and
real network faults: a dynserver on 127.0.0.x, `dynserver agent run` processes each under
a uid of its own, HTTP backends as processes of their own (tests/backends.py), and
partitions made with nftables rules on one location's uid (tests/locations_support.py).

Checks every 0.4 s with a 0.4 s timeout, two failed results to take a location's view
down (one slow check on a busy machine must not look like a partition), one to bring it
up, no failback delay; a location is stale 1.6 s after its last result (stale_after 3).
Tests wait for what they assert by polling; the few fixed waits assert that something
does *not* happen and say so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backends import Backend, Backends, backends
from tests.e2e.test_failover import (
    ZONE,
    answer,
    make_config,
    monitor,
    record,
    target,
)
from tests.locations_support import (
    Locations,
    add_agent,
    locations,
    remove_agent,
    require_agents,
    require_partitions,
    stream,
)
from tests.support import free_port, loopback, poll
from tests.update.common import add

LOCAL = "local"
AGENTS = ("east", "west")
INTERVAL = 0.4
TIMEOUT = 0.4  # a partition drops packets: each check of it times out
STALE_AFTER = 3
FRESH_FOR = STALE_AFTER * INTERVAL + TIMEOUT  # a location's result counts this long
WATCH = FRESH_FOR + 0.4  # seconds an answer is watched to show it does not change
DEADLINE = 15.0  # generous: five engineers share two cores


@dataclass
class Setup:
    run: Locations
    preferred: Backend  # priority 1: answered while the vote says it is up
    backup: Backend  # priority 2

    def answers(self) -> tuple[str, ...]:
        assert self.run.server is not None
        return answer(self.run.server, "app").values

    def wait_answer(self, backend: Backend, timeout: float = DEADLINE) -> None:
        poll(self.answers, lambda values: values == (backend.host,), f"app -> {backend.name}", timeout)

    def keeps_answering(self, backend: Backend, seconds: float = WATCH) -> None:
        """The answer stays ``backend`` for ``seconds`` (a fixed wait: nothing must happen)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.answers() == (backend.host,), f"app moved away from {backend.name}"
            time.sleep(0.05)

    def vote(self) -> dict[str, int]:
        vote: dict[str, int] = self.run.target("app", self.preferred.name)["vote"]
        return vote

    def wait_seen(self, location: str, health: str) -> None:
        """Until ``location``'s own state machine has the preferred backend at ``health``."""
        poll(
            lambda: self.run.views("app", self.preferred.name)[location]["health"],
            lambda seen: seen == health,
            f"{location} sees {self.preferred.name} {health}",
            DEADLINE,
        )


def config_text(quorum: int) -> str:
    table = f'[locations]\nquorum = {quorum}\nlocal = true\nname = "{LOCAL}"\nstale_after = {STALE_AFTER}\n\n'
    # The tests poll the API from one address faster than [web.limits]' defaults allow a
    # client: what they poll for must not be a 429.
    table += "[web.limits]\nburst = 100000\nrate = 10000\n\n"
    checks = {"interval": INTERVAL, "timeout": TIMEOUT, "consecutive_up": 1, "consecutive_down": 2}
    return table + monitor("web", "http", path="/health", failback_delay=0, **checks)


def http_backend(pool: Backends, name: str) -> Backend:
    host = loopback()
    return pool.add("http", name, host, free_port(host))


@contextmanager
def quorum_of_three(tmp_path: Path, *, partitions: bool = True) -> Iterator[Setup]:
    """Quorum 2 of 3 (local + east + west), every location fresh and app on its preferred
    backend before the test begins."""
    if partitions:
        require_partitions()
    else:
        require_agents()
    with backends(tmp_path) as pool:
        a, b = http_backend(pool, "a"), http_backend(pool, "b")
        config = make_config(tmp_path, config_text(2), record("app", "web", [target(a, 1), target(b, 2)]))
        admin = add(config, "test", "--admin")
        with locations(tmp_path, config, ZONE, admin, AGENTS, local=LOCAL, partitions=partitions) as run:
            setup = Setup(run, a, b)
            run.wait_connected(LOCAL, *AGENTS, targets=2)
            setup.wait_answer(a)
            poll(
                setup.vote,
                lambda v: (v["up"], v["fresh"], v["total"], v["need"]) == (3, 3, 3, 2),
                "3 up of 3",
            )
            yield setup


# -- a partition one location sees, then two ------------------------------------------------


@pytest.mark.slow
def test_a_backend_one_location_cannot_reach_keeps_its_answer_two_move_it(tmp_path: Path) -> None:
    with quorum_of_three(tmp_path) as setup:
        run, a, b = setup.run, setup.preferred, setup.backup
        for (
            agent
        ) in run.agents.values():  # each agent is a process of its own uid: the rules can tell them apart
            assert agent.process is not None
            assert os.stat(f"/proc/{agent.process.pid}").st_uid == agent.uid
        east = run.cut("east", a)
        setup.wait_seen("east", "down")
        views = run.views("app", a.name)
        assert views["east"]["last_result"]["reason"] == "timeout", views["east"]
        assert (views[LOCAL]["health"], views["west"]["health"]) == ("up", "up")
        setup.keeps_answering(a)
        assert (setup.vote()["up"], setup.vote()["down"]) == (2, 1)

        local = run.cut(LOCAL, a)  # the server's own checks of a only
        setup.wait_answer(b)
        vote = setup.vote()
        assert (vote["down"], vote["need"]) == (2, 2), vote
        assert run.views("app", a.name)["west"]["health"] == "up", "west still reaches a"

        run.heal(east)
        run.heal(local)
        setup.wait_answer(a)


# -- an agent dies, and comes back ------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_agent_shrinks_the_vote_without_a_flip_and_resumes_when_restarted(tmp_path: Path) -> None:
    with quorum_of_three(tmp_path, partitions=False) as setup:
        run, a, b = setup.run, setup.preferred, setup.backup
        server = run.server
        assert server is not None
        east = run.agents["east"]
        east.kill()
        poll(
            lambda: run.statuses()["east"],
            lambda s: not s["connected"] and s["fresh_targets"] == 0,
            "east disconnected and stale",
            DEADLINE,
        )
        setup.keeps_answering(a)
        vote = setup.vote()
        assert (vote["up"], vote["fresh"], vote["total"], vote["need"]) == (2, 2, 3, 2), vote
        assert not run.views("app", a.name)["east"]["fresh"]
        shown = "location east stale"
        found = poll(
            lambda: [e["reason"] for e in run.events(kind="location") if shown in (e["reason"] or "")],
            bool,
            f"an event: {shown}",
            DEADLINE,
        )
        assert "deciding from 2 of 3 locations" in found[-1], found

        # A dead agent never blocks a failover: the two that still report decide.
        a.kill()
        setup.wait_answer(b)
        a.start()
        setup.wait_answer(a)

        restarted = time.time()
        east.start()  # the same token; the server keeps running
        run.wait_connected("east", since=restarted, targets=2)
        poll(setup.vote, lambda v: (v["fresh"], v["up"]) == (3, 3), "east counted again", DEADLINE)
        assert server.process.poll() is None and run.server is server, "no server restart"


# -- the server restarts ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_server_restart_agents_reconnect_and_states_are_restored(tmp_path: Path) -> None:
    with quorum_of_three(tmp_path, partitions=False) as setup:
        run, a, b = setup.run, setup.preferred, setup.backup
        a.kill()
        setup.wait_answer(b)
        processes = {name: agent.process for name, agent in run.agents.items()}

        restarted = time.time()
        run.restart_server()
        # The state is the stored one from the first answer on, not unknown (which would
        # answer the preferred group by the default fallback).
        assert setup.answers() == (b.host,), "the down state was not restored"
        run.wait_connected(*AGENTS, since=restarted, targets=2)
        assert {name: agent.process for name, agent in run.agents.items()} == processes
        assert all(agent.running() for agent in run.agents.values()), "agents do not need a restart"
        poll(setup.vote, lambda v: (v["down"], v["fresh"]) == (3, 3), "3 of 3 see a down again", DEADLINE)

        a.start()
        setup.wait_answer(a)


# -- revocation, forged and replayed results ------------------------------------------------------


@pytest.mark.slow
def test_a_revoked_agent_is_refused_at_once_and_forged_or_replayed_results_change_nothing(
    tmp_path: Path,
) -> None:
    """A hand-made agent speaks the protocol; no partitions, so no root needed."""
    with backends(tmp_path) as pool:
        a = http_backend(pool, "a")
        config = make_config(tmp_path, config_text(1), record("app", "web", [target(a)]))
        admin = add(config, "test", "--admin")
        with locations(tmp_path, config, ZONE, admin, (), local=LOCAL, partitions=False) as run:
            token = add_agent(config, "forger")
            with stream(run.base, token) as fake:
                hello = fake.hello()
                assert hello["agent"] == "forger"
                assert len(hello["checks"]) == 1, hello["checks"]
                check = hello["checks"][0]["id"]
                session = hello["session"]
                poll(lambda: run.views("app", "a"), lambda views: "forger" in views, "forger a location")

                def result(check_id: str, seq: int, ok: bool) -> dict[str, Any]:
                    item = {"check": check_id, "seq": seq, "ok": ok, "reason": "forged", "latency": 0.01}
                    return {"session": session, "results": [item], "canary": None}

                def forger_view() -> dict[str, Any]:
                    return run.views("app", "a")["forger"]

                # Forged: a check id this agent was not handed; the whole batch is refused.
                forged = result("0" * 16, 1, False)
                forged["results"].insert(0, result(check, 1, False)["results"][0])
                refused = fake.post(forged)
                assert refused.status_code == 403, refused.text
                assert refused.json()["error"]
                assert forger_view()["last_result"] is None, "a refused batch changed nothing"

                accepted = fake.post(result(check, 1, True))
                assert (accepted.status_code, accepted.json()) == (200, {"accepted": 1}), accepted.text
                poll(forger_view, lambda v: v["health"] == "up", "forger's result counted")

                replayed = fake.post(result(check, 1, False))
                assert replayed.status_code == 409, replayed.text
                malformed = fake.post(b'{"session": ')
                assert malformed.status_code == 400, malformed.text
                view = forger_view()
                assert (view["health"], view["last_result"]["ok"]) == ("up", True), view

                # Revoked: the open stream ends at once and the token is refused.
                removed_at = time.monotonic()
                remove_agent(config, "forger")
                assert fake.ended.wait(5), "the stream was not cut"
                assert fake.ended_at is not None
                assert fake.ended_at - removed_at < 3.0, fake.ended_at - removed_at
                after = fake.post(result(check, 2, False))
                assert after.status_code == 401, after.text
            with stream(run.base, token) as again:
                assert again.ended.wait(5)
                assert again.status == 401

            # Each refusal is an event that names the agent (never its token).
            refusals = [e["reason"] for e in run.events(kind="agent") if e["result"] == "refused"]
            assert any("not handed to agent forger" in r for r in refusals), refusals
            assert any("replay" in r for r in refusals), refusals
            assert_nowhere(run, token)


def assert_nowhere(run: Locations, token: str) -> None:
    """Tokens never appear in the server's log or its events."""
    assert run.server is not None
    assert token not in run.server.log_text(), "the token is in the server's log"
    assert token not in str(run.events()), "the token is in the event log"
