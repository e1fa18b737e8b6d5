"""The request body limit (1 MiB by default): refused with 413 before the body is read whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from tests.integration.problems import assert_error
from tests.support.client import Api, new_user
from tests.support.db import row_counts
from tocsin.store.sql import SqlStore

LIMIT = 1024 * 1024
CHUNK = 64 * 1024


class Chunks:
    """A request body streamed in chunks, counting how many the server pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        remaining = self.total
        while remaining > 0:
            size = min(CHUNK, remaining)
            remaining -= size
            self.sent += 1
            yield b" " * size


async def test_declared_length_over_the_limit_is_refused_unread(api: Api, store: SqlStore
                                                                ) -> None:
    body = Chunks(LIMIT + 1)
    before = await row_counts(store)
    response = await api.client.post(
        "/v1/notifications", content=body,
        headers={**api.publisher, "Content-Type": "application/json",
                 "Content-Length": str(body.total)})
    assert_error(response, 413, "payload_too_large")
    assert body.sent == 0, f"the server read {body.sent} chunks of a body it had to refuse"
    assert await row_counts(store) == before


async def test_streamed_body_over_the_limit_is_refused(api: Api, store: SqlStore) -> None:
    body = Chunks(LIMIT * 2)
    before = await row_counts(store)
    response = await api.client.post(
        "/v1/notifications", content=body,
        headers={**api.publisher, "Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large")
    assert body.sent < LIMIT * 2 // CHUNK, "the server read the whole oversized body"
    assert await row_counts(store) == before


async def test_body_of_exactly_the_limit_is_accepted(api: Api) -> None:
    user = new_user()
    skeleton = orjson.dumps({"user_id": user, "type": "comment", "data": {"pad": ""}})
    padding = "x" * (LIMIT - len(skeleton))
    body = orjson.dumps({"user_id": user, "type": "comment", "data": {"pad": padding}})
    assert len(body) == LIMIT
    response = await api.client.post(
        "/v1/notifications", content=body,
        headers={**api.publisher, "Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    (stored,) = (await api.me(user, "notifications"))["notifications"]
    assert len(stored["data"]["pad"]) == len(padding)
