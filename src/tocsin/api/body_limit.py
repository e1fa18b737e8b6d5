"""Request body size limit, enforced before the body is read whole."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tocsin.api.responses import error_response


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413: at once when Content-Length says so, else as
    soon as the streamed chunks pass the limit (raised from `receive`, so the route never gets a
    truncated body)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    status = 413 if declared > self.max_bytes else 400
                    response = error_response(
                        status, "payload_too_large" if status == 413 else "bad_request",
                        f"request body is limited to {self.max_bytes} bytes"
                        if status == 413 else "malformed Content-Length header",
                    )
                    await response(scope, receive, send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"request body is limited to {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)
