"""Who may call what: publisher keys on publisher routes, genuine user tokens on /v1/me."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import Api, new_user
from tests.support.db import assert_counter_matches, row_counts
from tests.support.forgery import FORGERIES, Forger
from tocsin.auth.keys import generate_key, hash_key
from tocsin.store.sql import SqlStore

#: Every publisher route, with a body it would accept from a publisher.
PUBLISHER_ROUTES: dict[str, tuple[str, str, Any]] = {
    "publish": ("POST", "/v1/notifications", {"user_id": "{user}", "type": "comment"}),
    "mint_token": ("POST", "/v1/tokens", {"user_id": "{user}", "ttl_seconds": 600}),
    "put_user": ("PUT", "/v1/users/{user}", {"name": "Ada"}),
    "get_user": ("GET", "/v1/users/{user}", None),
}

#: Every /v1/me route; `{id}` is one of the user's own notifications.
ME_ROUTES: dict[str, tuple[str, str]] = {
    "list": ("GET", "/v1/me/notifications"),
    "unread_count": ("GET", "/v1/me/unread-count"),
    "read_all": ("POST", "/v1/me/notifications/read-all"),
    "get_one": ("GET", "/v1/me/notifications/{id}"),
    "read_one": ("POST", "/v1/me/notifications/{id}/read"),
}


def fill(value: Any, **names: str) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: fill(v, **names) for k, v in value.items()}
    return value


async def call_publisher_route(client: httpx.AsyncClient, route: str, user: str,
                               headers: dict[str, str]) -> httpx.Response:
    method, path, body = PUBLISHER_ROUTES[route]
    return await client.request(method, fill(path, user=user), json=fill(body, user=user),
                                headers=headers)


def refused(response: httpx.Response) -> None:
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


# -- publisher keys ----------------------------------------------------------------------------

CREDENTIALS: dict[str, Callable[[Api, str], dict[str, str]]] = {
    "no_authorization": lambda api, user: {},
    "empty_bearer": lambda api, user: {"Authorization": "Bearer "},
    "wrong_key": lambda api, user: {"Authorization": "Bearer tsk_0000_not-a-real-key"},
    "key_with_basic_scheme": lambda api, user: {"Authorization": f"Basic {api.key}"},
    "user_jwt_instead_of_key": lambda api, user: api.user(user),
}


@pytest.mark.parametrize("route", PUBLISHER_ROUTES)
@pytest.mark.parametrize("credential", CREDENTIALS)
async def test_publisher_routes_refuse_anything_but_a_key(
        api: Api, store: SqlStore, route: str, credential: str) -> None:
    user = new_user()
    await api.client.put(f"/v1/users/{user}", json={"name": "Ada"}, headers=api.publisher)
    before = await row_counts(store)
    response = await call_publisher_route(api.client, route, user,
                                          CREDENTIALS[credential](api, user))
    refused(response)
    assert await row_counts(store) == before
    accepted = await call_publisher_route(api.client, route, user, api.publisher)
    assert accepted.status_code < 300, accepted.text


async def test_stored_key_works_until_revoked(store: SqlStore) -> None:
    key_id, key = generate_key()
    await store.create_api_key(key_id, "ci", hash_key(key), datetime.now(UTC))
    user = new_user()
    async with running_api(store, api_key_cache_seconds=0) as api:
        api.key = key
        await api.publish(user)
        await store.revoke_api_key(key_id, datetime.now(UTC))
        response = await api.client.post("/v1/notifications", headers=api.publisher,
                                         json={"user_id": user, "type": "comment"})
        refused(response)
        assert (await api.me(user, "unread-count"))["count"] == 1


# -- user tokens -------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ME_ROUTES)
@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_tokens_are_refused_on_every_me_route(
        api: Api, store: SqlStore, route: str, forgery: str) -> None:
    victim = new_user()
    receipt = (await api.publish(victim))["notifications"][0]
    method, path = ME_ROUTES[route]
    path = path.format(id=receipt["id"])
    forger: Forger = FORGERIES[forgery]
    token = forger(api.secret, victim)

    response = await api.client.request(method, path,
                                        headers={"Authorization": f"Bearer {token}"})
    refused(response)
    assert await assert_counter_matches(store, victim) == 1
    assert (await api.me(victim, f"notifications/{receipt['id']}"))["read"] is False

    genuine = await api.client.request(method, path, headers=api.user(victim))
    assert genuine.status_code == 200, genuine.text


@pytest.mark.parametrize("route", ME_ROUTES)
async def test_me_routes_refuse_a_publisher_key_and_no_token(api: Api, route: str) -> None:
    user = new_user()
    receipt = (await api.publish(user))["notifications"][0]
    method, path = ME_ROUTES[route]
    path = path.format(id=receipt["id"])
    refused(await api.client.request(method, path, headers=api.publisher))
    refused(await api.client.request(method, path))
