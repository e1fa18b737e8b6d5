"""The live-delivery load generator: N users hold one WebSocket each, a paced publisher sends one
notification per POST to a random connected user, and every receipt is checked against what was
sent.

Two protocols share everything but the framing: Tocsin's `GET /v1/ws` (`{"event", "data"}`
frames, a user token in the Authorization header) and, for the seed-node anchor, Socket.IO 4
over its WebSocket transport (Engine.IO 4 packets: `0` open, `40` connect with `{"userId"}`,
`42["event", data]`, `2`/`3` ping/pong), spoken here directly on aiohttp so that both servers are
driven by the same client code at the same cost.

Each POST carries in `data` the send time (`time.monotonic()`: same process, same clock), a key
`k` (the publish's index) and the target user's index `u`, so a receipt gives its latency and is
checked for loss, duplicates and misrouting. Sends are paced: the k-th is due at t0 + k / rate
and goes out on the first free connection of a closed set; a send more than 10 ms behind its due
time is late, and a run that cannot keep the pace attempts fewer than rate * seconds.

Batched publishes (`publish_batched`, Tocsin only) send one POST with `user_ids` of B distinct
connected users per B notifications, paced so that `rate` stays notifications/s (POST k is due at
t0 + k * B / rate). The batch's one `data` carries the send time and the POST's index; a
`BatchTally` finds each receipt's notification by its user's place in the batch (see there).

Every loop is bounded: the connect phase by a timeout, the publisher by the window and by
rate * seconds sends, each request by a timeout, the wait for stragglers by the grace period,
each reader by its connection (closed at the end, with a timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import math
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from procstat import (
    command_cpu_seconds,
    machine_busy_seconds,
    memory_kb,
    postgres_cpu_seconds,
    process_cpu_seconds,
    self_cpu_seconds,
)

CONNECT_TIMEOUT = 30.0  # one user's handshake and first unread-count
REQUEST_TIMEOUT = 30.0
LATE_SEND_MS = 10.0
CLOSE_TIMEOUT = 10.0
GRACE_POLL = 0.02


# -- protocols --------------------------------------------------------------------------------

class Flavor(Protocol):
    """How to talk to one kind of server."""

    name: str
    publish_path: str
    ok_status: int

    def publish_headers(self) -> dict[str, str]: ...

    def publish_body(self, user_id: str, sent: float, key: int, user_index: int) -> bytes: ...

    async def connect(self, session: aiohttp.ClientSession, base_url: str, user_id: str
                      ) -> aiohttp.ClientWebSocketResponse: ...

    def frame(self, text: str) -> tuple[str | None, Any, str | None]:
        """(event name, event data, reply to send); (None, None, None) for anything else."""
        ...


def _payload(sent: float, key: int, user_index: int) -> dict[str, Any]:
    return {"t": sent, "k": key, "u": user_index}


class TocsinFlavor:
    name = "tocsin"
    publish_path = "/v1/notifications"
    ok_status = 202

    def __init__(self, api_key: str, tokens: dict[str, str]) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}",
                         "Content-Type": "application/json"}
        self._tokens = tokens

    def publish_headers(self) -> dict[str, str]:
        return self._headers

    def publish_body(self, user_id: str, sent: float, key: int, user_index: int) -> bytes:
        return orjson.dumps({
            "user_id": user_id, "type": "bench.live", "title": "Live benchmark",
            "message": "Sent by bench/live.py", "data": _payload(sent, key, user_index),
        })

    def publish_batch_body(self, user_ids: list[str], sent: float, key: int) -> bytes:
        """One notification to each of `user_ids` (docs/api.md: one transaction); the `data`
        is the same for all of them, so it names the POST, not a user."""
        return orjson.dumps({
            "user_ids": user_ids, "type": "bench.live", "title": "Live benchmark",
            "message": "Sent by bench/live.py", "data": {"t": sent, "k": key},
        })

    async def connect(self, session: aiohttp.ClientSession, base_url: str, user_id: str,
                      since: int | None = None) -> aiohttp.ClientWebSocketResponse:
        """`since`: resume after that seq (the stream replays what came after it first)."""
        query = f"?since={since}" if since is not None else ""
        return await session.ws_connect(
            f"{base_url}/v1/ws{query}",
            headers={"Authorization": f"Bearer {self._tokens[user_id]}"},
            autoping=True, heartbeat=None)

    def frame(self, text: str) -> tuple[str | None, Any, str | None]:
        message = orjson.loads(text)
        if not isinstance(message, dict):
            return None, None, None
        return message.get("event"), message.get("data"), None


class SocketIOFlavor:
    """The seed-node anchor: POST /notify (201), Socket.IO 4 with `auth: {userId}`."""

    name = "seed-node"
    publish_path = "/notify"
    ok_status = 201

    def __init__(self) -> None:
        self._headers = {"Content-Type": "application/json"}

    def publish_headers(self) -> dict[str, str]:
        return self._headers

    def publish_body(self, user_id: str, sent: float, key: int, user_index: int) -> bytes:
        return orjson.dumps({
            "userId": user_id, "type": "bench.live", "title": "Live benchmark",
            "message": "Sent by bench/live.py", "data": _payload(sent, key, user_index),
        })

    async def connect(self, session: aiohttp.ClientSession, base_url: str, user_id: str
                      ) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(f"{base_url}/socket.io/?EIO=4&transport=websocket",
                                      autoping=True, heartbeat=None)
        try:
            opened = await ws.receive_str()
            if not opened.startswith("0"):
                raise ConnectionError(f"expected an Engine.IO open packet, got {opened[:60]!r}")
            await ws.send_str("40" + orjson.dumps({"userId": user_id}).decode())
            for _ in range(10):  # a ping may come first
                packet = await ws.receive_str()
                if packet == "2":
                    await ws.send_str("3")
                    continue
                if packet.startswith("40"):
                    return ws
                raise ConnectionError(f"Socket.IO connect refused: {packet[:80]!r}")
            raise ConnectionError("no Socket.IO connect acknowledgement")
        except BaseException:
            await ws.close()
            raise

    def frame(self, text: str) -> tuple[str | None, Any, str | None]:
        if text == "2":
            return None, None, "3"  # Engine.IO ping from the server
        if text.startswith("42"):
            body = orjson.loads(text[2:])
            if isinstance(body, list) and body and isinstance(body[0], str):
                return body[0], body[1] if len(body) > 1 else None, None
        return None, None, None


# -- users and their receipts -----------------------------------------------------------------

@dataclass(slots=True)
class Client:
    index: int
    user_id: str
    node: int
    ws: aiohttp.ClientWebSocketResponse | None = None
    reader: asyncio.Task[None] | None = None


@dataclass(slots=True)
class Tally:
    """Receipts by publish key. `received[k]` counts the deliveries of publish k (capped)."""

    capacity: int
    received: bytearray = field(init=False)
    acked: bytearray = field(init=False)
    target: array[int] = field(init=False)
    latencies_ms: list[float] = field(default_factory=list)
    delivered: int = 0  # distinct publishes received by their user
    matched: int = 0  # ... of which acknowledged (202 / 201)
    duplicates: int = 0
    misrouted: int = 0
    foreign: int = 0  # notifications this run did not send
    unread_events: int = 0  # unread-count events after the initial one
    other_events: Counter[str] = field(default_factory=Counter)
    first_receipt: float = 0.0
    last_receipt: float = 0.0
    disconnects: int = 0
    stopping: bool = False

    def __post_init__(self) -> None:
        self.received = bytearray(self.capacity)
        self.acked = bytearray(self.capacity)
        self.target = array("i", [-1]) * self.capacity

    def notification(self, client: Client, data: Any, now: float) -> None:
        try:
            inner = data["data"]
            key, sent, user = int(inner["k"]), float(inner["t"]), int(inner["u"])
        except (KeyError, TypeError, ValueError):
            self.foreign += 1
            return
        if not 0 <= key < self.capacity or self.target[key] != user:
            self.foreign += 1
            return
        if user != client.index:
            self.misrouted += 1
            return
        seen = self.received[key]
        if seen < 255:
            self.received[key] = seen + 1
        if seen:
            self.duplicates += 1
            return
        self.delivered += 1
        if self.acked[key]:
            self.matched += 1
        self.latencies_ms.append((now - sent) * 1000)
        if not self.first_receipt:
            self.first_receipt = now
        self.last_receipt = now

    def ack(self, key: int) -> None:
        self.acked[key] = 1
        if self.received[key]:
            self.matched += 1

    def lost(self) -> int:
        """Acknowledged, never received."""
        return sum(1 for a, r in zip(self.acked, self.received, strict=True) if a and not r)

    def delivered_not_acked(self) -> int:
        return sum(1 for a, r in zip(self.acked, self.received, strict=True) if r and not a)


@dataclass(slots=True)
class BatchTally(Tally):
    """Receipts of batched publishes, by notification: publish k's notification to the j-th user
    of its batch is slot k * batch_size + j (`capacity` is publishes * batch_size).

    Publish k names the users at places starts[k], starts[k] + 1, … (around the end) of
    `order`, a shuffle of the connected users drawn once per run (arrange()), so that a receipt
    finds its slot by arithmetic instead of a table per publish. Every user of a batch receives
    the same `data` (the POST's send time and index, no user), so a frame is *misrouted* when its
    user is not in that publish's batch, a *duplicate* when its slot was already received, and
    *foreign* when it names no publish this run sent. (Two members of one batch receiving each
    other's notifications would look like their own: the frames hold no user id.)

    Tally.notification() stays as it is for single publishes; this class overrides it, so the
    single path pays nothing for batches."""

    batch_size: int = 1
    order: array[int] = field(default_factory=lambda: array("i"))  # client indexes, shuffled
    place: array[int] = field(default_factory=lambda: array("i"))  # client index -> its place
    starts: array[int] = field(init=False)  # per publish: its first place; -1 until sent

    def __post_init__(self) -> None:
        Tally.__post_init__(self)  # zero-argument super() does not work in a slots dataclass
        self.starts = array("i", [-1]) * self.batches

    @property
    def batches(self) -> int:
        return self.capacity // self.batch_size

    def arrange(self, clients: Sequence[Client], rng: random.Random) -> list[Client]:
        """Shuffle the connected users into `order`; the clients in that order."""
        shuffled = list(clients)
        rng.shuffle(shuffled)
        self.order = array("i", (c.index for c in shuffled))
        self.place = array("i", [-1]) * (max(self.order, default=-1) + 1)
        for at, index in enumerate(self.order):
            self.place[index] = at
        return shuffled

    def notification(self, client: Client, data: Any, now: float) -> None:
        try:
            inner = data["data"]
            key, sent = int(inner["k"]), float(inner["t"])
        except (KeyError, TypeError, ValueError):
            self.foreign += 1
            return
        if not 0 <= key < len(self.starts) or (start := self.starts[key]) < 0:
            self.foreign += 1
            return
        at = self.place[client.index] if client.index < len(self.place) else -1
        offset = (at - start) % len(self.order)
        if at < 0 or offset >= self.batch_size:
            self.misrouted += 1
            return
        slot = key * self.batch_size + offset
        # from here on as Tally.notification(), by slot (written out there for its cost)
        seen = self.received[slot]
        if seen < 255:
            self.received[slot] = seen + 1
        if seen:
            self.duplicates += 1
            return
        self.delivered += 1
        if self.acked[slot]:
            self.matched += 1
        self.latencies_ms.append((now - sent) * 1000)
        if not self.first_receipt:
            self.first_receipt = now
        self.last_receipt = now

    def ack_batch(self, key: int) -> None:
        """Publish k answered 202: each of its notifications is committed."""
        low = key * self.batch_size
        high = low + self.batch_size
        self.acked[low:high] = b"\x01" * self.batch_size
        self.matched += self.batch_size - self.received[low:high].count(0)


async def _read(client: Client, flavor: Flavor, tally: Tally) -> None:
    ws = client.ws
    assert ws is not None
    async for message in ws:  # ends when the connection closes
        if message.type != aiohttp.WSMsgType.TEXT:
            tally.other_events[f"frame:{message.type.name}"] += 1
            continue
        now = time.monotonic()
        name, data, reply = flavor.frame(message.data)
        if reply is not None:
            await ws.send_str(reply)
        elif name == "notification":
            tally.notification(client, data, now)
        elif name == "unread-count":
            tally.unread_events += 1
        elif name is not None:
            tally.other_events[name] += 1
    if not tally.stopping:
        tally.disconnects += 1


async def _open(client: Client, flavor: Flavor, session: aiohttp.ClientSession, base_url: str,
                tally: Tally) -> None:
    """Handshake, then wait for the stream's first `unread-count`, then start reading."""
    ws = await flavor.connect(session, base_url, client.user_id)
    try:
        for _ in range(100):
            text = await ws.receive_str()
            name, _, reply = flavor.frame(text)
            if reply is not None:
                await ws.send_str(reply)
            elif name == "unread-count":
                break
            elif name is not None:
                tally.other_events[f"before-count:{name}"] += 1
        else:
            raise ConnectionError("no initial unread-count")
    except BaseException:
        await ws.close()
        raise
    client.ws = ws
    client.reader = asyncio.create_task(_read(client, flavor, tally))


@dataclass(slots=True)
class Connected:
    clients: list[Client]  # those whose stream opened
    seconds: float
    errors: Counter[str]


async def connect_all(flavor: Flavor, session: aiohttp.ClientSession, base_urls: Sequence[str],
                      user_ids: Sequence[str], tally: Tally, *, parallel: int = 64
                      ) -> Connected:
    """Connect user i to node i % len(base_urls), `parallel` handshakes at a time."""
    clients = [Client(index=i, user_id=uid, node=i % len(base_urls))
               for i, uid in enumerate(user_ids)]
    errors: Counter[str] = Counter()
    gate = asyncio.Semaphore(parallel)

    async def one(client: Client) -> None:
        async with gate:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await _open(client, flavor, session, base_urls[client.node], tally)
            except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError,
                    orjson.JSONDecodeError, TypeError) as exc:
                errors[type(exc).__name__] += 1

    start = time.monotonic()
    await asyncio.gather(*(one(c) for c in clients))
    return Connected(clients=[c for c in clients if c.ws is not None],
                     seconds=time.monotonic() - start, errors=errors)


async def close_all(clients: Sequence[Client], tally: Tally) -> None:
    tally.stopping = True

    async def one(client: Client) -> None:
        if client.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(), CLOSE_TIMEOUT)
        if client.reader is not None:
            client.reader.cancel()
            with contextlib.suppress(BaseException):
                await client.reader

    gate = asyncio.Semaphore(256)

    async def gated(client: Client) -> None:
        async with gate:
            await one(client)

    await asyncio.gather(*(gated(c) for c in clients))


