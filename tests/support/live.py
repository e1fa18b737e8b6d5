"""Live-stream clients for end-to-end tests: a WebSocket client and an SSE client.

Both read a real `tocsin serve` over real sockets and hand events out one at a time. Every wait
is bounded: a stream that stays silent past its timeout fails the test with what it did see,
it never hangs it. A stream that ends raises `StreamEnded`, carrying the WebSocket close code
(None for SSE, or when the peer vanished without a close frame).
"""

# ruff: noqa: ASYNC109 - `timeout=` is each wait's bound, applied with asyncio.timeout inside
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.client import JWT_SECRET, Api
from tests.support.server import ServerProcess, tocsin_env, tocsin_server
from tocsin.auth.tokens import TokenAuthority

#: How long one expected event may take to arrive. Generous: a slow CI box must not flake.
WAIT = 10.0
#: How long the tests wait for a close (a slow-client cut, a token expiry).
CLOSE_WAIT = 20.0
#: Abnormal closure: the connection ended without a close frame.
ABNORMAL = 1006


def token_for(user: str, ttl: int = 3600) -> str:
    token, _ = TokenAuthority(JWT_SECRET).mint(user, ttl)
    return token


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event as a client sees it. `id` is the SSE `id:` field (None on WebSocket)."""

    name: str
    data: Any
    id: str | None = None

    @property
    def seq(self) -> int:
        """The seq of a `notification` event (also checked against the SSE `id:`)."""
        assert self.name == "notification", f"expected a notification, got {self}"
        seq = self.data["seq"]
        assert isinstance(seq, int), self
        if self.id is not None:
            assert self.id == str(seq), f"SSE id {self.id!r} disagrees with seq {seq}"
        return seq


class StreamEnded(Exception):
    """The stream is over: `code` is the WebSocket close code (None for SSE)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"stream ended (code {code}, reason {reason!r})")
        self.code = code
        self.reason = reason


class Silence(AssertionError):
    """An expected event did not come in time."""


@dataclass
class LiveStream:
    """What both transports share: a bounded wait for the next event, and helpers on it."""

    label: str
    seen: list[LiveEvent] = field(default_factory=list)

    async def _receive(self) -> LiveEvent:
        raise NotImplementedError

    async def next(self, timeout: float = WAIT) -> LiveEvent:
        try:
            async with asyncio.timeout(timeout):
                event = await self._receive()
        except TimeoutError:
            raise Silence(f"{self.label}: no event within {timeout}s; so far it received "
                          f"{[e.name for e in self.seen[-20:]]}") from None
        self.seen.append(event)
        return event

    async def expect(self, name: str, timeout: float = WAIT) -> LiveEvent:
        """The very next event, which must be named `name`."""
        event = await self.next(timeout)
        assert event.name == name, f"{self.label}: expected {name!r}, got {event}"
        return event

    async def take(self, count: int, timeout: float = WAIT) -> list[LiveEvent]:
        """The next `count` events, whatever they are."""
        return [await self.next(timeout) for _ in range(count)]

    async def until(self, name: str, timeout: float = WAIT, limit: int = 1000
                    ) -> tuple[LiveEvent, list[LiveEvent]]:
        """Skip to the next event named `name`: it, and the events skipped on the way."""
        skipped: list[LiveEvent] = []
        for _ in range(limit):
            event = await self.next(timeout)
            if event.name == name:
                return event, skipped
            skipped.append(event)
        raise AssertionError(f"{self.label}: no {name!r} within {limit} events")

    async def notifications(self, count: int, timeout: float = WAIT) -> list[LiveEvent]:
        """The next `count` notifications, skipping the other events between them."""
        return [(await self.until("notification", timeout))[0] for _ in range(count)]

    async def ended(self, timeout: float = CLOSE_WAIT, limit: int = 100_000
                    ) -> tuple[StreamEnded, list[LiveEvent]]:
        """Read until the stream ends: how it ended, and the events before that."""
        before: list[LiveEvent] = []
        for _ in range(limit):
            try:
                before.append(await self.next(timeout))
            except StreamEnded as end:
                return end, before
        raise AssertionError(f"{self.label}: still open after {limit} events")


@dataclass
class WsStream(LiveStream):
    ws: ClientConnection | None = None

    @property
    def socket(self) -> ClientConnection:
        assert self.ws is not None
        return self.ws

    async def _receive(self) -> LiveEvent:
        try:
            raw = await self.socket.recv()
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise StreamEnded(rcvd.code if rcvd else ABNORMAL,
                              rcvd.reason if rcvd else "") from None
        assert isinstance(raw, str), f"{self.label}: the server sent a binary frame {raw!r}"
        message = orjson.loads(raw)
        assert isinstance(message, dict) and set(message) == {"event", "data"}, raw
        assert isinstance(message["event"], str) and isinstance(message["data"], dict), raw
        return LiveEvent(message["event"], message["data"])

    async def send(self, **op: Any) -> None:
        await self.socket.send(orjson.dumps(op).decode())

    async def send_raw(self, frame: str | bytes) -> None:
        await self.socket.send(frame)

    async def barrier(self, timeout: float = WAIT) -> list[LiveEvent]:
        """Ping and wait for the pong: every event the server queued before is returned.

        The server answers a ping in the order frames arrive, behind anything already queued
        for this connection, so what precedes the pong is exactly what was pending."""
        await self.send(op="ping")
        _, before = await self.until("pong", timeout)
        return before


