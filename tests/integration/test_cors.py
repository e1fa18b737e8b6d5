"""TOCSIN_ALLOWED_ORIGINS: browsers on the listed origins may call the API, others may not."""

from __future__ import annotations

import pytest

from tests.integration.apps import running_api
from tocsin.store.sql import SqlStore

ALLOWED = "https://app.example"
PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}


@pytest.mark.parametrize(("origins", "origin", "allowed"), [
    ([ALLOWED], ALLOWED, True),
    ([ALLOWED], "https://evil.example", False),
    ([], ALLOWED, False),
])
async def test_preflight_answers_only_listed_origins(store: SqlStore, origins: list[str],
                                                     origin: str, allowed: bool) -> None:
    async with running_api(store, allowed_origins=origins) as api:
        response = await api.client.options("/v1/notifications",
                                            headers={"Origin": origin, **PREFLIGHT})
        simple = await api.client.get("/v1/me/unread-count",
                                      headers={"Origin": origin, **api.user("ada")})
    assert simple.status_code == 200
    if allowed:
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == origin
        assert "idempotency-key" in response.headers["access-control-allow-headers"].lower()
        assert simple.headers["access-control-allow-origin"] == origin
    else:
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize("origins", [[ALLOWED], []])
async def test_the_widget_script_loads_on_any_origin(store: SqlStore, origins: list[str]) -> None:
    """A module script from another origin is fetched in CORS mode: were it refused, the
    widget could not tell a refused page which setting to change."""
    async with running_api(store, allowed_origins=origins) as api:
        response = await api.client.get("/static/tocsin.js",
                                        headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert response.headers["access-control-allow-origin"] == "*"
