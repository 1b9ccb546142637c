"""The security headers on every page and response the web listener gives (the dashboard
crawled link by link, logged in, plus the API, metrics, health, static files and error
pages), and no inline script or style in the pages or templates that the policy would block."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dynserver.web.headers import CONTENT_SECURITY_POLICY, SECURITY_HEADERS, SecurityHeaders
from tests.support import ROOT
from tests.update.common import APP
from tests.web.test_pages import HASH, login, run, running

TEMPLATES = ROOT / "web" / "templates"

# What a Content-Security-Policy without 'unsafe-inline' blocks in a page: a <script> with
# a body, a <style> element, a style= attribute, an on...= handler, a javascript: URL.
INLINE = re.compile(
    r"<script\b(?![^>]*\bsrc=)[^>]*>\s*\S|<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:",
    re.IGNORECASE,
)


def assert_secured(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, f"{where}: {name}"


def test_the_policy_allows_no_inline_script_and_no_framing() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'"
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"
    assert SECURITY_HEADERS["Referrer-Policy"] == "same-origin"


def test_no_template_has_what_the_policy_would_block() -> None:
    templates = sorted(TEMPLATES.glob("*.html"))
    assert templates
    found = {
        f"{path.name}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0).strip()}"
        for path in templates
        for text in [path.read_text()]
        for m in INLINE.finditer(text)
    }
    assert found == set()


def test_every_page_carries_the_headers(tmp_path: Path) -> None:
    """Logged in, so that every action and form is on the pages; every link followed."""

    async def test() -> None:
        # The propagation page asks resolvers: a closed port here, never the internet.
        web = f'admin_password_hash = "{HASH}"\nresolvers = ["127.0.0.1:9"]\npropagation_timeout = 0.2'
        async with running(tmp_path, web) as (_, client):
            assert_secured(await client.get("/login"))
            await login(client)
            seen: set[str] = set()
            queue = ["/"]
            while queue and len(seen) < 200:
                path = queue.pop()
                if path in seen:
                    continue
                seen.add(path)
                response = await client.get(path)
                assert_secured(response)
                if "text/html" in response.headers.get("content-type", ""):
                    inline = INLINE.findall(response.text)
                    assert not inline, f"{path}: {inline}"
                    for link in re.findall(
                        r'(?:href|src|action)="(?:http://dynserver\.test)?(/[^"#?]*)', response.text
                    ):
                        if link != "/logout" and link not in seen:
                            queue.append(link)
            assert {"/", f"/records/{APP}", "/events", "/static/style.css"} <= seen, seen

            others = [
                await client.get("/healthz"),
                await client.get("/readyz"),
                await client.get("/agents"),
                await client.get("/metrics"),
                await client.get("/api/v1/records"),
                await client.get(f"/records/{APP}/propagation.json"),
                await client.get("/no-such-page"),  # 404
                await client.get("/records/missing.dyn.example.test"),
                await client.post(f"/records/{APP}/check", data={"csrf": "wrong"}),  # refused
                await client.get("/nic/update"),  # 401 to a dyndns2 client
            ]
            for response in others:
                assert_secured(response)

    run(test)


def test_a_response_that_sets_its_own_header_keeps_it() -> None:
    async def framed(request: Request) -> Response:
        return PlainTextResponse("ok", headers={"X-Frame-Options": "SAMEORIGIN"})

    app = Starlette(routes=[Route("/", framed)], middleware=[Middleware(SecurityHeaders)])

    async def test() -> None:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://dynserver.test") as client:
            response = await client.get("/")
            assert response.headers.get_list("X-Frame-Options") == ["SAMEORIGIN"]
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY

    run(test)
