"""PUT/GET /v1/users/{id}: a user's profile, kept apart from their notifications."""

from __future__ import annotations

from tests.integration.problems import assert_error
from tests.support.client import Api, counted, new_user
from tests.support.db import assert_counter_matches
from tocsin.store.sql import SqlStore

PROFILE = {"email": "ada@example.com", "name": "Ada", "locale": "en-GB",
           "timezone": "Europe/London"}


async def test_put_then_get_returns_the_profile(api: Api) -> None:
    user = new_user()
    put = await api.client.put(f"/v1/users/{user}", json=PROFILE, headers=api.publisher)
    assert put.status_code == 200, put.text
    assert put.json() == {"id": user, **PROFILE}
    got = await api.client.get(f"/v1/users/{user}", headers=api.publisher)
    assert got.status_code == 200, got.text
    assert got.json() == {"id": user, **PROFILE}


async def test_put_replaces_the_whole_profile(api: Api) -> None:
    user = new_user()
    await api.client.put(f"/v1/users/{user}", json=PROFILE, headers=api.publisher)
    put = await api.client.put(f"/v1/users/{user}", json={"name": "Ada L."},
                               headers=api.publisher)
    assert put.status_code == 200, put.text
    got = (await api.client.get(f"/v1/users/{user}", headers=api.publisher)).json()
    assert got == {"id": user, "email": None, "name": "Ada L.", "locale": None,
                   "timezone": None}


async def test_profile_changes_leave_counter_and_seq_alone(api: Api, store: SqlStore) -> None:
    user = new_user()
    await api.publish(user)
    put = await api.client.put(f"/v1/users/{user}", json=PROFILE, headers=api.publisher)
    assert put.status_code == 200, put.text
    assert counted(await api.me(user, "unread-count")) == {"count": 1, "seq": 1}
    assert await assert_counter_matches(store, user) == 1
    receipt = (await api.publish(user))["notifications"][0]
    assert receipt["seq"] == 2


async def test_unknown_user_is_not_found(api: Api) -> None:
    response = await api.client.get(f"/v1/users/{new_user()}", headers=api.publisher)
    assert_error(response, 404, "not_found")