# -- CPU --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cpu:
    wall: float
    servers: tuple[float, ...]
    loadgen: float
    postgres: float
    redis: float
    busy: float
    total: float

    @classmethod
    def take(cls, server_pids: Sequence[int], postgres_database: str | None) -> Cpu:
        busy, total = machine_busy_seconds()
        return cls(
            wall=time.monotonic(),
            servers=tuple(process_cpu_seconds(pid) for pid in server_pids),
            loadgen=self_cpu_seconds(),
            postgres=postgres_cpu_seconds(postgres_database) if postgres_database else 0.0,
            redis=command_cpu_seconds("redis-server"),
            busy=busy, total=total,
        )


@dataclass(frozen=True, slots=True)
class CpuShare:
    """% of one core over the window (200 % = both cores); `machine`: % of all cores."""

    window: float
    servers: tuple[float, ...]
    loadgen: float
    postgres: float | None
    redis: float
    machine: float
    other: float

    @property
    def server(self) -> float:
        return sum(self.servers)

    @classmethod
    def between(cls, a: Cpu, b: Cpu, *, with_postgres: bool) -> CpuShare:
        import os

        wall = max(b.wall - a.wall, 1e-9)

        def pct(x: float, y: float) -> float:
            return 100 * (y - x) / wall

        servers = tuple(pct(x, y) for x, y in zip(a.servers, b.servers, strict=True))
        loadgen, postgres, redis = (pct(a.loadgen, b.loadgen), pct(a.postgres, b.postgres),
                                    pct(a.redis, b.redis))
        machine = 100 * (b.busy - a.busy) / max(b.total - a.total, 1e-9)
        cores = os.cpu_count() or 1
        return cls(window=wall, servers=servers, loadgen=loadgen,
                   postgres=postgres if with_postgres else None, redis=redis, machine=machine,
                   other=max(0.0, machine * cores - sum(servers) - loadgen - postgres - redis))


