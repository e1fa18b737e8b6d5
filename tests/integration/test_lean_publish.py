"""The lean publish route and the FastAPI route answer alike: the same request, served by the
lean layer (a `Content-Length`) and by the route (the same body streamed, without one), gets the
same status, headers and receipt; what the lean layer hands over is refused by the route, with
its body given back intact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.support.client import PUBLISHER_KEY, Api, new_user

HEADERS = {"Authorization": f"Bearer {PUBLISHER_KEY}", "Content-Type": "application/json"}


async def _streamed(body: bytes) -> AsyncIterator[bytes]:
    # No Content-Length: the lean layer leaves a streamed body to the route.
    yield body[:10]
    yield body[10:]


def _shape(response: Any) -> tuple[int, str, list[dict[str, Any]]]:
    receipts = response.json()["notifications"]
    for receipt in receipts:
        receipt.pop("id")
        receipt.pop("user_id")
    return response.status_code, response.headers["content-type"], receipts


@pytest.mark.parametrize("extra", [
    {},
    {"channels": ["web"], "priority": "high", "data": {"post": 7}},
    {"title": "T", "message": "M", "action_url": "https://example.com/x"},
])
async def test_both_routes_answer_a_publish_alike(api: Api, extra: dict[str, Any]) -> None:
    answers = []
    for lean in (True, False):
        body = orjson.dumps({"user_id": new_user(), "type": "comment", "title": "t", **extra})
        content: Any = body if lean else _streamed(body)
        answers.append(await api.client.post("/v1/notifications", content=content,
                                             headers=HEADERS))
    assert "content-length" not in answers[1].request.headers
    assert _shape(answers[0]) == _shape(answers[1])
    assert answers[0].status_code == 202


async def test_an_idempotent_replay_is_answered_alike(api: Api) -> None:
    body = orjson.dumps({"user_id": new_user(), "type": "comment", "title": "t"})
    headers = {**HEADERS, "Idempotency-Key": f"k-{new_user()}"}
    first = await api.client.post("/v1/notifications", content=body, headers=headers)
    again = await api.client.post("/v1/notifications", content=_streamed(body), headers=headers)
    third = await api.client.post("/v1/notifications", content=body, headers=headers)
    assert first.json() == again.json() == third.json()
    assert again.headers["idempotent-replayed"] == third.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(("body", "headers", "status"), [
    (b'{"user_id": "u", "type": "comment", "title": ', HEADERS, 400),
    (b'{"user_id": "u", "type": "comment", "nope": 1}', HEADERS, 422),
    (b'{"user_id": "u", "type": "comment"}', {**HEADERS, "Authorization": "Bearer wrong"}, 401),
    (b'{"user_id": "u", "type": "comment"}', {**HEADERS, "Content-Type": "text/plain"}, 415),
    (b'{"user_id": "u", "type": "comment"}', {**HEADERS, "Idempotency-Key": "has space"}, 422),
])
async def test_what_the_lean_layer_hands_over_is_refused_by_the_route(
        api: Api, body: bytes, headers: dict[str, str], status: int) -> None:
    lean = await api.client.post("/v1/notifications", content=body, headers=headers)
    route = await api.client.post("/v1/notifications", content=_streamed(body),
                                  headers=headers)
    assert lean.status_code == route.status_code == status
    assert lean.json() == route.json()
