"""uvicorn's httptools protocol with the limits it lacks: a deadline for the request head, and
a size limit on the URL and on the headers, answered at once.

Without them, a client trickling its headers one byte at a time holds a socket (and its
memory) forever, and a WebSocket handshake with an oversized URL is handed to the WebSocket
library, which sits on it until its own opening timeout. Here the head must be complete within
`head_timeout` of the connection (or of the first byte of the next request on a kept-alive
one), else 408; a URL over `max_url_bytes` is 414 and headers over `max_header_bytes` are 431,
both before anything reaches the app.

A refusal is closed the way nginx's `lingering_close` does it: the answer is written, the write
side shut, and whatever the client still sends is read and dropped for a moment before the
socket closes. Closing at once with the client's bytes unread makes the kernel answer with a
reset, which can destroy the 408 in the client's buffer before it reads it.
"""

from __future__ import annotations

import asyncio
import functools
from asyncio import TimerHandle
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True, slots=True)
class HeadLimits:
    head_timeout: float = 10.0
    max_url_bytes: int = 8192
    max_header_bytes: int = 16384
    #: How long a refused connection is drained before it closes (see the module's note).
    linger: float = 2.0


class _Refusal(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GuardedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: HeadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._head_timer: TimerHandle | None = None
        self._head_bytes = 0
        self._refusal: _Refusal | None = None
        self._lingering = False

    @classmethod
    def factory(cls, limits: HeadLimits) -> Any:
        """What uvicorn's `http=` takes: a picklable callable (for `--workers N`)."""
        return functools.partial(cls, limits=limits)

    # -- the head's deadline -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self._lingering:  # a refused connection's further bytes are dropped
            super().data_received(data)

    def eof_received(self) -> None:
        if self._lingering:  # the client has read the answer and closed: done lingering
            self.transport.close()
            return
        super().eof_received()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def _start_head(self) -> None:
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._limits.head_timeout, self._head_late)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._refuse(HTTPStatus.REQUEST_TIMEOUT,
                         f"the request head must arrive within {self._limits.head_timeout:g}s")

    # -- sizes ---------------------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self._limits.max_url_bytes:
            self._stop_parsing(HTTPStatus.REQUEST_URI_TOO_LONG,
                               f"the URL is limited to {self._limits.max_url_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._limits.max_header_bytes:
            self._stop_parsing(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                               f"request headers are limited to "
                               f"{self._limits.max_header_bytes} bytes")
        super().on_header(name, value)

    def _stop_parsing(self, status: HTTPStatus, message: str) -> None:
        # Raised from a parser callback, it stops the parser, which then reports a parse error
        # (answered by `send_400_response`, below) before anything reaches the app.
        self._refusal = _Refusal(status, message)
        raise self._refusal

    def send_400_response(self, msg: str) -> None:
        # The parser stops on a refusal raised from its callbacks and reports it as a parse
        # error; answer with the refusal's own status instead of a generic 400.
        refusal = self._refusal
        if refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(refusal.status, refusal.message)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        self._stop_head_timer()
        body = message.encode()
        self.transport.write(
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            "content-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        if self._lingering or not self.transport.can_write_eof():
            self.transport.close()
            return
        self._lingering = True
        self.transport.write_eof()
        self.loop.call_later(self._limits.linger, self.transport.close)
