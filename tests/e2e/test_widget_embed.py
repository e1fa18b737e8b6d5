"""The bell embedded in a page of another origin, in a real Chromium: refused origins are
told what to change, allowed ones work, and the page's CSS themes the bell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.browser import TIMEOUT_MS
from tests.support.client import Api, new_user
from tests.support.live import token_for
from tests.support.pages import Site, site
from tests.support.server import ServerProcess, tocsin_env, tocsin_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

LIST_PATH = "/v1/me/notifications"


@pytest.fixture
def other_site() -> Iterator[Site]:
    with site() as running:
        yield running


def serve(tmp_path: Path, **env: str) -> Iterator[ServerProcess]:
    with tocsin_server(tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}", **env),
                       tmp_path) as running:
        yield running


@pytest.fixture
def refusing_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose TOCSIN_ALLOWED_ORIGINS is unset: only its own origin may call it."""
    yield from serve(tmp_path)


@pytest.fixture
def allowing_server(tmp_path: Path, other_site: Site) -> Iterator[ServerProcess]:
    yield from serve(tmp_path, TOCSIN_ALLOWED_ORIGINS=other_site.origin)


def embedding_page(server: ServerProcess, body: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module" src="{server.url}/static/tocsin.js"></script></head>
<body>{body}</body></html>"""


def bell_page(server: ServerProcess, user: str) -> str:
    return embedding_page(server, f'<tocsin-bell id="bell" server="{server.url}" '
                                  f'token="{token_for(user)}"></tocsin-bell>')


async def new_page(browser: Browser, console: list[ConsoleMessage], problems: list[str]
                   ) -> Page:
    """A tab of its own context, recording its console and its uncaught errors."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    page.on("console", lambda message: console.append(message))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return page


def tocsin_messages(console: list[ConsoleMessage]) -> list[str]:
    """What the widget itself logged (the browser logs its own CORS errors too)."""
    return [f"{m.type}: {m.text}" for m in console if m.text.lower().startswith("tocsin")]


async def test_a_refused_origin_is_told_once_which_setting_to_change(
        browser: Browser, refusing_server: ServerProcess, other_site: Site) -> None:
    other_site.pages["/"] = bell_page(refusing_server, new_user())
    console: list[ConsoleMessage] = []
    problems: list[str] = []
    page = await new_page(browser, console, problems)
    try:
        async with page.expect_console_message(
                lambda m: "TOCSIN_ALLOWED_ORIGINS" in m.text) as told:
            await page.goto(f"{other_site.origin}/")
        message = await told.value
        # The client keeps retrying (the operator may fix the setting): two more refused
        # loads of the list, and still one message.
        for _ in range(2):
            async with page.expect_event("requestfailed",
                                         lambda request: LIST_PATH in request.url):
                pass
        assert await page.locator("tocsin-bell#bell").get_attribute("data-unread") is None
    finally:
        await page.context.close()
    assert message.type == "error"
    assert message.text == (
        f"Tocsin: this page's origin {other_site.origin} is not allowed by the server at "
        f"{refusing_server.url}; add it to TOCSIN_ALLOWED_ORIGINS (comma-separated) in that "
        "server's settings.")
    assert tocsin_messages(console) == [f"error: {message.text}"]
    assert problems == []


async def test_an_allowed_origin_gets_a_live_bell(
        browser: Browser, allowing_server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    user = new_user()
    other_site.pages["/"] = bell_page(allowing_server, user)
    console: list[ConsoleMessage] = []
    problems: list[str] = []
    page = await new_page(browser, console, problems)
    try:
        async with page.expect_websocket() as opening:
            await page.goto(f"{other_site.origin}/")
        stream = await opening.value
        await stream.wait_for_event("framereceived")  # the handshake passed the Origin check
        bell = page.locator("tocsin-bell#bell")
        await expect(bell).to_have_attribute("data-unread", "0")
        async with httpx.AsyncClient(base_url=allowing_server.url) as backend:
            await Api(backend).publish(user, title="Hello")
        await expect(bell).to_have_attribute("data-unread", "1")
        await expect(page.locator("tocsin-bell#bell .badge")).to_have_text("1")
    finally:
        await page.context.close()
    assert [f"{m.type}: {m.text}" for m in console if m.type in ("error", "warning")] == []
    assert problems == []


async def test_custom_properties_theme_the_bell(
        browser: Browser, refusing_server: ServerProcess, other_site: Site) -> None:
    other_site.pages["/"] = embedding_page(refusing_server, """
<header style="background: #111; color: rgb(240, 240, 240)">
  <tocsin-bell id="plain"></tocsin-bell>
  <tocsin-bell id="themed" style="--tocsin-bell-color: rgb(255, 200, 0);
      --tocsin-badge-background: rgb(0, 128, 0); --tocsin-panel-background: rgb(30, 30, 30);
      --tocsin-panel-color: rgb(250, 250, 250)"></tocsin-bell>
</header>""")
    console: list[ConsoleMessage] = []
    problems: list[str] = []
    page = await new_page(browser, console, problems)
    try:
        await page.goto(f"{other_site.origin}/")
        await page.wait_for_function("customElements.get('tocsin-bell') !== undefined")

        async def style(bell: str, selector: str, name: str) -> str:
            value: str = await page.locator(f"tocsin-bell#{bell}").evaluate(
                "(el, [selector, name]) => getComputedStyle("
                "el.shadowRoot.querySelector(selector))[name]", [selector, name])
            return value

        # Unthemed, the bell takes the header's text colour, so a dark header shows it.
        assert await style("plain", "[part=bell]", "color") == "rgb(240, 240, 240)"
        assert await style("plain", ".badge", "backgroundColor") == "rgb(221, 34, 34)"
        assert await style("plain", ".panel", "backgroundColor") == "rgb(255, 255, 255)"
        assert await style("themed", "[part=bell]", "color") == "rgb(255, 200, 0)"
        assert await style("themed", ".badge", "backgroundColor") == "rgb(0, 128, 0)"
        assert await style("themed", ".panel", "backgroundColor") == "rgb(30, 30, 30)"
        assert await style("themed", ".panel", "color") == "rgb(250, 250, 250)"
    finally:
        await page.context.close()
    assert problems == []
