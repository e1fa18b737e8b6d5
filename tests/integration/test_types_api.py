"""Types through the API and tocsin.toml: templates rendered per recipient and locale, what the
publisher sends winning, every failure a 422 that stores nothing, and the layers' order
(built-in, then configured, then the API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import Api, new_user
from tests.support.db import row_counts
from tocsin.catalog.definition import TypeDefinition
from tocsin.store.sql import SqlStore

BUILTIN = {"comment", "mention", "like", "follow", "message", "system", "order", "payment"}


@pytest.fixture
async def app(store: SqlStore) -> AsyncIterator[Api]:
    async with running_api(store, action_url_hosts=["app.example.com"]) as api:
        yield api


async def define(api: Api, body: dict[str, Any], name: str | None = None) -> str:
    """A type of the test's own (types are global to a database)."""
    name = name or new_user("type")
    response = await api.client.put(f"/v1/types/{name}", json=body, headers=api.publisher)
    assert response.status_code == 200, response.text
    return name


async def publish(api: Api, body: dict[str, Any], status: int = 202) -> Any:
    response = await api.client.post("/v1/notifications", json=body, headers=api.publisher)
    assert response.status_code == status, response.text
    return response.json()


async def inbox(api: Api, user: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await api.me(user, "notifications"))["notifications"]
    return items


async def test_the_built_in_types_are_listed(app: Api) -> None:
    response = await app.client.get("/v1/types", headers=app.publisher)
    assert response.status_code == 200
    types = {entry["type"]: entry for entry in response.json()["types"]}
    assert set(types) >= BUILTIN
    assert types["payment"]["critical"] is True and types["payment"]["source"] in (
        "builtin", "api")
    assert types["comment"]["channels"] == {"web": True, "email": False, "push": False}


async def test_a_built_in_type_makes_a_whole_notification_from_data(app: Api) -> None:
    user = new_user()
    await publish(app, {"user_id": user, "type": "comment", "data": {"actor": "Alice"}})
    [item] = await inbox(app, user)
    assert item["title"] == "Alice commented on your post"


async def test_templates_render_data_and_the_publisher_s_fields_win(app: Api) -> None:
    name = await define(app, {"title": "{{ actor }} commented on {{ post.title }}",
                              "message": "{{ excerpt | truncate(12, True, '…') }}",
                              "action_url": "/posts/{{ post.id }}#c{{ comment_id }}"})
    user = new_user()
    data = {"actor": "Alice", "post": {"id": 7, "title": "Tocsin"}, "comment_id": 3,
            "excerpt": "A long comment about bells"}
    await publish(app, {"user_id": user, "type": name, "data": data})
    await publish(app, {"user_id": user, "type": name, "data": data, "title": "Mine",
                        "action_url": "https://elsewhere.example/x"})
    explicit, rendered = await inbox(app, user)
    assert (rendered["title"], rendered["message"], rendered["action_url"]) == (
        "Alice commented on Tocsin", "A long comm…", "/posts/7#c3")
    assert (explicit["title"], explicit["message"], explicit["action_url"]) == (
        "Mine", "A long comm…", "https://elsewhere.example/x")


async def test_locale_falls_back_from_region_to_language_to_default(app: Api) -> None:
    name = await define(app, {"title": "Hello {{ user.name }}", "message": "Bye",
                              "locales": {"fr": {"title": "Bonjour {{ user.name }}",
                                                 "message": "Au revoir"},
                                          "fr-CA": {"title": "Allô {{ user.name }}"}}})
    users = {"fr-CA": new_user(), "fr-FR": new_user(), "de": new_user(), None: new_user()}
    for locale, user in users.items():
        await app.client.put(f"/v1/users/{user}", json={"name": f"N{locale}", "locale": locale},
                             headers=app.publisher)
    await publish(app, {"user_ids": list(users.values()), "type": name})
    seen = {locale: (await inbox(app, user))[0] for locale, user in users.items()}
    assert {locale: (item["title"], item["message"]) for locale, item in seen.items()} == {
        "fr-CA": ("Allô Nfr-CA", "Au revoir"), "fr-FR": ("Bonjour Nfr-FR", "Au revoir"),
        "de": ("Hello Nde", "Bye"), None: ("Hello NNone", "Bye")}


@pytest.mark.parametrize(("title", "data", "words"), [
    ("{{ actor }} liked it", {}, ["title", "actor"]),
    ("{{ n | int / 0 }}", {"n": 1}, ["title", "ZeroDivisionError"]),
    ("{{ ''.__class__.__mro__ }}", {}, ["title", "sandbox"]),
    ("{{ cycler.__init__.__globals__ }}", {}, ["title", "sandbox"]),
    ("{% for i in range(10**9) %}x{% endfor %}", {}, ["title"]),
    ("{{ 'x' * 10**8 }}", {}, ["title"]),
    ("{{ items.append(1) }}", {"items": []}, ["title", "sandbox"]),
])
async def test_a_failing_template_is_a_422_naming_why_and_stores_nothing(
        app: Api, store: SqlStore, title: str, data: dict[str, Any], words: list[str]) -> None:
    name = await define(app, {"title": title})
    before = await row_counts(store)
    response = await app.client.post("/v1/notifications", headers=app.publisher,
                                     json={"user_id": new_user(), "type": name, "data": data})
    error = assert_error(response, 422, "template_error")
    for word in words:
        assert word in error["message"], error
    assert await row_counts(store) == before


