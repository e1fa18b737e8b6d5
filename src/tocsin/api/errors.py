"""Every error leaves as `{"error": {"code", "message", "details"?}}` with its status."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute

from tocsin.api.responses import error_response
from tocsin.domain.errors import StoreUnavailable, TocsinError, Unauthorized

log = logging.getLogger("tocsin.api")

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
    503: "unavailable",
}


async def _tocsin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TocsinError)
    return tocsin_error_response(exc)


def tocsin_error_response(exc: TocsinError) -> Response:
    """A domain error as the contract's error body, with its status and headers."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable: %s", exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.details, headers or None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    if exc.status_code == 405:
        # Starlette names only the first route that matched the path; a path served by several
        # routes (GET and PUT /v1/users/{id}) supports the methods of all of them.
        allowed = _methods_at(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
    return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), message,
                          headers=headers or None)


def _methods_at(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        pattern = getattr(route, "path_regex", None)
        if isinstance(route, BaseRoute) and pattern is not None and \
                pattern.match(request.url.path):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details: list[dict[str, Any]] = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""),
         "type": error.get("type", "")}
        for error in exc.errors()
    ]
    content_type = request.headers.get("content-type", "")
    if details and details[0]["loc"] == ["body"] and "json" not in content_type:
        return error_response(415, "unsupported_media_type",
                              f"expected Content-Type: application/json, got {content_type!r}")
    if any(item["type"] == "json_invalid" for item in details):
        return error_response(400, "invalid_json", "the request body is not valid JSON", details)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in item['loc'][1:] or item['loc'])}: {item['msg']}"
        for item in details[:5]
    )
    return error_response(422, "validation_error", f"invalid request: {summary}", details)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected_error_response(request.method, request.url.path)


def unexpected_error_response(method: str, path: str) -> Response:
    """A 500 for an error nothing expected; logged with its traceback (call it from the
    `except` block that caught it)."""
    log.exception("unhandled error on %s %s", method, path)
    return error_response(500, "internal_error", "internal error; see the server log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(TocsinError, _tocsin_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
