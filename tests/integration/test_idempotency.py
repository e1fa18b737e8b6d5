"""Idempotency-Key over HTTP: a retry is answered, not repeated."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from tests.integration.problems import assert_error
from tests.support.client import Api, new_user
from tests.support.db import row_counts, seqs_of
from tocsin.auth.keys import generate_key, hash_key
from tocsin.store.sql import SqlStore


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"k-{uuid.uuid4()}"}


async def post(api: Api, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return await api.client.post("/v1/notifications", json=body,
                                 headers={**api.publisher, **headers})


async def test_replay_returns_the_first_response_with_the_replayed_header(
        api: Api, store: SqlStore) -> None:
    user, headers = new_user(), key()
    body = {"user_id": user, "type": "comment", "data": {"post": 7}}
    first = await post(api, body, headers)
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    before = await row_counts(store)

    again = await post(api, body, headers)
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await row_counts(store) == before
    assert await seqs_of(store, user) == [1]


async def test_the_same_body_in_another_key_order_and_spacing_is_a_replay(
        api: Api, store: SqlStore) -> None:
    user, headers = new_user(), key()
    first = await post(api, {"user_id": user, "type": "comment", "data": {"a": 1, "b": 2}},
                       headers)
    reordered = b' {  "data": {"b": 2, "a": 1}, "type": "comment",\n "user_id": %s }' % (
        orjson.dumps(user))
    again = await api.client.post(
        "/v1/notifications", content=reordered,
        headers={**api.publisher, **headers, "Content-Type": "application/json"})
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await seqs_of(store, user) == [1]


async def test_the_same_key_with_another_body_is_refused(api: Api, store: SqlStore) -> None:
    user, headers = new_user(), key()
    await api.publish(user, headers=headers, title="first")
    before = await row_counts(store)
    response = await post(api, {"user_id": user, "type": "comment", "title": "second"}, headers)
    error = assert_error(response, 422, "idempotency_key_reused")
    assert error["details"] == {"idempotency_key": headers["Idempotency-Key"]}
    assert await row_counts(store) == before


async def test_concurrent_requests_with_one_key_write_one_row(api: Api, store: SqlStore) -> None:
    user, headers = new_user(), key()
    body = {"user_id": user, "type": "comment", "title": "once"}
    responses = await asyncio.gather(*(post(api, body, headers) for _ in range(10)))

    accepted = [r for r in responses if r.status_code == 202]
    assert accepted, [r.text for r in responses]
    assert all(r.json() == accepted[0].json() for r in accepted)
    for response in responses:
        if response.status_code != 202:
            assert_error(response, 409, "idempotency_key_in_flight")
    assert sum("Idempotent-Replayed" not in r.headers for r in accepted) == 1
    assert await seqs_of(store, user) == [1]
    assert accepted[0].json()["notifications"][0]["seq"] == 1


async def test_keys_are_scoped_to_the_publisher(api: Api, store: SqlStore) -> None:
    key_id, other_key = generate_key()
    await store.create_api_key(key_id, "other publisher", hash_key(other_key), datetime.now(UTC))
    user, headers = new_user(), key()
    body = {"user_id": user, "type": "comment"}
    mine = await post(api, body, headers)
    theirs = await api.client.post("/v1/notifications", json=body,
                                   headers={"Authorization": f"Bearer {other_key}", **headers})
    assert (mine.status_code, theirs.status_code) == (202, 202), theirs.text
    assert "Idempotent-Replayed" not in theirs.headers
    assert await seqs_of(store, user) == [1, 2]

