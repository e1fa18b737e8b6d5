"""POST /v1/notifications without the framework's per-request work, for the requests that need
none of it.

The profile of a saturated server put FastAPI's routing and dependency solving, and Starlette's
request machinery, at a third of the server's CPU per publish: more than the database. This
ASGI layer sits in front of the router and answers the common case itself: a publish with
`Content-Type: application/json`, a `Content-Length`, a valid API key and a body that
validates. It authenticates, parses with the same model, counts the publisher's rate and
answers with the same function as the route (`api/publish.py: published`), and its errors
with the same handlers (`api/errors.py`).

Anything else (no key or a wrong one, another content type, a body that does not validate, a
malformed Idempotency-Key) is handed to the FastAPI route untouched, the body already read
given back to it, so every refusal keeps its exact status, code and message and is written in
one place. Nothing has been counted or written when it is handed over. The route also stays
what `/openapi.json` describes.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tocsin.api.deps import count_publisher_request
from tocsin.api.errors import tocsin_error_response, unexpected_error_response
from tocsin.api.publish import IDEMPOTENCY_KEY_PATTERN, published
from tocsin.api.schemas import PublishBody
from tocsin.auth.keys import Publisher
from tocsin.domain.errors import TocsinError
from tocsin.services import Services, services_of

PATH = "/v1/notifications"

_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class LeanPublish:
    """ASGI middleware: serves a plain, valid publish; passes everything else to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._services: Services | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        authorization = content_type = idempotency_key = None
        has_length = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                has_length = True
            elif name == b"idempotency-key":
                idempotency_key = value
        # Without a length the body is streamed, and only the full stack turns a stream that
        # outgrows the limit into its 413; with another type, FastAPI decides what it is.
        if not has_length or content_type is None or not _is_json(content_type):
            await self.app(scope, receive, send)
            return
        svc = self._services
        if svc is None:
            svc = self._services = services_of(scope["app"])
        key = _bearer(authorization)
        who = await svc.keys.verify(key) if key is not None else None
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        parsed = _parse(body)
        the_key = idempotency_key.decode("latin-1") if idempotency_key is not None else None
        if who is None or parsed is None or (
                the_key is not None and _IDEMPOTENCY_KEY.match(the_key) is None):
            await self.app(scope, _replaying(body, receive), send)
            return
        await self._publish(svc, scope, receive, send, who, parsed, the_key)

    async def _publish(self, svc: Services, scope: Scope, receive: Receive, send: Send,
                       who: Publisher, body: PublishBody, idempotency_key: str | None) -> None:
        response: Response
        try:
            await count_publisher_request(svc, who)
            response = await published(svc, body, who, idempotency_key)
        except TocsinError as exc:
            response = tocsin_error_response(exc)
        except Exception:
            response = unexpected_error_response("POST", PATH)
        await response(scope, receive, send)


def _is_json(content_type: bytes) -> bool:
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json"


def _bearer(authorization: bytes | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def _parse(body: bytes) -> PublishBody | None:
    try:
        return PublishBody.model_validate_json(body)
    except ValidationError:
        return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then whatever the client sends next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            message: dict[str, Any] = {"type": "http.request", "body": body,
                                       "more_body": False}
            return message
        return await receive()

    return replay
