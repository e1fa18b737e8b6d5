"""The bell's preferences view in a real Chromium, against a real server on another origin:
what it changes is what the API then says, critical types stay locked, quiet hours are set and
cleared, and a refused change shows the server's message and leaves the control as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.support.browser import TIMEOUT_MS
from tests.support.client import new_user
from tests.support.live import token_for
from tests.support.pages import Site, site
from tests.support.server import ServerProcess, tocsin_env, tocsin_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page, Request, Response, Route

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

TIME_ZONE = "Europe/Paris"  # the browser's: the quiet-hours form starts with it
LOCKED = "Always on: critical"
MUTE = "Mute all (except critical)"


@pytest.fixture
def other_site() -> Iterator[Site]:
    with site() as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, other_site: Site) -> Iterator[ServerProcess]:
    """The page is on another origin, so every PUT and DELETE goes through a CORS preflight."""
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}",
                     TOCSIN_ALLOWED_ORIGINS=other_site.origin)
    with tocsin_server(env, tmp_path) as running:
        yield running


def answer_to(method: str, path: str) -> Callable[[Response], bool]:
    return lambda response: (response.request.method == method
                             and urlparse(response.url).path == path)


@dataclass
class View:
    """A tab showing the bell's preferences, and the same user's API."""

    page: Page
    user: str
    api: httpx.AsyncClient
    problems: list[str] = field(default_factory=list)

    @property
    def bell(self) -> Locator:
        return self.page.locator("tocsin-bell#bell")

    @property
    def alert(self) -> Locator:
        return self.bell.get_by_role("alert")

    def row(self, type_name: str) -> Locator:
        return self.bell.locator(f'.type[data-type="{type_name}"]')

    def channel(self, type_name: str, channel: str) -> Locator:
        return self.row(type_name).locator(f'input[data-channel="{channel}"]')

    def enabled(self, type_name: str) -> Locator:
        return self.row(type_name).locator('input[data-control="enabled"]')

    async def open(self) -> None:
        """The bell's panel, then its preferences, loaded."""
        from playwright.async_api import expect

        await expect(self.bell).to_have_attribute("data-unread", "0")  # the client is up
        await self.bell.locator("button.bell").click()
        async with self.page.expect_response(answer_to("GET", "/v1/me/preferences")) as loaded:
            await self.bell.get_by_role("button", name="Preferences").click()
        assert (await loaded.value).status == 200
        await expect(self.bell.locator(".preferences")).to_be_visible()
        await expect(self.bell.locator(".list-view")).to_be_hidden()
        await expect(self.row("comment")).to_be_visible()

    async def state(self) -> dict[str, Any]:
        """What the server holds for the user: `GET /v1/me/preferences` with their token."""
        response = await self.api.get("/v1/me/preferences")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    async def entry(self, type_name: str) -> dict[str, Any]:
        entries: list[dict[str, Any]] = [
            t for t in (await self.state())["types"] if t["type"] == type_name]
        assert len(entries) == 1, entries
        return entries[0]


@asynccontextmanager
async def preferences(browser: Browser, server: ServerProcess, other_site: Site
                      ) -> AsyncIterator[View]:
    user = new_user()
    token = token_for(user)
    other_site.pages["/"] = f"""<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><script type="module" src="{server.url}/static/tocsin.js"></script>
</head><body><header style="display: flex; justify-content: flex-end">
<tocsin-bell id="bell" server="{server.url}" token="{token}"></tocsin-bell></header>
</body></html>"""
    context = await browser.new_context(timezone_id=TIME_ZONE)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = await context.new_page()
        async with httpx.AsyncClient(base_url=server.url, timeout=10,
                                     headers={"Authorization": f"Bearer {token}"}) as api:
            view = View(page=page, user=user, api=api)
            page.on("pageerror", lambda error: view.problems.append(f"page error: {error}"))
            await page.goto(f"{other_site.origin}/")
            await view.open()
            yield view
    finally:
        await context.close()
    assert view.problems == []