@pytest.mark.parametrize("link", [
    "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example/x",
    "https://evil.example/x", "/\\evil.example", "https://app.example.com.evil.example/x",
])
async def test_a_rendered_link_must_be_relative_or_on_an_allowed_host(
        app: Api, store: SqlStore, link: str) -> None:
    name = await define(app, {"title": "t", "action_url": "{{ link }}"})
    before = await row_counts(store)
    response = await app.client.post("/v1/notifications", headers=app.publisher, json={
        "user_id": new_user(), "type": name, "data": {"link": link}})
    error = assert_error(response, 422, "template_error")
    assert "action_url" in error["message"]
    assert await row_counts(store) == before


async def test_allowed_hosts_and_paths_are_kept(app: Api) -> None:
    name = await define(app, {"title": "t", "action_url": "{{ link }}"})
    user = new_user()
    for link in ("https://APP.example.com/orders/1", "/orders/2"):
        await publish(app, {"user_id": user, "type": name, "data": {"link": link}})
    assert [item["action_url"] for item in await inbox(app, user)] == [
        "/orders/2", "https://APP.example.com/orders/1"]


async def test_an_unknown_type_needs_a_title(app: Api) -> None:
    user = new_user()
    refused = await app.client.post("/v1/notifications", headers=app.publisher,
                                    json={"user_id": user, "type": new_user("undefined")})
    error = assert_error(refused, 422, "validation_error")
    assert "title" in error["message"]
    await publish(app, {"user_id": user, "type": new_user("undefined"), "title": "Hi"})
    assert [item["title"] for item in await inbox(app, user)] == ["Hi"]


async def test_put_replaces_get_reads_delete_removes(app: Api) -> None:
    name = await define(app, {"title": "one", "category": "c1",
                              "channels": {"email": True}})
    await define(app, {"title": "two", "description": "second"}, name)
    response = await app.client.get(f"/v1/types/{name}", headers=app.publisher)
    assert response.status_code == 200
    assert response.json() == {
        "type": name, "title": "two", "message": None, "action_url": None, "locales": {},
        "category": None, "channels": {"web": True, "email": False, "push": False},
        "critical": False, "description": "second", "rate_limit": None, "source": "api"}
    deleted = await app.client.delete(f"/v1/types/{name}", headers=app.publisher)
    assert deleted.status_code == 204
    assert_error(await app.client.get(f"/v1/types/{name}", headers=app.publisher),
                 404, "not_found")
    assert_error(await app.client.delete(f"/v1/types/{name}", headers=app.publisher),
                 404, "not_found")


async def test_a_type_that_does_not_compile_changes_nothing(app: Api) -> None:
    name = await define(app, {"title": "fine"})
    response = await app.client.put(f"/v1/types/{name}", headers=app.publisher,
                                    json={"title": "fine", "message": "{{ broken"})
    error = assert_error(response, 422, "template_error")
    assert "message" in error["message"]
    kept = await app.client.get(f"/v1/types/{name}", headers=app.publisher)
    assert kept.json()["message"] is None


async def test_the_api_wins_over_the_configuration(store: SqlStore) -> None:
    name = new_user("configured")
    configured = {name: TypeDefinition(title="from the configuration", category="cfg")}
    async with running_api(store, types=configured) as api:
        user = new_user()
        await publish(api, {"user_id": user, "type": name})
        entry = (await api.client.get(f"/v1/types/{name}", headers=api.publisher)).json()
        assert (entry["source"], entry["category"]) == ("config", "cfg")
        await define(api, {"title": "from the API"}, name)
        await publish(api, {"user_id": user, "type": name})
        # Removing a configured type: it is gone from this server, the configuration stays.
        assert (await api.client.delete(f"/v1/types/{name}", headers=api.publisher)
                ).status_code == 204
        gone = await api.client.post("/v1/notifications", headers=api.publisher,
                                     json={"user_id": user, "type": name})
        assert_error(gone, 422, "validation_error")
        assert [item["title"] for item in await inbox(api, user)] == [
            "from the API", "from the configuration"]


async def test_user_tokens_cannot_manage_types(app: Api) -> None:
    response = await app.client.put("/v1/types/anything", json={"title": "x"},
                                    headers=app.user(new_user()))
    assert_error(response, 401, "unauthorized")


async def test_a_rate_limit_is_kept_as_given(app: Api) -> None:
    name = await define(app, {"title": "t", "rate_limit": {"limit": 10, "per_seconds": 3600}})
    response = await app.client.get(f"/v1/types/{name}", headers=app.publisher)
    assert response.json()["rate_limit"] == {"limit": 10, "per_seconds": 3600}
    await define(app, {"title": "t", "rate_limit": {"limit": 1, "per_seconds": 0.5}}, name)
    listed = await app.client.get("/v1/types", headers=app.publisher)
    [entry] = [entry for entry in listed.json()["types"] if entry["type"] == name]
    assert entry["rate_limit"] == {"limit": 1, "per_seconds": 0.5}
    await define(app, {"title": "t"}, name)
    response = await app.client.get(f"/v1/types/{name}", headers=app.publisher)
    assert response.json()["rate_limit"] is None
