"""What the OpenAPI description says beyond the routes' own signatures: the error answers each
route really gives, and the limits that come from settings rather than from code."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from tocsin.settings import Settings


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, for programs: e.g. validation_error, not_found")
    message: str = Field(description="for people")
    details: Any = Field(default=None, description="what exactly was wrong, where known")


class ErrorBody(BaseModel):
    """Every error has this shape."""

    error: ErrorDetail


_WHEN = {
    400: "the body is not JSON (`invalid_json`), or a malformed header",
    401: "no credential, or one that is not valid (`unauthorized`)",
    403: "refused (`forbidden`)",
    404: "no such resource, or another user's (`not_found`)",
    409: "a request with the same Idempotency-Key is still in flight",
    413: "the body is over TOCSIN_MAX_BODY_BYTES (`payload_too_large`)",
    415: "the body is not `application/json` (`unsupported_media_type`)",
    422: "well-formed but not valid (`validation_error`); `details` lists each problem",
    429: "too many at once (`too_many_connections`, `rate_limited`); see Retry-After",
    503: "the database (or the bus) cannot serve now; nothing was stored; see Retry-After",
}

#: Answers every authenticated route can give: a bad credential, or a store that is down (a
#: stored API key is looked up in it).
AUTHENTICATED = (401, 503)
#: Answers of a route that takes a JSON body.
WITH_BODY = (400, 413, 415, 422)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the contract's error body."""
    return {status: {"model": ErrorBody, "description": _WHEN[status]}
            for status in sorted(set(statuses))}


def install(app: FastAPI, settings: Settings) -> None:
    """Serve an OpenAPI description whose limits are this server's settings."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 routes=app.routes)
            _apply_limits(schema, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _apply_limits(schema: dict[str, Any], settings: Settings) -> None:
    paths = schema.get("paths", {})
    for parameter in paths.get("/v1/me/notifications", {}).get("get", {}).get("parameters", []):
        if parameter["name"] == "limit":
            parameter["schema"]["maximum"] = settings.max_list_limit
    components = schema.get("components", {}).get("schemas", {})
    for body, field in (("PublishBody", "user_ids"), ("PublishBody", "exclude_user_ids"),
                        ("SubscribersBody", "user_ids")):
        user_ids = components.get(body, {}).get("properties", {}).get(field, {})
        for option in user_ids.get("anyOf", [user_ids]):
            if option.get("type") == "array":
                option["maxItems"] = settings.max_batch_users
    ttl = components.get("TokenBody", {}).get("properties", {}).get("ttl_seconds")
    if ttl is not None:
        ttl["maximum"] = settings.max_token_ttl_seconds