# -- the paced publisher ----------------------------------------------------------------------

@dataclass(slots=True)
class Published:
    """What the publisher did. `rate`, `attempted` and `acked` count notifications, whatever
    the batch size; `statuses`, `late_sends` and `rtt_ms` are per POST."""

    rate: float
    seconds: float
    concurrency: int
    attempted: int = 0
    acked: int = 0
    cross_node: int = 0  # acknowledged publishes sent to another node than the user's stream
    statuses: Counter[str] = field(default_factory=Counter)  # HTTP status or exception name
    late_sends: int = 0
    max_lag_ms: float = 0.0
    rtt_ms: list[float] = field(default_factory=list)
    t0: float = 0.0
    last_send: float = 0.0
    last_ack: float = 0.0
    batch_size: int = 1  # notifications per POST: users in its user_ids (1: user_id)

    @property
    def posts_attempted(self) -> int:
        return self.attempted // self.batch_size

    @property
    def posts_acked(self) -> int:
        return self.acked // self.batch_size


async def publish(flavor: Flavor, base_urls: Sequence[str], clients: Sequence[Client],
                  tally: Tally, *, rate: float, seconds: float, concurrency: int,
                  rng: random.Random, on_start: Callable[[], None] | None = None) -> Published:
    """One POST per notification, to a random connected user, paced to `rate` for `seconds`;
    publish k goes to node k % len(base_urls)."""
    capacity = min(tally.capacity, math.floor(rate * seconds))
    targets = [rng.randrange(len(clients)) for _ in range(capacity)]
    out = Published(rate=rate, seconds=seconds, concurrency=concurrency)
    counter = itertools.count()
    headers = flavor.publish_headers()
    urls = [base + flavor.publish_path for base in base_urls]
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    t0 = time.monotonic() + 0.05  # the first send's due time
    t_end = t0 + seconds
    out.t0 = t0

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            key = next(counter)
            if key >= capacity:
                return
            due = t0 + key / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if now >= t_end:
                return
            lag_ms = (now - due) * 1000
            out.max_lag_ms = max(out.max_lag_ms, lag_ms)
            if lag_ms > LATE_SEND_MS:
                out.late_sends += 1
            client = clients[targets[key]]
            tally.target[key] = client.index
            body = flavor.publish_body(client.user_id, now, key, client.index)
            out.attempted += 1
            out.last_send = now
            node = key % len(urls)
            try:
                async with session.post(urls[node], data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                out.statuses[type(exc).__name__] += 1
                continue
            done = time.monotonic()
            out.rtt_ms.append((done - now) * 1000)
            out.statuses[str(status)] += 1
            if status == flavor.ok_status:
                out.acked += 1
                out.last_ack = done
                tally.ack(key)
                if node != client.node:
                    out.cross_node += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if on_start is not None:
            loop = asyncio.get_running_loop()
            loop.call_at(loop.time() + (t0 - time.monotonic()), on_start)
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return out


async def publish_batched(flavor: TocsinFlavor, base_url: str, clients: Sequence[Client],
                          tally: BatchTally, *, rate: float, seconds: float, concurrency: int,
                          rng: random.Random, on_start: Callable[[], None] | None = None
                          ) -> Published:
    """One POST per `tally.batch_size` notifications, `user_ids` of that many distinct connected
    users (BatchTally's places starts[k]…), paced so that `rate` is notifications/s: POST k is
    due at t0 + k * batch_size / rate, on the first free of `concurrency` connections.

    The same loop as publish(), written out again rather than shared, so that the single
    publishes' loop stays exactly what it was."""
    size = tally.batch_size
    if size > len(clients):
        raise ValueError(f"{size} users per POST, {len(clients)} connected")
    shuffled = tally.arrange(clients, rng)
    users = len(shuffled)
    # the user ids in `order`, twice over, so that a batch running past the end is one slice
    ring = [c.user_id for c in shuffled] * 2
    capacity = min(tally.batches, math.floor(rate * seconds / size))
    starts = [rng.randrange(users) for _ in range(capacity)]
    interval = size / rate
    out = Published(rate=rate, seconds=seconds, concurrency=concurrency, batch_size=size)
    counter = itertools.count()
    headers = flavor.publish_headers()
    url = base_url + flavor.publish_path
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    t0 = time.monotonic() + 0.05  # the first send's due time
    t_end = t0 + seconds
    out.t0 = t0

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            key = next(counter)
            if key >= capacity:
                return
            due = t0 + key * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if now >= t_end:
                return
            lag_ms = (now - due) * 1000
            out.max_lag_ms = max(out.max_lag_ms, lag_ms)
            if lag_ms > LATE_SEND_MS:
                out.late_sends += 1
            start = starts[key]
            tally.starts[key] = start
            body = flavor.publish_batch_body(ring[start:start + size], now, key)
            out.attempted += size
            out.last_send = now
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                out.statuses[type(exc).__name__] += 1
                continue
            done = time.monotonic()
            out.rtt_ms.append((done - now) * 1000)
            out.statuses[str(status)] += 1
            if status == flavor.ok_status:
                out.acked += size
                out.last_ack = done
                tally.ack_batch(key)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if on_start is not None:
            loop = asyncio.get_running_loop()
            loop.call_at(loop.time() + (t0 - time.monotonic()), on_start)
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return out


async def wait_for_stragglers(tally: Tally, published: Published, grace: float) -> float:
    """Until every acknowledged publish was received, at most `grace` seconds; the time used."""
    start = time.monotonic()
    for _ in range(math.ceil(grace / GRACE_POLL)):
        if tally.matched >= published.acked:
            break
        await asyncio.sleep(GRACE_POLL)
    return time.monotonic() - start


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0-100) of sorted `values`; NaN when empty."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), math.ceil(q / 100 * len(values))))
    return values[rank - 1]


def freeze_heap() -> None:
    """Move what exists now (clients, sockets, buffers) out of the collector's way, so that the
    load generator's own garbage collections stay short during the run."""
    gc.collect()
    gc.freeze()


__all__ = [
    "BatchTally", "Client", "Connected", "Cpu", "CpuShare", "Flavor", "Published",
    "SocketIOFlavor", "Tally", "TocsinFlavor", "close_all", "connect_all", "freeze_heap",
    "memory_kb", "percentile", "publish", "publish_batched", "wait_for_stragglers",
]