async def test_turning_email_on_for_a_type_is_what_the_api_then_says(
        browser: Browser, server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    async with preferences(browser, server, other_site) as view:
        before = await view.entry("comment")
        assert before["channels"]["email"] is False
        assert before["customized"] is False
        email = view.channel("comment", "email")
        await expect(email).not_to_be_checked()
        await expect(view.row("comment").get_by_role("button", name="Reset")).to_have_count(0)

        async with view.page.expect_response(
                answer_to("PUT", "/v1/me/preferences/comment")) as put:
            await email.click()
        assert (await put.value).status == 200
        await expect(email).to_be_checked()
        await expect(email).to_be_enabled()  # the row is drawn again from the answer
        after = await view.entry("comment")
        assert after["channels"] == {**before["channels"], "email": True}
        assert after["customized"] is True
        await expect(view.alert).to_be_hidden()

        # Opened again, the view shows what the server holds.
        await view.page.reload()
        await view.open()
        await expect(email).to_be_checked()

        reset = view.row("comment").get_by_role("button", name="Reset")
        async with view.page.expect_response(
                answer_to("DELETE", "/v1/me/preferences/comment")) as deleted:
            await reset.click()
        assert (await deleted.value).status == 200
        await expect(email).not_to_be_checked()
        await expect(reset).to_have_count(0)
        assert await view.entry("comment") == before

        await view.bell.get_by_role("button", name="Back").click()
        await expect(view.bell.locator(".list-view")).to_be_visible()
        await expect(view.bell.locator(".preferences")).to_be_hidden()


async def test_turning_a_type_off_is_what_the_api_then_says(
        browser: Browser, server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    async with preferences(browser, server, other_site) as view:
        assert (await view.entry("like"))["enabled"] is True
        enabled = view.enabled("like")
        await expect(enabled).to_be_checked()
        async with view.page.expect_response(answer_to("PUT", "/v1/me/preferences/like")) as put:
            await enabled.click()
        assert (await put.value).status == 200
        await expect(enabled).not_to_be_checked()
        entry = await view.entry("like")
        assert entry["enabled"] is False
        assert entry["customized"] is True
        await expect(view.enabled("comment")).to_be_checked()  # only that type


async def test_critical_types_are_locked(
        browser: Browser, server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    async with preferences(browser, server, other_site) as view:
        state = await view.state()
        critical = sorted(t["type"] for t in state["types"] if t["critical"])
        assert {"payment", "system"} <= set(critical)
        locked = view.bell.locator(".type.critical")
        await expect(locked).to_have_count(len(critical))
        assert sorted(await locked.evaluate_all("rows => rows.map(r => r.dataset.type)")) == \
            critical

        changes: list[str] = []

        def record(request: Request) -> None:
            if request.method in ("PUT", "DELETE"):
                changes.append(f"{request.method} {request.url}")

        view.page.on("request", record)
        for name in critical:
            row = view.row(name)
            await expect(row.locator(".lock")).to_have_attribute("title", LOCKED)
            controls = row.locator("input")
            await expect(controls).to_have_count(4)  # enabled, web, email, push
            for index in range(4):
                await expect(controls.nth(index)).to_be_disabled()
            await expect(row.get_by_role("button", name="Reset")).to_have_count(0)
        # A click on a locked control changes nothing, here or on the server.
        email = view.channel("payment", "email")
        was_checked = await email.is_checked()
        await email.click(force=True)
        await expect(email).to_be_checked(checked=was_checked)
        # A type that is not critical is not locked.
        await expect(view.row("comment").locator(".lock")).to_have_count(0)
        for control in await view.row("comment").locator("input").all():
            await expect(control).to_be_enabled()
        assert await view.state() == state
        assert changes == []


async def test_quiet_hours_are_set_then_cleared(
        browser: Browser, server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    async with preferences(browser, server, other_site) as view:
        assert (await view.state())["quiet_hours"] is None
        quiet = view.bell.locator(".quiet")
        await expect(quiet.locator(".state")).to_have_text("Off")
        await expect(quiet.locator('input[name="timezone"]')).to_have_value(TIME_ZONE)
        await quiet.locator('input[name="start"]').fill("22:30")
        await quiet.locator('input[name="end"]').fill("07:15")
        for weekend in ("sat", "sun"):
            await quiet.locator(f'input[name="days"][value="{weekend}"]').uncheck()

        async with view.page.expect_response(answer_to("PUT", "/v1/me/quiet-hours")) as put:
            await quiet.get_by_role("button", name="Save").click()
        assert (await put.value).status == 200
        await expect(quiet.locator(".state")).to_have_text(f"On: 22:30 to 07:15 ({TIME_ZONE})")
        window = (await view.state())["quiet_hours"]
        assert window is not None
        assert {k: window[k] for k in ("start", "end", "timezone", "days")} == {
            "start": "22:30", "end": "07:15", "timezone": TIME_ZONE,
            "days": ["mon", "tue", "wed", "thu", "fri"]}

        async with view.page.expect_response(
                answer_to("DELETE", "/v1/me/quiet-hours")) as deleted:
            await quiet.get_by_role("button", name="Clear").click()
        assert (await deleted.value).status == 204
        await expect(quiet.locator(".state")).to_have_text("Off")
        await expect(quiet.get_by_role("button", name="Clear")).to_be_disabled()
        assert (await view.state())["quiet_hours"] is None
        await expect(view.alert).to_be_hidden()


async def test_a_refused_change_shows_the_message_and_the_checkbox_reverts(
        browser: Browser, server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    message = "email is not available for comment"

    async def refuse(route: Route) -> None:
        if route.request.method != "PUT":
            await route.fallback()
            return
        await route.fulfill(status=422, json={"error": {"code": "validation_error",
                                                        "message": message}},
                            headers={"Access-Control-Allow-Origin": other_site.origin})

    async with preferences(browser, server, other_site) as view:
        email = view.channel("comment", "email")
        await expect(email).not_to_be_checked()
        await expect(view.alert).to_be_hidden()
        await view.page.route(f"{server.url}/v1/me/preferences/comment", refuse)
        async with view.page.expect_response(
                answer_to("PUT", "/v1/me/preferences/comment")) as put:
            await email.click()
        assert (await put.value).status == 422
        await expect(view.alert).to_have_text(message)
        await expect(view.alert).to_have_css("color", "rgb(170, 0, 0)")  # --tocsin-error-color
        await view.bell.evaluate("el => el.style.setProperty('--tocsin-error-color', '#123456')")
        await expect(view.alert).to_have_css("color", "rgb(18, 52, 86)")
        await expect(email).not_to_be_checked()
        await expect(email).to_be_enabled()
        assert (await view.entry("comment"))["channels"]["email"] is False

        # Accepted the next time: the message goes.
        await view.page.unroute(f"{server.url}/v1/me/preferences/comment")
        async with view.page.expect_response(
                answer_to("PUT", "/v1/me/preferences/comment")) as put:
            await email.click()
        assert (await put.value).status == 200
        await expect(email).to_be_checked()
        await expect(view.alert).to_be_hidden()


async def test_a_window_the_server_refuses_shows_its_message(
        browser: Browser, server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    async with preferences(browser, server, other_site) as view:
        quiet = view.bell.locator(".quiet")
        await quiet.locator('input[name="timezone"]').fill("Mars/Olympus_Mons")
        async with view.page.expect_response(answer_to("PUT", "/v1/me/quiet-hours")) as put:
            await quiet.get_by_role("button", name="Save").click()
        refused = await put.value
        assert refused.status == 422
        said = (await refused.json())["error"]["message"]
        assert "Mars/Olympus_Mons" in said
        await expect(view.alert).to_have_text(said)
        await expect(quiet.locator(".state")).to_have_text("Off")
        await expect(quiet.locator('input[name="timezone"]')).to_have_value("Mars/Olympus_Mons")
        assert (await view.state())["quiet_hours"] is None


async def test_mute_all_toggles(
        browser: Browser, server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    async with preferences(browser, server, other_site) as view:
        muted_state: dict[str, Any] = {}
        mute = view.bell.get_by_role("switch", name=MUTE)
        await expect(mute).not_to_be_checked()
        assert (await view.state())["muted"] is False

        for muted in (True, False):
            async with view.page.expect_response(answer_to("PUT", "/v1/me/preferences")) as put:
                await mute.click()
            assert (await put.value).status == 200
            await expect(mute).to_be_checked(checked=muted)
            await expect(mute).to_be_enabled()
            state = await view.state()
            assert state["muted"] is muted
            if muted:
                muted_state = state
            # Every row is drawn again from the document the server answered with; muted, a
            # type's own switch waits for the mute to end (its channels can still change).
            for entry in state["types"]:
                switch = view.enabled(entry["type"])
                await expect(switch).to_be_checked(checked=entry["enabled"])
                await expect(switch).to_be_enabled(enabled=not muted and not entry["critical"])
            await expect(view.channel("comment", "email")).to_be_enabled()
        assert any(t["enabled"] is False for t in muted_state["types"])
