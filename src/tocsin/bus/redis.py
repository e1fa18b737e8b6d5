"""The Bus on Redis pub/sub: one channel per user, subscribed only where the user is connected.

Publishing goes through one sender task: events queue in order, and whatever has queued while
the previous pipeline was in flight goes out in the next one (one round trip for many
publishes). A publisher waits for its events to be written for at most `publish_timeout`: a
hung Redis never holds back a 202. Events the sender could not write (an error, a timeout, a
full queue) are not retried late; their users are remembered, and once Redis answers again
each of them gets a `gap` marker on its channel, so every node serving that user catches up
from the store.

Receiving uses one dedicated pub/sub connection per node, read by one task. That connection
never reconnects silently (redis-py's retries are off for it): any error, or silence past the
health check, tears it down, and the reader reconnects with full-jitter backoff, resubscribes
every channel, waits for Redis to confirm them, and then reports a gap so every connection
catches up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from tocsin.bus.base import GapHandler, Handler, Listener
from tocsin.domain.errors import SettingsError
from tocsin.domain.events import Event

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
#: A control message on a user's channel: events of this user were lost on the way. (No stream
#: event has a colon in its name.)
GAP = "tocsin:gap"
#: The channel of signals (`Bus.signal`): every node subscribes to it, whoever is connected.
SIGNALS = "tocsin:signals"
_CONFIRM_TIMEOUT = 5.0
_PING_TIMEOUT = 2.0  # readiness must answer quickly, even when Redis hangs
#: Events queued for the sender at most; beyond, they are dropped and their users caught up.
MAX_QUEUED = 100_000
_HEALTH_INTERVAL = 5.0  # an idle subscription is pinged this often…
_DEAD_AFTER = 15.0  # …and given up when nothing at all was heard for this long
_BACKOFF_BASE, _BACKOFF_CAP = 0.1, 5.0
_RESAY_SECONDS = 60.0


def channel(user_id: str) -> str:
    return PREFIX + user_id


class RedisBus:
    def __init__(self, url: str, *, publish_timeout: float = 1.0,
                 max_queued: int = MAX_QUEUED) -> None:
        self._url = url
        # The sender is the only user of this client, and it never retries by itself: a failed
        # write is a loss to report, not something to repeat seconds late.
        self._publisher: Redis = Redis.from_url(url, socket_connect_timeout=2,
                                                socket_timeout=5, retry=Retry(NoBackoff(), 0),
                                                client_name="tocsin-publisher")
        self._subscriber: Redis = Redis.from_url(url, socket_connect_timeout=2,
                                                 retry=Retry(NoBackoff(), 0),
                                                 client_name="tocsin-subscriber")
        self._publish_timeout = publish_timeout
        self._max_queued = max_queued
        self._queue: list[tuple[str, bytes]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._queued = asyncio.Event()
        self._lost: set[str] = set()  # users with events that could not be written
        self._sender: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._on_gap: GapHandler = lambda user: None
        self._channels: set[str] = set()
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._listeners: defaultdict[str, list[Listener]] = defaultdict(list)
        self.reconnects = 0

    def set_handler(self, handler: Handler, on_gap: GapHandler) -> None:
        self._handler = handler
        self._on_gap = on_gap

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        self._sender = asyncio.create_task(self._send_forever(), name="tocsin-redis-sender")
        self._reader = asyncio.create_task(self._run(), name="tocsin-redis-bus")
        # Start serving even if Redis is down: the store is the truth, streams resume later.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), _CONFIRM_TIMEOUT)

    async def close(self) -> None:
        self._closing = True
        for task in (self._reader, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._release(self._waiters)
        await self._drop_pubsub()
        await self._publisher.aclose()
        await self._subscriber.aclose()

    async def ping(self) -> None:
        """Raise unless Redis answers (for readiness), within two seconds."""
        await asyncio.wait_for(self._publisher.ping(), _PING_TIMEOUT)

    # -- publishing ----------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """Events were lost and their users have not been told yet: Redis is not answering."""
        return bool(self._lost)

    async def publish(self, events: Sequence[tuple[str, Event]]) -> None:
        if not events:
            return
        if self._sender is None or self._closing:
            return
        if self._lost or len(self._queue) + len(events) > self._max_queued:
            # Redis is not answering (or far behind): queueing more would only deliver it late.
            # These users are caught up from the store once it answers again.
            self._lost.update(user_id for user_id, _ in events)
            self._queued.set()
            return
        done = asyncio.get_running_loop().create_future()
        self._queue.extend((user_id, event.encode()) for user_id, event in events)
        self._waiters.append(done)
        self._queued.set()
        # Bounded: the commit is the acknowledgement; live delivery is an optimisation.
        await asyncio.wait((done,), timeout=self._publish_timeout)

    async def _send_forever(self) -> None:
        attempt = 0
        while True:
            await self._queued.wait()
            self._queued.clear()
            if self._lost:
                if not await self._report_lost():
                    attempt += 1
                    self._queued.set()  # try again after the backoff
                    await asyncio.sleep(_backoff(attempt))
                    continue
                attempt = 0
            batch, self._queue = self._queue, []
            waiters, self._waiters = self._waiters, []
            try:
                await self._write((channel(user_id), payload) for user_id, payload in batch)
            except (RedisError, OSError) as exc:
                # Committed notifications stay committed; these users catch up from the store.
                log.warning("bus publish failed (%d events): %s; their users will be told to "
                            "catch up once Redis answers", len(batch), exc or type(exc).__name__)
                self._lost.update(user_id for user_id, _ in batch)
                self._queued.set()
            finally:
                self._release(waiters)

    async def _report_lost(self) -> bool:
        """Send a gap marker to each user whose events were lost; True once all are sent."""
        # What queued meanwhile would arrive late: fold it into the gap markers instead.
        self._lost.update(user_id for user_id, _ in self._queue)
        self._queue = []
        self._release(self._waiters)
        self._waiters = []
        users = sorted(self._lost)
        marker = Event(GAP, b"{}").encode()
        try:
            await self._write((channel(user_id), marker) for user_id in users)
        except (RedisError, OSError) as exc:
            log.debug("bus still unavailable: %s", exc)
            return False
        self._lost.difference_update(users)
        log.warning("bus publishing restored; %d users told to catch up from the store",
                    len(users))
        return True

    async def _write(self, messages: Iterable[tuple[str, bytes]]) -> None:
        async with self._publisher.pipeline(transaction=False) as pipe:
            for name, payload in messages:
                pipe.publish(name, payload)
            if len(pipe):
                await pipe.execute()

    @staticmethod
    def _release(waiters: list[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- signals -------------------------------------------------------------------------------

    def listen(self, topic: str, listener: Listener) -> None:
        self._listeners[topic].append(listener)

    async def signal(self, topic: str, subject: str = "") -> None:
        try:
            await asyncio.wait_for(self._publisher.publish(SIGNALS, f"{topic} {subject}"),
                                   self._publish_timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            # Every node also looks again on its own schedule (the catalog's refresh).
            log.warning("bus signal %r not sent: %s", topic, exc or type(exc).__name__)

    def _signalled(self, message: str | None) -> None:
        """Call the listeners of the message's topic with its subject, or every listener with
        None (signals may have been missed)."""
        if message is None:
            topics, subject = list(self._listeners), None
        else:
            topic, _, subject = message.partition(" ")
            topics = [topic]
        for name in topics:
            for listener in tuple(self._listeners.get(name, ())):
                try:
                    listener(subject)
                except Exception:
                    log.exception("listener of signal %r failed", name)

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
        loop = asyncio.get_running_loop()
        said = -_RESAY_SECONDS  # when the outage was last logged
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
                # Once when it happens, then once a minute while it lasts: not every attempt.
                if attempt == 0 or loop.time() - said >= _RESAY_SECONDS:
                    state = "lost" if attempt == 0 else f"still down after {attempt} attempts"
                    log.warning("bus connection %s: %s", state, exc or type(exc).__name__)
                    said = loop.time()
            self._connected.clear()
            await self._drop_pubsub()
            attempt += 1
            self.reconnects += 1
            await asyncio.sleep(_backoff(attempt))

    async def _connect(self) -> None:
        pubsub = self._subscriber.pubsub()
        self._pubsub = pubsub
        wanted = [SIGNALS, *sorted(self._channels)]
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
        # Anything published while we were away is in the store: let every stream catch up,
        # and every listener look again (a signal may have been missed).
        self._on_gap(None)
        self._signalled(None)

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
            if name == SIGNALS:
                self._signalled(_text(message["data"]))
            elif self._handler is not None and name in self._channels:
                event = Event.decode(message["data"])
                if event.name == GAP:
                    self._on_gap(name[len(PREFIX):])
                else:
                    self._handler(name[len(PREFIX):], event)
        elif kind == "subscribe":
            for future in self._confirm.pop(_text(message["channel"]), []):
                if not future.done():
                    future.set_result(None)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _backoff(attempt: int) -> float:
    """Full jitter: a random wait up to an exponentially growing cap."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