@dataclass
class SseStream(LiveStream):
    response: httpx.Response | None = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    last_event_id: str | None = None
    keep_comments: bool = False
    _queue: asyncio.Queue[LiveEvent | StreamEnded] = field(default_factory=asyncio.Queue)
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _receive(self) -> LiveEvent:
        item = await self._queue.get()
        if isinstance(item, StreamEnded):
            self._queue.put_nowait(item)  # ended stays ended
            raise item
        return item

    async def _read(self) -> None:
        """Parse `text/event-stream` as a browser's EventSource does (the WHATWG rules)."""
        assert self.response is not None
        name, event_id = "", None
        data: list[str] = []
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if data:
                        payload = orjson.loads("\n".join(data))
                        self._queue.put_nowait(LiveEvent(name or "message", payload, event_id))
                    name, data, event_id = "", [], None
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    if self.keep_comments:
                        self._queue.put_nowait(LiveEvent(":", line[1:].strip()))
                    continue
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
                elif key == "id":
                    event_id = self.last_event_id = value
                elif key == "retry" and value.isdigit():
                    self.retry = int(value)
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            self._queue.put_nowait(StreamEnded(None, repr(exc)))
            return
        self._queue.put_nowait(StreamEnded(None, "end of body"))


def _url(base: str, path: str, query: dict[str, str | int]) -> str:
    return f"{base}{path}" + (f"?{urlencode(query)}" if query else "")


@asynccontextmanager
async def open_ws(base_url: str, token: str | None = None, *, since: int | None = None,
                  query: dict[str, str | int] | None = None,
                  headers: dict[str, str] | None = None, label: str = "ws",
                  **connect_options: Any) -> AsyncIterator[WsStream]:
    """A WebSocket on /v1/ws, authenticated with `token` as a Bearer header."""
    params = dict(query or {})
    if since is not None:
        params["since"] = since
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    url = _url(base_url.replace("http://", "ws://", 1), "/v1/ws", params)
    # No client-side flow control: with it, a client that leaves frames unread stops reading
    # the socket, misses the server's close reply and waits out close_timeout on every close.
    options: dict[str, Any] = {"open_timeout": WAIT, "close_timeout": 2, "ping_interval": None,
                               "max_queue": None}
    options.update(connect_options)
    async with connect(url, additional_headers=all_headers, **options) as ws:
        yield WsStream(label=label, ws=ws)


async def ws_refused(base_url: str, token: str | None = None, **kwargs: Any) -> int:
    """Open a WebSocket that the server must refuse at the handshake: the HTTP status."""
    try:
        async with open_ws(base_url, token, **kwargs) as stream:
            event = await stream.next()
    except InvalidStatus as exc:
        return exc.response.status_code
    raise AssertionError(f"the WebSocket was accepted, and sent {event}")


@asynccontextmanager
async def open_sse(base_url: str, token: str | None = None, *,
                   last_event_id: int | str | None = None, since: int | None = None,
                   query: dict[str, str | int] | None = None,
                   headers: dict[str, str] | None = None, keep_comments: bool = False,
                   label: str = "sse") -> AsyncIterator[SseStream]:
    """An SSE stream on /v1/stream, which must be accepted (200, text/event-stream)."""
    params = dict(query or {})
    if since is not None:
        params["since"] = since
    all_headers = {"Accept": "text/event-stream", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        all_headers["Last-Event-ID"] = str(last_event_id)
    timeout = httpx.Timeout(WAIT, read=None)  # reads are bounded by the stream's own waits
    async with httpx.AsyncClient(timeout=timeout) as client, client.stream(
        "GET", _url(base_url, "/v1/stream", params), headers=all_headers
    ) as response:
        if response.status_code != 200:
            body = await response.aread()
            raise AssertionError(f"{label}: the stream was refused with "
                                 f"{response.status_code}: {body!r}")
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = SseStream(label=label, response=response, keep_comments=keep_comments)
        stream.start()
        try:
            yield stream
        finally:
            await stream.stop()


async def sse_refused(base_url: str, token: str | None = None, *,
                      headers: dict[str, str] | None = None,
                      query: dict[str, str | int] | None = None) -> tuple[int, Any]:
    """GET /v1/stream, which the server must refuse: the status and the JSON body."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.get(_url(base_url, "/v1/stream", dict(query or {})),
                                    headers=all_headers)
    assert response.status_code != 200, f"the stream was accepted: {response.text[:200]!r}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.status_code, response.json()


@dataclass
class LiveServer:
    """A running `tocsin serve` with a publisher client, and ways to open streams on it."""

    process: ServerProcess
    api: Api

    @property
    def url(self) -> str:
        return self.process.url

    async def publish(self, user: str, **fields: Any) -> dict[str, Any]:
        """Publish to one user; its receipt (`id`, `seq`, ...)."""
        receipt: dict[str, Any] = (await self.api.publish(user, **fields))["notifications"][0]
        return receipt

    def ws(self, user: str, **kwargs: Any) -> contextlib.AbstractAsyncContextManager[WsStream]:
        kwargs.setdefault("label", f"ws[{user}]")
        return open_ws(self.url, token_for(user), **kwargs)

    def sse(self, user: str, **kwargs: Any
            ) -> contextlib.AbstractAsyncContextManager[SseStream]:
        kwargs.setdefault("label", f"sse[{user}]")
        return open_sse(self.url, token_for(user), **kwargs)

    async def alive(self) -> bool:
        if self.process.process.poll() is not None:
            return False
        return (await self.api.client.get("/healthz")).status_code == 200


@asynccontextmanager
async def live_server(database_url: str, cwd: Path, **env: str) -> AsyncIterator[LiveServer]:
    """`tocsin serve` on `database_url` with extra `TOCSIN_*` settings."""
    with tocsin_server(tocsin_env(database_url, **env), cwd) as process:
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
            yield LiveServer(process, Api(client))
