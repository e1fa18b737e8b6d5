"""An HTTP client that speaks Tocsin's API, in-process or to a real server."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import httpx

from tocsin.auth.tokens import TokenAuthority
from tocsin.settings import Settings

PUBLISHER_KEY = "test-publisher-key-0123456789abcdef"
JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"
_counter = itertools.count()


def counted(payload: Any) -> dict[str, Any]:
    """An unread count without its version, for tests that state the count and seq they expect
    (the version's own rules are tested where versions are the point)."""
    return {"count": payload["count"], "seq": payload["seq"]}


def settings_for(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: one known publisher key (or the keys given) and JWT secret."""
    fields: dict[str, Any] = {"api_keys": [PUBLISHER_KEY], "jwt_secret": JWT_SECRET,
                              **overrides}
    return Settings(database_url=database_url, **fields)


def new_user(prefix: str = "u") -> str:
    """A user id no other test uses, even against a shared database."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{os.urandom(3).hex()}"


@dataclass
class Api:
    client: httpx.AsyncClient
    key: str = PUBLISHER_KEY
    secret: str = JWT_SECRET

    @property
    def publisher(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def user(self, user_id: str, ttl: int = 3600) -> dict[str, str]:
        token, _ = TokenAuthority(self.secret).mint(user_id, ttl)
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, user_id: str | list[str], *, expect: int = 202,
                      headers: dict[str, str] | None = None, **fields: Any) -> Any:
        body: dict[str, Any] = {"type": "comment", "title": "Alice commented", **fields}
        body["user_ids" if isinstance(user_id, list) else "user_id"] = user_id
        response = await self.client.post("/v1/notifications", json=body,
                                          headers={**self.publisher, **(headers or {})})
        assert response.status_code == expect, response.text
        return response.json()

    async def me(self, user_id: str, path: str, *, method: str = "GET", expect: int = 200,
                 **kwargs: Any) -> Any:
        response = await self.client.request(method, f"/v1/me/{path}",
                                             headers=self.user(user_id), **kwargs)
        assert response.status_code == expect, response.text
        return response.json()
