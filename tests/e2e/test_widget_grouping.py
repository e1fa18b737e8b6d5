"""A grouped notification in the bell, in a real Chromium against a real server: every like
folds into the one item the bell already lists (same id, new title, unread again, on top by its
new seq), never a second entry, and the badge follows the server's count."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.browser import TIMEOUT_MS
from tests.support.client import PUBLISHER_KEY, new_user
from tests.support.live import token_for
from tests.support.pages import Site, site
from tests.support.server import ServerProcess, tocsin_env, tocsin_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

LIKED = ("{{ actors[0] }}{% if count > 1 %} and {{ count - 1 }} other{{ 's' if count > 2 }}"
         "{% endif %} liked your post")
ACTORS = ["Alice", "Bob", "Carol", "Dan", "Eve"]
PUBLISHER = {"Authorization": f"Bearer {PUBLISHER_KEY}"}


@pytest.fixture
def other_site() -> Iterator[Site]:
    with site() as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, other_site: Site) -> Iterator[ServerProcess]:
    env = tocsin_env(f"sqlite:///{tmp_path / 'tocsin.db'}",
                     TOCSIN_ALLOWED_ORIGINS=other_site.origin)
    with tocsin_server(env, tmp_path) as running:
        yield running


def liked(count: int, newest: str) -> str:
    """The group's title for `count` likes, `newest` the last one's actor."""
    if count == 1:
        return f"{newest} liked your post"
    return f"{newest} and {count - 1} other{'s' if count > 2 else ''} liked your post"


@dataclass
class Bell:
    """A tab showing one user's bell, and the server's API as that user's backend."""

    page: Page
    user: str
    kind: str
    api: httpx.AsyncClient
    problems: list[str] = field(default_factory=list)

    @property
    def element(self) -> Locator:
        return self.page.locator("tocsin-bell#bell")

    @property
    def items(self) -> Locator:
        return self.element.locator("li:not(.empty)")

    def item(self, notification_id: str) -> Locator:
        return self.element.locator(f'li[data-id="{notification_id}"]')

    async def publish(self, **fields: Any) -> str:
        """One notification to the user; the id of the item it is in."""
        response = await self.api.post("/v1/notifications", headers=PUBLISHER,
                                       json={"user_id": self.user, **fields})
        assert response.status_code == 202, response.text
        receipt: dict[str, Any] = response.json()["notifications"][0]
        return str(receipt["id"])

    async def like(self, actor: str) -> str:
        return await self.publish(type=self.kind, data={"actor": actor, "post_id": 7})

    async def expect_unread(self, count: int) -> None:
        from playwright.async_api import expect

        await expect(self.element).to_have_attribute("data-unread", str(count))
        badge = self.element.locator(".badge")
        if count:
            await expect(badge).to_be_visible()
            await expect(badge).to_have_text(str(count))
        else:
            await expect(badge).to_be_hidden()

    async def listed(self) -> list[dict[str, Any]]:
        """The client's own list (newest first): what the bell renders from."""
        entries: list[dict[str, Any]] = await self.element.evaluate(
            "bell => bell.client.list().map(n => ({id: n.id, seq: n.seq, read: n.read,"
            " title: n.title}))")
        return entries


@asynccontextmanager
async def bell(browser: Browser, server: ServerProcess, other_site: Site
               ) -> AsyncIterator[Bell]:
    user = new_user("liker")
    kind = new_user("liked")  # a type of this test's own
    other_site.pages["/"] = f"""<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><script type="module" src="{server.url}/static/tocsin.js"></script>
</head><body><header style="display: flex; justify-content: flex-end">
<tocsin-bell id="bell" server="{server.url}" token="{token_for(user)}"></tocsin-bell></header>
</body></html>"""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = await context.new_page()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            response = await api.put(f"/v1/types/{kind}", headers=PUBLISHER, json={
                "title": "{{ actor }} liked your post", "channels": {"web": True},
                "group": {"key": "post-{{ post_id }}", "window_seconds": 600, "title": LIKED}})
            assert response.status_code == 200, response.text
            view = Bell(page=page, user=user, kind=kind, api=api)
            page.on("pageerror", lambda error: view.problems.append(f"page error: {error}"))
            await page.goto(f"{other_site.origin}/")
            await view.expect_unread(0)
            # Live on its stream: what follows arrives as events, not in the first list.
            await page.wait_for_function(
                "() => document.querySelector('tocsin-bell#bell').client.state === 'live'")
            yield view
    finally:
        await context.close()
    assert view.problems == []


async def test_likes_fold_into_one_item_that_is_unread_again_and_moves_to_the_top(
        browser: Browser, server: ServerProcess, other_site: Site) -> None:
    from playwright.async_api import expect

    async with bell(browser, server, other_site) as view:
        group_ids: set[str] = set()
        for count, actor in enumerate(ACTORS, start=1):
            group_ids.add(await view.like(actor))
            assert len(group_ids) == 1  # every like is in the same item
            [group] = group_ids
            await expect(view.item(group).locator(".title")).to_have_text(liked(count, actor))
            await expect(view.items).to_have_count(1)
            await expect(view.item(group)).to_have_attribute("data-seq", str(count))
        await expect(view.item(group).locator(".title")).to_have_text(
            "Eve and 4 others liked your post")
        await expect(view.item(group)).to_have_class("unread")
        await expect(view.item(group).locator(".count")).to_have_text("5")
        await view.expect_unread(1)
        assert await view.listed() == [{"id": group, "seq": 5, "read": False,
                                        "title": "Eve and 4 others liked your post"}]

        # Read in the page.
        await view.element.locator("button.bell").click()
        await view.item(group).click()
        await expect(view.item(group)).to_have_class("read")
        await view.expect_unread(0)

        # Something else comes on top; the next like moves the group above it, unread again.
        other = await view.publish(type="comment", title="Zoe commented on your post")
        await expect(view.items).to_have_count(2)
        await expect(view.items.first).to_have_attribute("data-id", other)
        await view.expect_unread(1)

        assert await view.like("Frank") == group
        title = "Frank and 5 others liked your post"
        await expect(view.items.first).to_have_attribute("data-id", group)
        await expect(view.item(group).locator(".title")).to_have_text(title)
        await expect(view.item(group)).to_have_class("unread")
        await expect(view.item(group)).to_have_attribute("data-seq", "7")
        await expect(view.item(group).locator(".count")).to_have_text("6")
        await expect(view.item(group)).to_have_count(1)
        await expect(view.items).to_have_count(2)
        await view.expect_unread(2)
        assert await view.listed() == [
            {"id": group, "seq": 7, "read": False, "title": title},
            {"id": other, "seq": 6, "read": False, "title": "Zoe commented on your post"},
        ]
