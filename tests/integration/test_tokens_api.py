"""POST /v1/tokens: a publisher mints a user's token, which then opens that user's /v1/me."""

from __future__ import annotations

import time
from datetime import datetime

import jwt
import pytest

from tests.support.client import JWT_SECRET, Api, counted, new_user


@pytest.mark.parametrize(("body_ttl", "expected_ttl"), [(600, 600), (None, 3600)])
async def test_minted_token_opens_me_and_expires_when_asked(
        api: Api, body_ttl: int | None, expected_ttl: int) -> None:
    user = new_user()
    await api.publish(user)
    body: dict[str, object] = {"user_id": user}
    if body_ttl is not None:
        body["ttl_seconds"] = body_ttl
    started = int(time.time())
    response = await api.client.post("/v1/tokens", json=body, headers=api.publisher)
    finished = int(time.time())
    assert response.status_code == 200, response.text
    minted = response.json()
    assert set(minted) == {"token", "expires_at"}

    expires_at = datetime.fromisoformat(minted["expires_at"])
    assert expires_at.utcoffset() is not None
    claims = jwt.decode(minted["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user
    assert claims["exp"] == int(expires_at.timestamp())
    assert started + expected_ttl <= claims["exp"] <= finished + expected_ttl

    me = await api.client.get("/v1/me/unread-count",
                              headers={"Authorization": f"Bearer {minted['token']}"})
    assert me.status_code == 200, me.text
    assert counted(me.json()) == {"count": 1, "seq": 1}
