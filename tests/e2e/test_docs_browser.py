"""/docs and /redoc in a real Chromium that can reach nothing but the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.support.browser import TIMEOUT_MS
from tests.support.server import ServerProcess, tocsin_env, tocsin_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Route

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with tocsin_server(tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}"), tmp_path) as running:
        yield running


async def offline_page(browser: Browser, server: ServerProcess, blocked: list[str],
                       problems: list[str]) -> Page:
    """A tab in which every request to anywhere but the server fails, as on a machine
    without internet access; what it tried to reach is recorded in `blocked`."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    ours = urlsplit(server.url).netloc

    async def only_the_server(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == ours:
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_the_server)
    # What the page's Content-Security-Policy refused: such a request never reaches the network.
    await context.add_init_script(
        "window.__refused = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (event) => window.__refused.push(event.blockedURI));")
    page = await context.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return page


async def test_swagger_ui_renders_the_operations_offline(browser: Browser,
                                                         server: ServerProcess) -> None:
    from playwright.async_api import expect

    blocked: list[str] = []
    problems: list[str] = []
    page = await offline_page(browser, server, blocked, problems)
    try:
        await page.goto(f"{server.url}/docs")
        publish = page.locator(".opblock.opblock-post").filter(
            has=page.locator('[data-path="/v1/notifications"]'))
        await expect(publish).to_be_visible()
        await expect(publish.locator(".opblock-summary-description")).to_have_text(
            "Notify one user, many, or a topic's subscribers")
    finally:
        await page.context.close()
    assert blocked == []
    assert problems == []


async def test_redoc_renders_the_operations_offline(browser: Browser,
                                                    server: ServerProcess) -> None:
    from playwright.async_api import expect

    blocked: list[str] = []
    problems: list[str] = []
    page = await offline_page(browser, server, blocked, problems)
    try:
        await page.goto(f"{server.url}/redoc")
        publish = page.locator('[data-section-id="tag/publisher/operation/'
                               'publish_v1_notifications_post"]')
        await expect(publish.get_by_role(
            "heading", name="Notify one user, many, or a topic's subscribers")
                     ).to_be_visible()
        # ReDoc 2 shows its maker's logo from cdn.redoc.ly once its menu is up. Wait for the
        # browser to refuse it, so the check below cannot pass only because it was not yet
        # asked for.
        await page.wait_for_function(
            "window.__refused.some((url) => url.startsWith('https://cdn.redoc.ly/'))")
    finally:
        await page.context.close()
    assert blocked == []
    assert problems == []
