"""One user can never see or change another's notifications, whatever id they send."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.problems import assert_error
from tests.support.client import Api, counted, new_user
from tests.support.db import assert_counter_matches
from tocsin.store.sql import SqlStore

#: Every /v1/me route that takes a notification id.
BY_ID = {
    "get_one": ("GET", "/v1/me/notifications/{id}"),
    "read_one": ("POST", "/v1/me/notifications/{id}/read"),
}
NOT_IDS = ["not-a-uuid", "1", "' OR 1=1 --", str(uuid.uuid4())]


@pytest.mark.parametrize("route", BY_ID)
async def test_another_users_notification_is_not_found_and_untouched(
        api: Api, store: SqlStore, route: str) -> None:
    owner, intruder = new_user("owner"), new_user("intruder")
    target = (await api.publish(owner))["notifications"][0]["id"]
    await api.publish(intruder)
    method, path = BY_ID[route]

    response = await api.client.request(method, path.format(id=target),
                                        headers=api.user(intruder))
    assert_error(response, 404, "not_found")
    assert (await api.me(owner, f"notifications/{target}"))["read"] is False
    assert await assert_counter_matches(store, owner) == 1
    assert counted(await api.me(owner, "unread-count")) == {"count": 1, "seq": 1}
    assert await assert_counter_matches(store, intruder) == 1


@pytest.mark.parametrize("route", BY_ID)
@pytest.mark.parametrize("bad_id", NOT_IDS)
async def test_an_id_that_is_nobodys_is_not_found(api: Api, route: str, bad_id: str) -> None:
    user = new_user()
    await api.publish(user)
    method, path = BY_ID[route]
    response = await api.client.request(method, path.format(id=bad_id), headers=api.user(user))
    assert_error(response, 404, "not_found")
    assert (await api.me(user, "unread-count"))["count"] == 1


async def test_list_and_counts_show_only_the_callers_notifications(api: Api,
                                                                   store: SqlStore) -> None:
    a, b = new_user("a"), new_user("b")
    a_ids = {(await api.publish(a, type="secret"))["notifications"][0]["id"] for _ in range(3)}
    b_id = (await api.publish(b))["notifications"][0]["id"]

    listed = await api.me(b, "notifications", params={"limit": 100})
    assert [item["id"] for item in listed["notifications"]] == [b_id]
    assert (listed["unread_count"], listed["seq"]) == (1, 1)
    assert (await api.me(b, "notifications", params={"type": "secret"}))["notifications"] == []
    assert counted(await api.me(b, "unread-count")) == {"count": 1, "seq": 1}

    cleared = await api.me(b, "notifications/read-all", method="POST")
    assert cleared["ids"] == [b_id]
    a_list = await api.me(a, "notifications", params={"unread": "true"})
    assert {item["id"] for item in a_list["notifications"]} == a_ids
    assert await assert_counter_matches(store, a) == 3
