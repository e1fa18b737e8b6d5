"""/docs and /openapi.json: every request body has an example, and the examples work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.client import Api, new_user

Spec = dict[str, Any]
METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture
async def spec(api: Api) -> Spec:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    found: Spec = response.json()
    return found


def resolve(spec: Spec, schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    resolved: dict[str, Any] = node
    return resolved


def body_schemas(spec: Spec, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a body may be: through `$ref` and `anyOf` (an optional body)."""
    schema = resolve(spec, schema)
    if "anyOf" in schema:
        return [s for option in schema["anyOf"] if option.get("type") != "null"
                for s in body_schemas(spec, option)]
    return [schema]


def operations_with_bodies(spec: Spec) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS and "requestBody" in operation:
                yield method.upper(), path, operation


async def test_docs_serve_html(api: Api) -> None:
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text and "swagger" in response.text.lower()


async def test_every_request_body_has_an_example(spec: Spec) -> None:
    seen = []
    for method, path, operation in operations_with_bodies(spec):
        for media, content in operation["requestBody"]["content"].items():
            assert media == "application/json", (method, path, media)
            for schema in body_schemas(spec, content["schema"]):
                examples = schema.get("examples")
                assert examples, f"{method} {path}: body {schema.get('title')} has no example"
                seen.append((method, path))
    assert {("POST", "/v1/notifications"), ("POST", "/v1/tokens"), ("PUT", "/v1/users/{user_id}"),
            ("POST", "/v1/me/notifications/read-all")} <= set(seen)


async def test_every_example_is_accepted_by_its_operation(api: Api, spec: Spec) -> None:
    user = new_user()
    await api.publish(user)
    # The topic the examples name exists, with a subscriber, as it would in use.
    topic = "project-7"
    subscribed = await api.client.put(f"/v1/topics/{topic}/subscribers", headers=api.publisher,
                                      json={"user_ids": [user]})
    assert subscribed.status_code == 200, subscribed.text
    tried = 0
    for method, path, operation in operations_with_bodies(spec):
        (scheme,) = [name for requirement in operation["security"] for name in requirement]
        headers = api.publisher if scheme == "ApiKey" else api.user(user)
        # Types are global: a type of this test's own, not one other tests publish.
        kind = new_user("type") if path.startswith("/v1/types") else "comment"
        url = path.replace("{user_id}", new_user()).replace("{type}", kind).replace(
            "{topic}", topic)
        for schema in body_schemas(spec, operation["requestBody"]["content"]
                                   ["application/json"]["schema"]):
            for example in schema["examples"]:
                response = await api.client.request(method, url, json=example, headers=headers)
                assert response.status_code < 300, (method, path, example, response.text)
                tried += 1
    assert tried >= 5


async def test_two_bearer_schemes_guard_publisher_and_user_routes(spec: Spec) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == {"ApiKey", "UserToken"}
    assert all(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    assert schemes["UserToken"]["bearerFormat"] == "JWT"
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or not path.startswith("/v1/"):
                continue
            user_route = path.startswith("/v1/me/") or path == "/v1/stream"
            expected = "UserToken" if user_route else "ApiKey"
            assert operation.get("security") == [{expected: []}], (method, path)
