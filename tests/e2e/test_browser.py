"""The demo page in a real Chromium: publish, see the bell, read, and see it in a second tab."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.browser import TIMEOUT_MS
from tests.support.client import Api
from tests.support.server import ServerProcess, tocsin_env, tocsin_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SCREENSHOT = Path("/tmp/tocsin-demo.png")
DEMO_USER = "demo"
COMMENT_TITLE = "Alice commented on your post"  # what "Someone comments" publishes
XSS_TITLE = '<img src=x onerror="window.__xss=1">'


def _demo_server(database_url: str, tmp_path: Path, *args: str, **env: str
                 ) -> Iterator[ServerProcess]:
    with tocsin_server(tocsin_env(database_url, **env), tmp_path, *args) as running:
        yield running


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`tocsin serve --demo`."""
    yield from _demo_server(database_url, tmp_path, "--demo")


@pytest.fixture
def server_by_setting(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """The demo switched on by its setting rather than the flag."""
    yield from _demo_server(database_url, tmp_path, TOCSIN_DEMO="true")


@asynccontextmanager
async def publisher(server: ServerProcess) -> AsyncIterator[Api]:
    """The server's API, as a backend (publisher key) or as the demo user (minted token).

    The demo user starts with nothing unread: PostgreSQL is shared by the whole run."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        api = Api(client)
        await api.me(DEMO_USER, "notifications/read-all", method="POST")
        yield api


@dataclass
class Tabs:
    """Tabs of one browser context on the demo page, and what went wrong in them."""

    pages: list[Page]
    problems: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.problems.append(f"console: {message.text}")

        async def close_popup(popup: Page) -> None:
            # A clicked item opens its action_url in a new tab; that page is not under test.
            await popup.close()

        page.on("console", console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("popup", close_popup)


@asynccontextmanager
async def demo_tabs(browser: Browser, server: ServerProcess, count: int, query: str = ""
                    ) -> AsyncIterator[Tabs]:
    context = await browser.new_context(viewport={"width": 1000, "height": 640})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    tabs = Tabs(pages=[])
    try:
        for _ in range(count):
            page = await context.new_page()
            tabs.watch(page)
            await page.goto(f"{server.url}/{query}")
            tabs.pages.append(page)
        yield tabs
    finally:
        await context.close()


def bell(page: Page) -> Locator:
    return page.locator("tocsin-bell#bell")


def badge(page: Page) -> Locator:
    return page.locator("tocsin-bell#bell .badge")  # in the bell's (open) shadow root


def item(page: Page, notification_id: str) -> Locator:
    return page.locator(f'tocsin-bell#bell li[data-id="{notification_id}"]')


async def expect_unread(page: Page, count: int) -> None:
    from playwright.async_api import expect

    await expect(bell(page)).to_have_attribute("data-unread", str(count))
    if count:
        await expect(badge(page)).to_be_visible()
        await expect(badge(page)).to_have_text(str(count))
    else:
        await expect(badge(page)).to_be_hidden()


async def publish_from_page(page: Page, button: str) -> dict[str, Any]:
    """Click a demo button; return the receipt of the notification it published."""
    async with page.expect_response(lambda r: r.url.endswith("/demo/notifications")) as info:
        await page.get_by_role("button", name=button).click()
    response = await info.value
    assert response.status == 202, await response.text()
    receipt: dict[str, Any] = (await response.json())["notifications"][0]
    assert receipt["user_id"] == DEMO_USER
    return receipt


async def publish_read_loop(tabs: Tabs, via: str, screenshot: bool = False) -> None:
    """Publish from the first tab; read it there; every tab follows live."""
    from playwright.async_api import expect

    first = tabs.pages[0]
    # Act in the first tab, as a user would: the others stay in the background, where Chromium
    # throttles animation frames (and Playwright's clicks wait for frames).
    await first.bring_to_front()
    for page in tabs.pages:
        await expect(page.locator("#status")).to_have_text(f"live ({via})")
        await expect_unread(page, 0)

    receipt = await publish_from_page(first, "Someone comments")
    for page in tabs.pages:
        await expect_unread(page, 1)

    await bell(first).locator("button.bell").click()
    await expect(first.locator("tocsin-bell#bell .panel")).to_be_visible()
    entry = item(first, receipt["id"])
    await expect(entry.locator(".title")).to_have_text(COMMENT_TITLE)
    await expect(entry).to_have_class("unread")
    if screenshot:
        await first.screenshot(path=str(SCREENSHOT))

    await entry.click()  # marks it read
    for page in tabs.pages:
        await expect_unread(page, 0)
        await expect(item(page, receipt["id"])).to_have_class("read")
    assert tabs.problems == []


async def test_publish_and_read_show_live_in_two_tabs_over_websocket(
        browser: Browser, server: ServerProcess, database_url: str) -> None:
    async with publisher(server), demo_tabs(browser, server, 2) as tabs:
        await publish_read_loop(tabs, "ws", screenshot=database_url.startswith("sqlite"))


async def test_publish_and_read_show_live_in_two_tabs_over_sse(
        browser: Browser, server: ServerProcess) -> None:
    async with publisher(server), demo_tabs(browser, server, 2, "?transport=sse") as tabs:
        await publish_read_loop(tabs, "sse")


async def test_titles_render_as_text_never_as_html(
        browser: Browser, server_by_setting: ServerProcess) -> None:
    from playwright.async_api import expect

    message = "<b>bold</b> & <script>window.__xss=2</script>"
    async with publisher(server_by_setting) as api, \
            demo_tabs(browser, server_by_setting, 1) as tabs:
        page = tabs.pages[0]
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await expect(page.locator("#status")).to_have_text("live (ws)")
        await expect_unread(page, 0)

        published = await api.publish(DEMO_USER, type="comment", title=XSS_TITLE,
                                      message=message)
        notification_id = published["notifications"][0]["id"]
        await expect_unread(page, 1)
        await bell(page).locator("button.bell").click()
        entry = item(page, notification_id)
        await expect(entry.locator(".title")).to_have_text(XSS_TITLE)
        await expect(entry.locator(".message")).to_have_text(message)

        # Parsed as HTML, the title would be an <img> in the list at once, fetching "x".
        await expect(page.locator("tocsin-bell#bell li img")).to_have_count(0)
        await expect(page.locator("tocsin-bell#bell li script")).to_have_count(0)
        assert await page.evaluate("fetch('/healthz').then(r => r.status)") == 200
        assert not [url for url in requested if url.rstrip("/").endswith("/x")]
        assert await page.evaluate("typeof window.__xss") == "undefined"
        assert tabs.problems == []
