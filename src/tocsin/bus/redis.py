"""The Bus on Redis pub/sub: one channel per user, subscribed only where the user is connected.

Publishing goes through a pooled client, batched in one pipeline. Receiving uses one dedicated
pub/sub connection per node, read by one task. That connection never reconnects silently
(redis-py's retries are off for it): any error, or silence past the health check, tears it down,
and the reader reconnects with full-jitter backoff, resubscribes every channel, waits for Redis
to confirm them, and then reports a gap so every connection catches up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from tocsin.bus.base import Handler
from tocsin.domain.errors import SettingsError
from tocsin.realtime.events import Event

try:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise SettingsError(
        "TOCSIN_BUS_URL is Redis but redis-py is not installed: pip install 'tocsin[redis]'"
    ) from exc

log = logging.getLogger("tocsin.bus")

PREFIX = "tocsin:user:"
_CONFIRM_TIMEOUT = 5.0
_HEALTH_INTERVAL = 5.0  # an idle subscription is pinged this often…
_DEAD_AFTER = 15.0  # …and given up when nothing at all was heard for this long
_BACKOFF_BASE, _BACKOFF_CAP = 0.1, 5.0


def channel(user_id: str) -> str:
    return PREFIX + user_id


class RedisBus:
    def __init__(self, url: str) -> None:
        self._url = url
        self._publisher: Redis = Redis.from_url(url, socket_connect_timeout=2,
                                                socket_timeout=5)
        self._subscriber: Redis = Redis.from_url(url, socket_connect_timeout=2,
                                                 retry=Retry(NoBackoff(), 0))
        self._handler: Handler | None = None
        self._on_gap: Callable[[], None] = lambda: None
        self._channels: set[str] = set()
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self.reconnects = 0

    def set_handler(self, handler: Handler, on_gap: Callable[[], None]) -> None:
        self._handler = handler
        self._on_gap = on_gap

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._run(), name="tocsin-redis-bus")
        # Start serving even if Redis is down: the store is the truth, streams resume later.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), _CONFIRM_TIMEOUT)

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._drop_pubsub()
        await self._publisher.aclose()
        await self._subscriber.aclose()

    async def ping(self) -> None:
        """Raise unless Redis answers (for readiness)."""
        await self._publisher.ping()

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, events: Sequence[tuple[str, Event]]) -> None:
        try:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for user_id, event in events:
                    pipe.publish(channel(user_id), event.encode())
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Committed notifications stay committed; subscribers catch up from the store.
            log.warning("bus publish failed (%d events): %s", len(events), exc)

    # -- subscribing ---------------------------------------------------------------------------

    async def subscribe(self, user_id: str) -> None:
        name = channel(user_id)
        self._channels.add(name)
        pubsub = self._pubsub
        if pubsub is None or not self.connected:
            return  # the reader subscribes it when it reconnects, then reports the gap
        confirmed = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(name, []).append(confirmed)
        try:
            await pubsub.subscribe(name)
            await asyncio.wait_for(asyncio.shield(confirmed), _CONFIRM_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("subscribe %s failed: %s", name, exc)

    async def unsubscribe(self, user_id: str) -> None:
        name = channel(user_id)
        self._channels.discard(name)
        pubsub = self._pubsub
        if pubsub is not None and self.connected:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(name)

    # -- the reader ----------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._connect()
                attempt = 0
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means: reconnect and resume
                if self._closing:
                    return
                log.warning("bus connection lost: %s", exc or type(exc).__name__)
            self._connected.clear()
            await self._drop_pubsub()
            attempt += 1
            self.reconnects += 1
            await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))

    async def _connect(self) -> None:
        pubsub = self._subscriber.pubsub()
        self._pubsub = pubsub
        wanted = sorted(self._channels)
        if not wanted:
            await pubsub.subscribe(PREFIX + "-")  # a connection needs one subscription to read
            wanted = [PREFIX + "-"]
        else:
            await pubsub.subscribe(*wanted)
        pending = set(wanted)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CONFIRM_TIMEOUT
        while pending:
            message = await pubsub.get_message(timeout=max(0.0, deadline - loop.time()))
            if message is None:
                if loop.time() >= deadline:
                    raise TimeoutError("Redis did not confirm the subscriptions")
                continue
            if message["type"] == "subscribe":
                pending.discard(_text(message["channel"]))
            else:
                self._dispatch(message)
        self._connected.set()
        log.info("bus connected; %d channels subscribed", len(self._channels))
        # Anything published while we were away is in the store: let every stream catch up.
        self._on_gap()

    async def _read(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=_HEALTH_INTERVAL)
            now = loop.time()
            if message is None:
                if now - heard > _DEAD_AFTER:
                    raise TimeoutError(f"no word from Redis for {_DEAD_AFTER:.0f}s")
                await pubsub.ping()
                continue
            heard = now
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            name = _text(message["channel"])
            if self._handler is not None and name in self._channels:
                self._handler(name[len(PREFIX):], Event.decode(message["data"]))
        elif kind == "subscribe":
            for future in self._confirm.pop(_text(message["channel"]), []):
                if not future.done():
                    future.set_result(None)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
