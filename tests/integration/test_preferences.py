"""What a preference does, observably: the publish receipt per recipient and channel, the
inbox, the count, the queued deliveries; and the effective settings the API returns.

One table of cases: the type's default, the user's row, category, mute, critical, channel.
Each case is a fresh user, set up through the API, then sent one notification of a type."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import Api, new_user
from tests.support.jobs import job_rows
from tocsin.store.schema import notifications
from tocsin.store.sql import SqlStore

#: Types are global to a database: names of this module's own.
SOCIAL = new_user("social")
CATEGORY = new_user("cat")
ALERT = new_user("alert")


@pytest.fixture
async def app(store: SqlStore) -> AsyncIterator[Api]:
    # Email is configured (so it can be queued) but nothing sends: no worker in process.
    async with running_api(store, smtp_url="smtp://127.0.0.1:9", worker_in_process=False) as api:
        for name, body in ((SOCIAL, {"title": "{{ actor }} did something",
                                     "category": CATEGORY,
                                     "channels": {"web": True, "email": True}}),
                           (ALERT, {"title": "Alert", "critical": True, "category": CATEGORY,
                                    "channels": {"web": True, "email": True}})):
            response = await api.client.put(f"/v1/types/{name}", json=body,
                                            headers=api.publisher)
            assert response.status_code == 200, response.text
        yield api


Step = Callable[[Api, str], Any]


def put_type(body: dict[str, Any], type_: str = SOCIAL) -> Step:
    async def step(api: Api, user: str) -> None:
        await api.me(user, f"preferences/{type_}", method="PUT", json=body)
    return step


def put_settings(body: dict[str, Any]) -> Step:
    async def step(api: Api, user: str) -> None:
        await api.me(user, "preferences", method="PUT", json=body)
    return step


def reset(type_: str = SOCIAL) -> Step:
    async def step(api: Api, user: str) -> None:
        await api.me(user, f"preferences/{type_}", method="DELETE")
    return step


@dataclass(frozen=True)
class Case:
    steps: tuple[Step, ...]
    status: str
    channels: dict[str, str]
    type: str = SOCIAL
    email: bool = True  # the user's profile has an address
    publish: dict[str, Any] = field(default_factory=dict)


ON = {"web": "delivered", "email": "queued"}
CASES: dict[str, Case] = {
    "no_row_gets_the_type_defaults": Case((), "created", ON),
    "no_address_skips_email": Case((), "created",
                                   {"web": "delivered", "email": "skipped:no_address"},
                                   email=False),
    "type_off": Case((put_type({"enabled": False}),), "suppressed",
                     {"web": "suppressed:preference", "email": "suppressed:preference"}),
    "email_off": Case((put_type({"channels": {"email": False}}),), "created",
                      {"web": "delivered", "email": "suppressed:preference"}),
    "web_off_email_still_delivers": Case(
        (put_type({"channels": {"web": False}}),), "suppressed",
        {"web": "suppressed:preference", "email": "queued"}),
    "push_on_but_not_run_here": Case((put_type({"channels": {"push": True}}),), "created",
                                     {**ON, "push": "skipped:unavailable"}),
    "category_off": Case((put_settings({"categories": {CATEGORY: False}}),), "suppressed",
                         {"web": "suppressed:category", "email": "suppressed:category"}),
    "other_category_off": Case((put_settings({"categories": {"elsewhere": False}}),),
                               "created", ON),
    "muted": Case((put_settings({"muted": True}),), "suppressed",
                  {"web": "suppressed:muted", "email": "suppressed:muted"}),
    "muted_then_unmuted": Case((put_settings({"muted": True}), put_settings({"muted": False})),
                               "created", ON),
    "muted_critical_still_delivers": Case((put_settings({"muted": True}),), "created", ON,
                                          type=ALERT),
    "category_off_critical_still_delivers": Case(
        (put_settings({"categories": {CATEGORY: False}}),), "created", ON, type=ALERT),
    "critical_keeps_its_defaults_and_adds_push": Case(
        (put_type({"channels": {"push": True}}, ALERT),), "created",
        {**ON, "push": "skipped:unavailable"}, type=ALERT),
    "type_off_then_reset": Case((put_type({"enabled": False}), reset()), "created", ON),
    "named_channels_are_used_as_named": Case((), "created", {"web": "delivered"},
                                             publish={"channels": ["web"]}),
    "named_channel_the_user_turned_off_stays_off": Case(
        (put_type({"channels": {"email": False}}),), "created",
        {"web": "delivered", "email": "suppressed:preference"},
        publish={"channels": ["web", "email"]}),
    "named_channels_of_a_type_turned_off": Case(
        (put_type({"enabled": False}),), "suppressed",
        {"web": "suppressed:preference", "email": "suppressed:preference"},
        publish={"channels": ["email"]}),
    "adhoc_type_when_muted": Case((put_settings({"muted": True}),), "suppressed",
                                  {"web": "suppressed:muted"},
                                  type="adhoc-undefined", publish={"title": "hi"}),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
async def test_what_a_preference_does(app: Api, store: SqlStore, case: Case) -> None:
    user = new_user("pref")
    if case.email:
        await app.client.put(f"/v1/users/{user}", json={"email": f"{user}@example.com"},
                             headers=app.publisher)
    for step in case.steps:
        await step(app, user)
    response = await app.client.post(
        "/v1/notifications", headers=app.publisher,
        json={"user_id": user, "type": case.type, "data": {"actor": "Alice"}, **case.publish})
    assert response.status_code == 202, response.text
    [receipt] = response.json()["notifications"]
    assert (receipt["status"], receipt["channels"]) == (case.status, case.channels)

    listed = await app.me(user, "notifications")
    in_inbox = case.channels["web"] == "delivered"
    assert [item["id"] for item in listed["notifications"]] == ([receipt["id"]] if in_inbox
                                                                else [])
    assert listed["unread_count"] == (1 if in_inbox else 0)
    assert (receipt["seq"] is not None) == in_inbox
    # Stored either way, with the decision the publisher was told.
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(notifications.c.status, notifications.c.decisions)
                                  .where(notifications.c.id == uuid.UUID(receipt["id"])))).one()
    assert (row.status, row.decisions) == (case.status, case.channels)
    queued = {job.channel for job in await job_rows(store, [uuid.UUID(receipt["id"])])}
    assert queued == {name for name, outcome in case.channels.items() if outcome == "queued"}
    if not in_inbox:
        one = await app.client.get(f"/v1/me/notifications/{receipt['id']}",
                                   headers=app.user(user))
        assert_error(one, 404, "not_found")
        read = await app.client.post(f"/v1/me/notifications/{receipt['id']}/read",
                                     headers=app.user(user))
        assert_error(read, 404, "not_found")


async def test_a_suppressed_recipient_takes_no_seq_and_the_next_one_is_gap_free(app: Api
                                                                                ) -> None:
    user = new_user("pref")
    first = (await app.publish(user, type=SOCIAL, data={"actor": "A"}))["notifications"][0]
    await put_type({"enabled": False})(app, user)
    hidden = (await app.publish(user, type=SOCIAL, data={"actor": "B"}))["notifications"][0]
    await reset()(app, user)
    last = (await app.publish(user, type=SOCIAL, data={"actor": "C"}))["notifications"][0]
    assert (first["seq"], hidden["seq"], last["seq"]) == (1, None, 2)
    assert hidden["status"] == "suppressed"
    count = await app.me(user, "unread-count")
    assert (count["count"], count["seq"]) == (2, 2)


async def test_one_batch_decides_per_recipient(app: Api) -> None:
    on, off, muted = new_user("pref"), new_user("pref"), new_user("pref")
    await put_type({"enabled": False})(app, off)
    await put_settings({"muted": True})(app, muted)
    receipts = (await app.publish([on, off, muted], type=SOCIAL,
                                  data={"actor": "A"}))["notifications"]
    assert {r["user_id"]: (r["status"], r["seq"]) for r in receipts} == {
        on: ("created", 1), off: ("suppressed", None), muted: ("suppressed", None)}


async def test_the_effective_settings_of_every_type(app: Api) -> None:
    user = new_user("pref")
    await put_type({"channels": {"email": False}})(app, user)
    await put_settings({"categories": {"elsewhere": False}})(app, user)
    document = await app.me(user, "preferences")
    assert document["muted"] is False and document["categories"] == {"elsewhere": False}
    assert document["quiet_hours"] is None
    types = {entry["type"]: entry for entry in document["types"]}
    assert {"comment", "mention", "like", "follow", "message", "system", "order", "payment",
            SOCIAL, ALERT} <= set(types)
    assert types[SOCIAL] == {"type": SOCIAL, "enabled": True,
                             "channels": {"web": True, "email": False, "push": False},
                             "customized": True, "critical": False, "category": CATEGORY,
                             "description": None, "why": None}
    assert types["comment"]["customized"] is False
    assert types["comment"]["channels"] == {"web": True, "email": False, "push": False}
    assert types["payment"]["critical"] is True and types["payment"]["enabled"] is True
    # The publisher sees the same, under the user's id.
    response = await app.client.get(f"/v1/users/{user}/preferences", headers=app.publisher)
    assert response.status_code == 200 and response.json() == document


async def test_put_returns_the_effective_result_and_merges_channels(app: Api) -> None:
    user = new_user("pref")
    first = await app.me(user, f"preferences/{SOCIAL}", method="PUT",
                         json={"channels": {"email": False}})
    assert first["channels"] == {"web": True, "email": False, "push": False}
    second = await app.me(user, f"preferences/{SOCIAL}", method="PUT",
                          json={"channels": {"push": True}})
    assert second["channels"] == {"web": True, "email": False, "push": True}
    third = await app.me(user, f"preferences/{SOCIAL}", method="PUT", json={"enabled": False})
    assert (third["enabled"], third["channels"]["email"], third["why"]) == (
        False, False, "preference")
    back = await app.me(user, f"preferences/{SOCIAL}", method="DELETE")
    assert back == {**third, "enabled": True, "customized": False, "why": None,
                    "channels": {"web": True, "email": True, "push": False}}
    await put_settings({"muted": True})(app, user)
    muted = {e["type"]: e for e in (await app.me(user, "preferences"))["types"]}[SOCIAL]
    assert (muted["enabled"], muted["why"]) == (False, "muted")


async def test_the_publisher_manages_a_user_s_preferences(app: Api) -> None:
    user = new_user("pref")
    response = await app.client.put(f"/v1/users/{user}/preferences/{SOCIAL}",
                                    json={"enabled": False}, headers=app.publisher)
    assert response.status_code == 200 and response.json()["enabled"] is False
    mine = await app.me(user, "preferences")
    assert {e["type"]: e["enabled"] for e in mine["types"]}[SOCIAL] is False
    muted = await app.client.put(f"/v1/users/{user}/preferences", json={"muted": True},
                                 headers=app.publisher)
    assert muted.status_code == 200 and muted.json()["muted"] is True
    # A user token cannot reach the publisher's routes, nor another user's settings.
    refused = await app.client.get(f"/v1/users/{user}/preferences", headers=app.user(user))
    assert_error(refused, 401, "unauthorized")


async def test_a_critical_type_cannot_be_turned_off(app: Api) -> None:
    user = new_user("pref")
    refused = await app.client.put(f"/v1/me/preferences/{ALERT}", json={"enabled": False},
                                   headers=app.user(user))
    error = assert_error(refused, 422, "validation_error")
    assert ALERT in error["message"] and "critical" in error["message"]
    document = await app.me(user, "preferences")
    assert {e["type"]: e for e in document["types"]}[ALERT]["customized"] is False


async def test_a_batch_resolves_preferences_in_a_bounded_number_of_statements(
        app: Api, store: SqlStore) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # What reads the recipients (the users bump is the publish's own, measured apart).
        if "user_settings" in statement or "preferences" in statement:
            statements.append(statement)

    async def publish_to(size: int) -> int:
        users = [new_user("bulk") for _ in range(size)]
        for user in users[::7]:  # some with preferences, some muted, most with none
            await put_type({"channels": {"email": False}})(app, user)
        await put_settings({"muted": True})(app, users[1])
        statements.clear()
        sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)
        try:
            receipts = (await app.publish(users, type=SOCIAL,
                                          data={"actor": "A"}))["notifications"]
        finally:
            sa.event.remove(store.engine.sync_engine, "before_cursor_execute", count)
        assert len(receipts) == size
        assert receipts[1]["status"] == "suppressed"
        return len(statements)

    small, large = await publish_to(10), await publish_to(400)
    assert large == small == 1, (small, large)
