"""/docs and /redoc need nothing but this server: every file they load comes from it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.client import settings_for
from tocsin.app import create_app

#: Where a page names another URL: attributes, and the spec URL in Swagger UI's script.
_REFERENCES = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|\burl:\s*'([^']+)'""")
_EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png",
                   ".json": "application/json"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'tocsin.db'}"))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test"
    ) as http:
        yield http


def references(html: str) -> list[str]:
    return [attribute or script for attribute, script in _REFERENCES.findall(html)]


@pytest.mark.parametrize(("page", "needs"), [
    ("/docs", {".js", ".css", ".png", ".json"}),
    ("/redoc", {".js", ".png", ".json"}),
])
async def test_docs_pages_load_everything_from_this_server(
        client: httpx.AsyncClient, page: str, needs: set[str]) -> None:
    response = await client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    # What the viewers' own scripts might fetch from elsewhere, the browser refuses.
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    # No absolute URL at all: a CDN, a font service or a validator would each be one.
    assert re.findall(r"(?:https?:)?//[\w.-]+", response.text) == []
    found = references(response.text)
    assert {Path(url).suffix for url in found} == needs, found
    for url in found:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        expected = _EXPECTED_TYPES[Path(url).suffix]
        assert expected in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert asset.content, url


async def test_the_oauth2_redirect_page_of_swagger_ui_is_served(client: httpx.AsyncClient
                                                                 ) -> None:
    docs = await client.get("/docs")
    assert "'/docs/oauth2-redirect'" in docs.text
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "oauth2" in response.text.lower()


async def test_the_docs_follow_a_root_path(tmp_path: Path) -> None:
    """Behind a proxy mounting the app under /notify, the page's URLs carry that prefix."""
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'tocsin.db'}"))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, root_path="/notify"),
        base_url="http://tocsin.test",
    ) as http:
        response = await http.get("/docs")
    found = references(response.text)
    assert found and all(url.startswith("/notify/") for url in found), found
