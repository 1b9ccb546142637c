"""The web UI and health endpoints, driven through Starlette's TestClient.

The app is built the way the composition root builds it: ``App(config)`` makes the
snapshot without opening a socket, and ``create_app(app.runtime)`` gives the Starlette app. DNS
listeners are started inside the TestClient's own event loop (its portal), so /readyz is
seen before and after DNS listens. One test runs the real process to cover uvicorn.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from dynserver import config
from dynserver.app import App, with_listeners
from dynserver.dns.snapshot import Snapshot
from dynserver.model import Config, Listener
from dynserver.web.app import create_app, web_dir
from tests.support import ROOT, ZONES, dynserver, free_port, loopback, wait_for_http, write_config

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package for its TestClient and warns (at import) when
    # it falls back to httpx; the client works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ZONE = "dyn.example.test"


@pytest.fixture
def loaded(tmp_path: Path) -> Config:
    """The example zone from zones/, with a DNS listener on a fresh loopback address."""
    path = write_config(tmp_path, {ZONE: (ZONES / f"{ZONE}.zone").read_text()})
    return with_listeners(config.load(path), [Listener(loopback(), 0)], None)


@pytest.fixture
def app(loaded: Config) -> App:
    return App(loaded)


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app.runtime)) as client:
        yield client


def _serial(zone_text: str) -> int:
    match = re.search(r"SOA.*?\(\s*(\d+)", zone_text, re.S)
    assert match, "no SOA serial in the example zone"
    return int(match.group(1))


def test_index_lists_the_zones_of_the_current_snapshot(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<h1>Zones</h1>" in page
    assert f"<td>{ZONE}.</td>" in page or f"<td>{ZONE}</td>" in page
    assert f"<td>{_serial((ZONES / f'{ZONE}.zone').read_text())}</td>" in page
    # The stylesheet link resolves to the static mount.
    link = re.search(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert link and link.group(1).endswith("/static/style.css")
    assert client.get(link.group(1)).status_code == 200


def test_index_follows_a_snapshot_swap(app: App, client: TestClient, loaded: Config) -> None:
    """The page reads the snapshot reference per request, as the DNS path does."""
    zone = app.runtime.snapshot.zones[loaded.zones[0].name]
    serial = zone.serial + 41
    app.runtime.swap(Snapshot({zone.origin: zone.with_serial(serial)}))
    assert f"<td>{serial}</td>" in client.get("/").text


def test_healthz_says_ok_as_plain_text(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "ok\n"


def test_readyz_is_503_until_dns_listens_then_200(app: App, client: TestClient) -> None:
    before = client.get("/readyz")
    assert before.status_code == 503
    assert before.json() == {
        "ready": False,
        "dns_listening": False,
        "database_open": False,
        "checks_running": True,  # the example zone has no monitored record
    }

    assert client.portal is not None
    client.portal.call(app.start)  # the listeners live in the TestClient's event loop
    try:
        after = client.get("/readyz")
        assert after.status_code == 200
        assert after.json() == {
            "ready": True,
            "dns_listening": True,
            "database_open": True,
            "checks_running": True,
        }
        # Ready means it: the listener answers a real query.
        host, port = app.udp[0].address
        reply = dns.query.udp(dns.message.make_query(ZONE, dns.rdatatype.SOA), host, port=port, timeout=5)
        assert reply.answer
    finally:
        client.portal.call(app.stop)


def test_static_files_are_served_from_the_web_folder(client: TestClient) -> None:
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.content == (web_dir() / "static" / "style.css").read_bytes()


@pytest.mark.parametrize("path", ["/nope", "/static/nope.css", "/static/../pyproject.toml"])
def test_unknown_paths_are_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_health_endpoints_refuse_writes(client: TestClient) -> None:
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


def test_web_dir_is_the_source_tree_web_folder_here() -> None:
    # From a source checkout (an editable install) the top-level web/ is used; the wheel's
    # copy (dynserver/_web) is covered by tests/test_dockerfile.py.
    assert web_dir() == ROOT / "web"
    assert (web_dir() / "templates" / "base.html").is_file()


def test_web_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "templates").mkdir()
    monkeypatch.setenv("DYNSERVER_WEB_DIR", str(tmp_path))
    assert web_dir() == tmp_path
    # An override without templates/ is passed over, not trusted blindly.
    monkeypatch.setenv("DYNSERVER_WEB_DIR", str(tmp_path / "missing"))
    assert web_dir() == ROOT / "web"


def test_the_snapshot_is_built_without_listening(loaded: Config) -> None:
    app = App(loaded)
    assert app.udp == [] and app.tcp == []
    assert set(app.runtime.snapshot.zones) == {zone.name for zone in loaded.zones}


@pytest.mark.slow
def test_the_served_process_answers_http(tmp_path: Path) -> None:
    """`dynserver serve --http` runs uvicorn in the same process as DNS."""
    path = write_config(tmp_path, {ZONE: (ZONES / f"{ZONE}.zone").read_text()})
    host = loopback()
    http = f"{host}:{free_port(host)}"
    with dynserver(path, host=host, http=http):
        wait_for_http(f"http://{http}/healthz")
        response = httpx.get(f"http://{http}/readyz", timeout=2)
        assert response.status_code == 200
        assert response.json()["ready"] is True
        assert httpx.get(f"http://{http}/healthz", timeout=2).text == "ok\n"
        index = httpx.get(f"http://{http}/", timeout=2)
        assert index.status_code == 200 and ZONE in index.text
        assert "server" not in index.headers  # no server banner
