"""Reconnect storm of a real `tocsin serve`: every client resumes by seq at the same instant.

What is measured is the goal "reconnect storm: 5,000 clients resume by seq at once: all
recovered within 10 s, none missing". One run:

1. A fresh database (PostgreSQL by default, `--backend sqlite`) and a server on a free loopback
   port, with a random publisher key and JWT secret, as bench/live.py starts it.
2. --clients users (5,000) connect over `GET /v1/ws`, --per-user streams each (1), 64
   handshakes at a time; each stream reads its opening `unread-count`.
3. One notification per user, POSTed with `user_ids` in batches of --batch (100); every stream
   must receive it, and the newest seq each stream has received is its cursor.
4. The storm's cause, --cause:
   - restart (default): the server is SIGKILLed (its streams drop as in a crash) and started
     again on the same port and database, with the same key and secret;
   - close: every client closes its stream; the server stays up.
5. While every client is away, --missed (3) notifications per user, batched the same way.
6. The storm: all streams reconnect at the same instant, no pacing, each with
   `?since=<its cursor>`. An attempt that fails (an HTTP answer instead of 101, such as 403
   for a stream over the limits, 429 or 503; a refused or reset connection; no opening frame
   within --connect-timeout; the stream closed, 1013 or 1012 say, before or after its replay)
   is counted by its reason and retried with the stream's newest seq after a short jittered
   backoff (0.1 s doubling up to 2 s, times 0.5 to 1), at most --max-attempts times, and
   never past --timeout. --connect-timeout (30 s) is longer than the goal on purpose: a client
   that gives up on a handshake the server has queued leaves it that work all the same and
   adds another: with 10 s, a 5,000-stream storm on a busy 2-core machine had not recovered a
   single stream after 60 s.
   With --racing, a publisher keeps sending from the storm's start until every stream has
   recovered (--racing-rate notifications/s, batched); those must arrive exactly once too.

A stream has recovered when it has every seq published to its user while it was away; its
recovery time runs from the storm's start (the instant every reconnect is launched) to that
receipt, so it includes this load generator's own work on the shared cores. Reported: streams
recovered, recovery p50/p90/p99/max, the time until all had recovered, seqs missing,
duplicated (a seq received twice by one stream), misrouted (a notification of another user),
handshakes refused or failed by reason, streams dropped after opening, how many retries the
streams needed, when each stream's first frame arrived, the server's CPU (and its CPU per
stream: what one reconnect with its replay costs) and RSS over the storm (from its start until
all recovered), and those of PostgreSQL, this load generator and the rest of the machine. After
the storm the stored rows are counted against the acknowledged publishes. --logs DIR keeps the
server logs (the killed server's too); their warnings are printed at the end.

Verdict: OK when every stream recovered within --goal (10 s) with exactly the seqs it missed
(none missing, none twice, none of another user; with --racing the racing ones as well);
otherwise a loud list of problems on stderr and exit status 1.

Settings of the benchmark server (its environment; bench/server.py drops every other TOCSIN_*
variable, so a publisher rate set in the caller's environment does not apply):
- TOCSIN_MAX_STREAMS: max(10,000, 2 x streams + 100). The default (10,000 per process) holds
  5,000, but with --cause close the server may still hold a closed stream when its client is
  back, and --per-user multiplies the streams.
- TOCSIN_MAX_STREAMS_PER_USER: max(32, 2 x --per-user + 2), for the same reason.
- TOCSIN_PUBLISHER_RATE is left unset (unlimited) and TOCSIN_MAX_BATCH_USERS at its 1,000
  (above --batch, which must not exceed it); nothing limits handshakes per host.
- Left at their defaults, as a deployment has them: TOCSIN_DB_POOL_SIZE (20; every opening
  stream reads its count and its replay through it), TOCSIN_DB_CONNECT_TIMEOUT (5 s),
  TOCSIN_MAX_REPLAY (1,000, above --missed) and TOCSIN_HTTP_HEAD_TIMEOUT_SECONDS (10 s, counted
  from the accepted connection, whose head is already there).
Not a setting: the listen backlog is uvicorn's (2,048, within net.core.somaxconn), so 5,000
SYNs at once may overflow it; the kernel then drops them ("listen queue drops", the machine's
TcpExt ListenDrops over the storm), and those clients wait for their SYN's retransmission
(1 s, then 2 s more, ...), which shows in the recovery times.

The open-files limit of this process (inherited by the server) is raised to fit the streams.
Every wait is bounded: each handshake by --connect-timeout, each request by a timeout, the
storm by --timeout, the racing deliveries by --grace, every close by a timeout. All traffic
goes to 127.0.0.1.

    .venv/bin/python bench/storm.py                        # 5,000 streams, PostgreSQL, restart
    .venv/bin/python bench/storm.py --quick                # 500 streams
    .venv/bin/python bench/storm.py --cause close --backend sqlite
    .venv/bin/python bench/storm.py --racing --json /tmp/storm.jsonl
    .venv/bin/python bench/storm.py --clients 1000 --per-user 3 --missed 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from live import (
    _log_problems,
    _loopback_url,
    _positive_float,
    _positive_int,
    _tocsin_flavor,
    fresh_database,
    raise_fd_limit,
    wait_quiet,
)
from livegen import Cpu, CpuShare, TocsinFlavor, percentile
from procstat import memory_kb
from publish import machine_info
from report import machine_line, report_problems
from server import (
    DEFAULT_PG_ADMIN_DSN,
    Database,
    Server,
    postgres_version,
    running_server,
)

CAUSES = ("restart", "close")
OPEN_PARALLEL = 64  # handshakes at a time before the storm (the storm itself is not paced)
REQUEST_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0
AWAY_TIMEOUT = 15.0  # for every stream to have noticed its end, after a kill or a close
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
POLL = 0.02
RSS_SAMPLE = 0.05
SETTLE = 1.0  # after recovery: a duplicate that arrives late is still seen
MAX_BATCH_USERS = 1000  # the server's default TOCSIN_MAX_BATCH_USERS
MAX_REPLAY = 1000  # the server's default TOCSIN_MAX_REPLAY
PUBLISH_TYPE = "bench.storm"


# -- who received what ------------------------------------------------------------------------

@dataclass(slots=True)
class Book:
    """Every acknowledged notification: its id's user (index) and seq; per user, the seqs of
    each phase."""

    users: int
    owner: dict[str, tuple[int, int]] = field(default_factory=dict)
    first: list[int] = field(init=False)  # per user: the first notification's seq (0: none)
    missed: list[set[int]] = field(init=False)  # per user: published while away
    racing: list[set[int]] = field(init=False)  # per user: published during the storm

    def __post_init__(self) -> None:
        self.first = [0] * self.users
        self.missed = [set() for _ in range(self.users)]
        self.racing = [set() for _ in range(self.users)]


@dataclass(slots=True, eq=False)
class Stream:
    """One client connection of one user, across its reconnects."""

    index: int
    user: int
    user_id: str
    ws: aiohttp.ClientWebSocketResponse | None = None
    task: asyncio.Task[None] | None = None
    last: int = 0  # the newest seq received: the cursor it resumes from
    seen: set[int] = field(default_factory=set)
    got: list[tuple[int, str]] = field(default_factory=list)  # (seq, id), as received
    duplicates: int = 0
    out_of_order: int = 0  # a new seq that is not last + 1
    resyncs: int = 0
    pending: set[int] | None = None  # during the storm: missed seqs not received yet
    recovered_at: float | None = None  # seconds after the storm's start
    opened_at: float | None = None  # first opening frame of the storm, seconds after its start
    attempts: int = 0
    gave_up: str = ""


@dataclass(slots=True)
class Publishes:
    """One phase's POSTs and what they acknowledged."""

    requests: int = 0
    acked: int = 0  # notifications created
    statuses: Counter[str] = field(default_factory=Counter)
    bad_receipts: int = 0  # a receipt that is not `created` with a seq

    def errors(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.statuses.items()) if k != "202"}


class Refusal(Exception):
    """A reconnect attempt that did not open a stream, and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Ctx:
    args: argparse.Namespace
    flavor: TocsinFlavor
    session: aiohttp.ClientSession
    publisher: aiohttp.ClientSession
    server: Server
    book: Book
    user_ids: list[str]
    index_of: dict[str, int]
    rng: random.Random
    away: bool = False  # the cause has begun: streams ending now are expected to
    stopping: bool = False
    t0: float = 0.0  # the storm's start (time.monotonic())
    deadline: float = 0.0
    go: asyncio.Event = field(default_factory=asyncio.Event)
    refusals: Counter[str] = field(default_factory=Counter)  # failed attempts, by reason
    drops: Counter[str] = field(default_factory=Counter)  # streams closed after opening
    early_drops: Counter[str] = field(default_factory=Counter)  # closed before the cause
    first_frames: Counter[str] = field(default_factory=Counter)  # not `unread-count`
    other_events: Counter[str] = field(default_factory=Counter)

    @property
    def base_url(self) -> str:
        return self.server.base_url


def notification(stream: Stream, ctx: Ctx, data: Any, now: float) -> None:
    try:
        seq, nid = int(data["seq"]), str(data["id"])
    except (KeyError, TypeError, ValueError):
        ctx.other_events["notification without seq or id"] += 1
        return
    stream.got.append((seq, nid))
    if seq in stream.seen:
        stream.duplicates += 1
        return
    if seq != stream.last + 1:
        stream.out_of_order += 1
    stream.seen.add(seq)
    stream.last = max(stream.last, seq)
    pending = stream.pending
    # Only a notification booked for this very user and seq counts towards recovery: one of
    # another user's with the same seq must not make a stream look recovered.
    if pending and seq in pending and ctx.book.owner.get(nid) == (stream.user, seq):
        pending.discard(seq)
        if not pending and stream.recovered_at is None:
            stream.recovered_at = now - ctx.t0


def handle(stream: Stream, ctx: Ctx, text: str, now: float) -> str | None:
    """One text frame; returns its event's name."""
    try:
        name, data, _ = ctx.flavor.frame(text)
    except orjson.JSONDecodeError:
        ctx.other_events["not JSON"] += 1
        return None
    if name == "notification":
        notification(stream, ctx, data, now)
    elif name == "resync":
        stream.resyncs += 1
    elif name is not None and name != "unread-count":
        ctx.other_events[name] += 1
    return name


# -- one stream -------------------------------------------------------------------------------

def _why(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return type(exc.os_error).__name__
    return type(exc).__name__


async def open_stream(stream: Stream, ctx: Ctx, since: int | None) -> None:
    """Handshake, then the stream's first frame (which must be `unread-count`); raises
    Refusal if either fails or takes over --connect-timeout."""
    stage = "handshake"
    ws: aiohttp.ClientWebSocketResponse | None = None
    try:
        async with asyncio.timeout(ctx.args.connect_timeout):
            ws = await ctx.flavor.connect(ctx.session, ctx.base_url, stream.user_id, since=since)
            stage = "first frame"
            message = await ws.receive()
            now = time.monotonic()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise Refusal(f"closed {ws.close_code} before its first frame"
                              if ws.closed else f"{message.type.name} before its first frame")
            name = handle(stream, ctx, message.data, now)
            if name != "unread-count":
                ctx.first_frames[str(name)] += 1
    except Refusal:
        if ws is not None:
            await _close(ws)
        raise
    except TimeoutError:
        if ws is not None:
            await _close(ws)
        raise Refusal(f"timeout ({stage})") from None
    except (aiohttp.ClientError, OSError) as exc:
        if ws is not None:
            await _close(ws)
        raise Refusal(_why(exc)) from None
    stream.ws = ws


async def read_stream(stream: Stream, ctx: Ctx) -> str:
    """Until the stream closes; returns how it ended."""
    ws = stream.ws
    assert ws is not None
    try:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                handle(stream, ctx, message.data, time.monotonic())
            elif message.type == aiohttp.WSMsgType.ERROR:
                return f"error {type(ws.exception()).__name__}"
            else:
                ctx.other_events[f"frame {message.type.name}"] += 1
        return f"closed {ws.close_code}"
    finally:
        stream.ws = None
        await _close(ws)  # after an error frame the socket may still be open


async def _close(ws: aiohttp.ClientWebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)


def backoff(attempt: int, rng: random.Random) -> float:
    """0.1 s doubling per attempt, at most 2 s, times 0.5 to 1: clients refused together do
    not come back together."""
    step: float = BACKOFF_BASE * 2.0 ** (attempt - 1)
    return min(BACKOFF_CAP, step) * rng.uniform(0.5, 1.0)


async def before_storm(stream: Stream, ctx: Ctx) -> None:
    """A stream of the first phase: read until the cause ends it."""
    reason = await read_stream(stream, ctx)
    if not ctx.away:
        ctx.early_drops[reason] += 1


async def storm_stream(stream: Stream, ctx: Ctx) -> None:
    """Reconnect at the storm's start from the stream's cursor; again after every failure."""
    await ctx.go.wait()
    while not ctx.stopping:
        stream.attempts += 1
        try:
            await open_stream(stream, ctx, since=stream.last)
        except Refusal as refusal:
            ctx.refusals[refusal.reason] += 1
        else:
            if stream.opened_at is None:
                stream.opened_at = time.monotonic() - ctx.t0
            if not stream.pending and stream.recovered_at is None:  # --missed 0
                stream.recovered_at = time.monotonic() - ctx.t0
            reason = await read_stream(stream, ctx)
            if ctx.stopping:
                return
            ctx.drops[reason] += 1
        if stream.attempts >= ctx.args.max_attempts:
            stream.gave_up = f"{stream.attempts} attempts"
            return
        delay = backoff(stream.attempts, ctx.rng)
        if time.monotonic() + delay > ctx.deadline:
            stream.gave_up = "timeout"
            return
        await asyncio.sleep(delay)


async def connect_all(streams: Sequence[Stream], ctx: Ctx) -> tuple[float, Counter[str]]:
    """Before the storm: every stream, OPEN_PARALLEL handshakes at a time, not retried."""
    errors: Counter[str] = Counter()
    gate = asyncio.Semaphore(OPEN_PARALLEL)

    async def one(stream: Stream) -> None:
        async with gate:
            try:
                await open_stream(stream, ctx, since=None)
            except Refusal as refusal:
                errors[refusal.reason] += 1
                return
        stream.task = asyncio.create_task(before_storm(stream, ctx))

    start = time.monotonic()
    await asyncio.gather(*(one(s) for s in streams))
    return time.monotonic() - start, errors


async def close_all(streams: Sequence[Stream]) -> None:
    """Close every open stream, then end every stream's task (each bounded)."""
    gate = asyncio.Semaphore(256)

    async def one(stream: Stream) -> None:
        async with gate:
            if stream.ws is not None:
                await _close(stream.ws)
    await asyncio.gather(*(one(s) for s in streams))
    await end_tasks(streams)


async def end_tasks(streams: Sequence[Stream], within: float = CLOSE_TIMEOUT) -> int:
    """Wait up to `within` seconds for the streams' tasks, then cancel what is left; returns
    how many had to be cancelled."""
    tasks = [s.task for s in streams if s.task is not None]
    if not tasks:
        return 0
    _, left = await asyncio.wait(tasks, timeout=within)
    for task in left:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for stream in streams:
        stream.task = None
    return len(left)


# -- publishing -------------------------------------------------------------------------------

def _body(user_ids: Sequence[str], phase: str, number: int) -> bytes:
    return orjson.dumps({
        "user_ids": list(user_ids), "type": PUBLISH_TYPE, "title": "Reconnect storm",
        "message": f"{phase} {number}", "data": {"phase": phase, "n": number},
    })


async def post_batch(ctx: Ctx, users: Sequence[int], phase: str, number: int,
                     out: Publishes, book_into: Callable[[int, int], None]) -> None:
    """One POST with `user_ids`; every created notification is booked (`book_into(user, seq)`).
    A failed POST is counted, not retried: whether it committed is unknown."""
    headers = ctx.flavor.publish_headers()
    body = _body([ctx.user_ids[u] for u in users], phase, number)
    out.requests += 1
    try:
        async with ctx.publisher.post(f"{ctx.base_url}/v1/notifications", data=body,
                                      headers=headers) as response:
            status = response.status
            answer = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        out.statuses[type(exc).__name__] += 1
        return
    out.statuses[str(status)] += 1
    if status != 202:
        return
    for receipt in orjson.loads(answer).get("notifications", []):
        user = ctx.index_of.get(receipt.get("user_id"), -1)
        seq = receipt.get("seq")
        if user < 0 or receipt.get("status") != "created" or not isinstance(seq, int):
            out.bad_receipts += 1
            continue
        ctx.book.owner[str(receipt["id"])] = (user, seq)
        book_into(user, seq)
        out.acked += 1


async def publish_each(ctx: Ctx, phase: str, rounds: int, book_into: Callable[[int, int], None]
                       ) -> Publishes:
    """`rounds` notifications to every user, a round after the other, each in batches of
    --batch users over --concurrency connections: a user's seqs follow the rounds."""
    out = Publishes()
    users = list(range(len(ctx.user_ids)))
    batches = [users[i:i + ctx.args.batch] for i in range(0, len(users), ctx.args.batch)]
    gate = asyncio.Semaphore(ctx.args.concurrency)

    async def one(batch: Sequence[int], number: int) -> None:
        async with gate:
            await post_batch(ctx, batch, phase, number, out, book_into)

    for number in range(1, rounds + 1):
        await asyncio.gather(*(one(b, number) for b in batches))
    return out


async def race(ctx: Ctx, stop: asyncio.Event) -> Publishes:
    """From the storm's start until `stop` (or the deadline): --racing-rate notifications/s,
    batches of --batch users taken round-robin; batch k is due at t0 + k * batch / rate."""
    out = Publishes()
    users = len(ctx.user_ids)
    size = min(ctx.args.batch, users)
    interval = size / ctx.args.racing_rate
    counter = itertools.count()

    def into(user: int, seq: int) -> None:
        ctx.book.racing[user].add(seq)

    async def worker() -> None:
        while not stop.is_set():
            k = next(counter)
            due = ctx.t0 + k * interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due - time.monotonic())):
                    await stop.wait()
            if stop.is_set() or time.monotonic() >= ctx.deadline:
                return
            batch = [(k * size + i) % users for i in range(size)]
            await post_batch(ctx, batch, "racing", k, out, into)

    await asyncio.gather(*(worker() for _ in range(ctx.args.concurrency)))
    return out


# -- one run ----------------------------------------------------------------------------------

@dataclass(slots=True)
class Run:
    backend: str
    cause: str
    users: int
    per_user: int
    missed: int
    racing_rate: float | None
    streams: list[Stream]
    connected: int = 0
    connect_s: float = 0.0
    connect_errors: Counter[str] = field(default_factory=Counter)
    first_s: float = float("nan")  # first publish to every stream having it
    not_first: int = 0  # streams that never received the first notification
    away_s: float = float("nan")  # the cause: kill and start again, or close
    restart_s: float = float("nan")  # SIGKILL to the new server's /healthz
    publishes: dict[str, Publishes] = field(default_factory=dict)
    storm_s: float = float("nan")  # the storm's start to all recovered (or the wait's end)
    listen_drops: int = 0  # SYNs the kernel dropped at the server's full backlog (machine-wide)
    cpu: CpuShare | None = None
    rss_before_kb: int = 0
    rss_peak_kb: int = 0
    rss_after_kb: int = 0
    stored: int | None = None
    refusals: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)
    early_drops: Counter[str] = field(default_factory=Counter)
    first_frames: Counter[str] = field(default_factory=Counter)
    other_events: Counter[str] = field(default_factory=Counter)
    gave_up: Counter[str] = field(default_factory=Counter)
    cancelled: int = 0
    missing: int = 0
    racing_missing: int = 0
    duplicates: int = 0
    misrouted: int = 0
    foreign: int = 0  # an id no publish of this run acknowledged
    wrong_seq: int = 0  # an id of this user's, with another seq than its receipt's
    out_of_order: int = 0
    resyncs: int = 0
    server_log: str = ""

    @property
    def in_storm(self) -> list[Stream]:
        return [s for s in self.streams if s.pending is not None]

    @property
    def recovery(self) -> list[float]:
        return sorted(s.recovered_at for s in self.in_storm if s.recovered_at is not None)

    @property
    def opened(self) -> list[float]:
        return sorted(s.opened_at for s in self.in_storm if s.opened_at is not None)

    @property
    def all_recovered_s(self) -> float | None:
        storm, times = self.in_storm, self.recovery
        return times[-1] if storm and len(times) == len(self.streams) else None

    @property
    def retries(self) -> list[int]:
        return [max(0, s.attempts - 1) for s in self.in_storm]

    @property
    def cpu_ms_per_stream(self) -> float | None:
        """Server CPU over the storm window per stream that took part: what one reconnect
        with its replay costs the server."""
        storm = self.in_storm
        if self.cpu is None or not storm:
            return None
        return self.cpu.server / 100 * self.cpu.window * 1000 / len(storm)

    @property
    def acked(self) -> int:
        return sum(p.acked for p in self.publishes.values())

    def verdict(self, goal: float) -> tuple[bool, str]:
        total, done = len(self.streams), len(self.recovery)
        last = self.all_recovered_s
        exact = not (self.missing or self.racing_missing or self.duplicates or self.misrouted
                     or self.foreign or self.wrong_seq)
        ok = last is not None and last <= goal and exact and not self.problems(goal)
        when = f"the last after {last:.2f} s" if last is not None else "not all"
        line = (f"{done:,} of {total:,} streams recovered, {when} (goal: all within {goal:g} s), "
                f"missing {self.missing + self.racing_missing}, duplicated {self.duplicates}, "
                f"misrouted {self.misrouted + self.foreign + self.wrong_seq}")
        return ok, line

    def problems(self, goal: float) -> list[str]:
        found: list[str] = []
        total = len(self.streams)
        if self.connect_errors:
            found.append(f"{total - self.connected} streams did not open before the storm: "
                         f"{dict(self.connect_errors)}")
        if self.early_drops:
            found.append(f"streams closed before the storm's cause: {dict(self.early_drops)}")
        if self.not_first:
            found.append(f"{self.not_first} streams never received the first notification")
        for phase, p in self.publishes.items():
            if p.errors():
                found.append(f"{phase} publishes: HTTP errors {p.errors()}")
            if p.bad_receipts:
                found.append(f"{phase} publishes: {p.bad_receipts} receipts not `created`")
        recovered = len(self.recovery)
        if recovered < total:
            why = dict(self.gave_up) or {"still trying at --timeout": total - recovered}
            found.append(f"{total - recovered} of {total} streams did not recover: {why}")
        last = self.all_recovered_s
        if last is not None and last > goal:
            found.append(f"all recovered only after {last:.2f} s (goal {goal:g} s)")
        for count, what in ((self.missing, "missed seqs never received"),
                            (self.racing_missing, "seqs published during the storm never "
                                                  "received"),
                            (self.duplicates, "seqs received twice by one stream"),
                            (self.misrouted, "notifications of another user received"),
                            (self.foreign, "notifications no publish of this run acknowledged"),
                            (self.wrong_seq, "notifications received with another seq than "
                                             "their receipt's"),
                            (self.out_of_order, "new seqs received out of order"),
                            (self.resyncs, "resync events (the cursor was refused)")):
            if count:
                found.append(f"{count} {what}")
        if self.first_frames:
            found.append(f"first frames other than unread-count: {dict(self.first_frames)}")
        if self.cancelled:
            found.append(f"{self.cancelled} client tasks did not end within "
                         f"{CLOSE_TIMEOUT:g} s of their close")
        if self.stored is not None and self.stored != self.acked:
            found.append(f"{self.stored} rows stored for {self.acked} acknowledged")
        return found


def storm_env(streams: int, per_user: int) -> dict[str, int]:
    """The limits raised for the benchmark server (the module's docstring says why)."""
    return {"TOCSIN_MAX_STREAMS": max(10_000, 2 * streams + 100),
            "TOCSIN_MAX_STREAMS_PER_USER": max(32, 2 * per_user + 2)}


async def wait_until(done: Callable[[], bool], within: float) -> float:
    """Poll `done` until true or `within` seconds have passed; the seconds it took."""
    start = time.monotonic()
    # Polled rather than signalled: `done` looks at thousands of streams, and what it reads
    # (each stream's own recovery time) is taken where it happens, so the poll only ends the
    # wait up to POLL later.
    while not done() and time.monotonic() - start < within:  # noqa: ASYNC110
        await asyncio.sleep(POLL)
    return time.monotonic() - start


def listen_drops() -> int:
    """The kernel's count of connections dropped at a full listen queue (TcpExt ListenDrops,
    which includes ListenOverflows), for the whole machine: a storm that overflows the
    server's backlog shows here, and its clients wait for their SYN's retransmission."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            found = dict(zip(names.split(), values.split(), strict=False))
            return int(found.get("ListenDrops", 0))
    return 0


async def sample_rss(pid: int, stop: asyncio.Event) -> int:
    """The server's largest RSS (KB) seen every RSS_SAMPLE seconds until `stop`."""
    peak = 0
    while not stop.is_set():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            peak = max(peak, memory_kb(pid)[0])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RSS_SAMPLE):
                await stop.wait()
    return peak


async def measure(args: argparse.Namespace, workdir: Path) -> Run:
    users, per_user = args.clients, args.per_user
    run_id = secrets.token_hex(3)
    user_ids = [f"storm-{run_id}-{i:06d}" for i in range(users)]
    streams = [Stream(index=i, user=i // per_user, user_id=user_ids[i // per_user])
               for i in range(users * per_user)]
    run = Run(backend=args.backend, cause=args.cause, users=users, per_user=per_user,
              missed=args.missed, racing_rate=args.racing_rate if args.racing else None,
              streams=streams)
    env = storm_env(len(streams), per_user)
    async with AsyncExitStack() as stack:
        database: Database = await stack.enter_async_context(fresh_database(args, workdir))
        server = await stack.enter_async_context(
            running_server(database, workdir, extra_env=env))
        servers = [server]
        ws_session = await stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)))
        publisher = await stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)))
        ctx = Ctx(args=args, flavor=_tocsin_flavor(server, user_ids), session=ws_session,
                  publisher=publisher, server=server, book=Book(users), user_ids=user_ids,
                  index_of={uid: i for i, uid in enumerate(user_ids)},
                  rng=random.Random(args.seed))
        try:
            await _phases(run, ctx, stack, database, servers, workdir, env)
        finally:
            ctx.stopping = True
            await close_all(streams)
        run.server_log = _log_problems(servers)
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            for s in servers:
                if s.log_path.exists():
                    shutil.copy(s.log_path, args.logs / s.log_path.name)
        run.stored = await database.count_notifications()
    return run


async def _phases(run: Run, ctx: Ctx, stack: AsyncExitStack, database: Database,
                  servers: list[Server], workdir: Path, env: dict[str, int]) -> None:
    args, book, streams = ctx.args, ctx.book, run.streams
    label = f"[storm {args.cause} {args.backend}]"

    # 1. Every stream opens, paced; then one notification each, and its seq is the cursor.
    run.connect_s, run.connect_errors = await connect_all(streams, ctx)
    run.connected = sum(1 for s in streams if s.task is not None)
    print(f"{label} {run.connected:,}/{len(streams):,} streams open in {run.connect_s:.1f} s"
          + (f", errors {dict(run.connect_errors)}" if run.connect_errors else ""),
          file=sys.stderr)

    def first_into(user: int, seq: int) -> None:
        book.first[user] = seq

    start = time.monotonic()
    run.publishes["first"] = await publish_each(ctx, "first", 1, first_into)
    connected = [s for s in streams if s.task is not None]

    def all_have_first() -> bool:
        return all(book.first[s.user] in s.seen for s in connected)

    await wait_until(all_have_first, args.timeout)
    run.first_s = time.monotonic() - start
    run.not_first = sum(1 for s in connected if book.first[s.user] not in s.seen)
    print(f"{label} first notification at every stream in {run.first_s:.2f} s"
          + (f" ({run.not_first} without it)" if run.not_first else ""), file=sys.stderr)

    # 2. The cause: every client away.
    ctx.away = True
    start = time.monotonic()
    if args.cause == "restart":
        old = ctx.server
        await old.kill()
        killed_log = old.log_path.with_name(old.log_path.stem + "-killed.log")
        old.log_path.rename(killed_log)  # the new server writes its own log where this was
        old.log_path = killed_log
        ended = await end_tasks(streams, AWAY_TIMEOUT)  # every stream sees its end
        if ended:
            print(f"{label} {ended} streams did not notice the kill within "
                  f"{AWAY_TIMEOUT:g} s", file=sys.stderr)
        port = int(old.base_url.rsplit(":", 1)[1])
        ctx.server = await stack.enter_async_context(running_server(
            database, workdir, extra_env=env, api_key=old.api_key, jwt_secret=old.jwt_secret,
            port=port))
        servers.append(ctx.server)
        run.restart_s = time.monotonic() - start
        print(f"{label} server SIGKILLed and up again on port {port} in {run.restart_s:.1f} s",
              file=sys.stderr)
    else:
        await close_all(streams)
    run.away_s = time.monotonic() - start

    # 3. While they are away: --missed notifications per user.
    def missed_into(user: int, seq: int) -> None:
        book.missed[user].add(seq)

    if args.missed:
        run.publishes["missed"] = await publish_each(ctx, "missed", args.missed, missed_into)
    storm = list(connected)  # a stream that never opened has no cursor to resume from
    for s in storm:
        s.pending = set(book.missed[s.user])
        s.opened_at = s.recovered_at = None
        s.attempts = 0
    print(f"{label} {run.publishes.get('missed', Publishes()).acked:,} notifications "
          f"published while away; storm of {len(storm):,} reconnects", file=sys.stderr)

    # 4. The storm: every reconnect launched at once.
    pid = ctx.server.pid
    run.rss_before_kb = memory_kb(pid)[0]
    ctx.stopping = False
    for s in storm:
        s.task = asyncio.create_task(storm_stream(s, ctx))
    await asyncio.sleep(0)  # every task is now waiting on `go`
    rss_stop, race_stop = asyncio.Event(), asyncio.Event()
    cpu_before = Cpu.take([pid], database.postgres_name)
    drops_before = listen_drops()
    ctx.t0 = time.monotonic()
    ctx.deadline = ctx.t0 + args.timeout
    ctx.go.set()
    rss_task = asyncio.create_task(sample_rss(pid, rss_stop))
    racing = asyncio.create_task(race(ctx, race_stop)) if args.racing else None

    def settled() -> bool:
        return all(s.recovered_at is not None or s.task is None or s.task.done()
                   for s in storm)

    await wait_until(settled, args.timeout)
    cpu_after = Cpu.take([pid], database.postgres_name)
    run.storm_s = time.monotonic() - ctx.t0
    run.listen_drops = listen_drops() - drops_before
    rss_stop.set()
    run.rss_peak_kb = await rss_task
    run.cpu = CpuShare.between(cpu_before, cpu_after,
                               with_postgres=database.postgres_name is not None)
    print(f"{label} {len(run.recovery):,}/{len(storm):,} recovered; storm window "
          f"{run.storm_s:.2f} s", file=sys.stderr)
    if racing is not None:
        race_stop.set()
        run.publishes["racing"] = await racing

        def racing_arrived() -> bool:
            return all(book.racing[s.user] <= s.seen for s in storm)

        waited = await wait_until(racing_arrived, args.grace)
        print(f"{label} racing: {run.publishes['racing'].acked:,} notifications, waited "
              f"{waited:.2f} s for their deliveries", file=sys.stderr)
    await asyncio.sleep(SETTLE)
    run.rss_after_kb = memory_kb(pid)[0]
    ctx.stopping = True
    await close_all_storm(run, storm)
    _account(run, ctx, storm)


async def close_all_storm(run: Run, storm: Sequence[Stream]) -> None:
    gate = asyncio.Semaphore(256)

    async def one(stream: Stream) -> None:
        async with gate:
            if stream.ws is not None:
                await _close(stream.ws)
    await asyncio.gather(*(one(s) for s in storm))
    run.cancelled = await end_tasks(storm)


def _account(run: Run, ctx: Ctx, storm: Sequence[Stream]) -> None:
    book = ctx.book
    for name in ("refusals", "drops", "early_drops", "first_frames", "other_events"):
        setattr(run, name, Counter(getattr(ctx, name)))
    run.gave_up = Counter(s.gave_up for s in storm if s.gave_up and s.recovered_at is None)
    for s in storm:
        run.missing += len(book.missed[s.user] - s.seen)
        run.racing_missing += len(book.racing[s.user] - s.seen)
        run.duplicates += s.duplicates
        run.out_of_order += s.out_of_order
        run.resyncs += s.resyncs
        for seq, nid in s.got:
            owner = book.owner.get(nid)
            if owner is None:
                run.foreign += 1
            elif owner[0] != s.user:
                run.misrouted += 1
            elif owner[1] != seq:
                run.wrong_seq += 1


# -- output -----------------------------------------------------------------------------------

def _s(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.0f} %"


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f}" if kb else "-"


def _counts(counter: Counter[str]) -> str:
    total = sum(counter.values())
    if not total:
        return "0"
    return f"{total:,} (" + ", ".join(f"{k}: {v:,}" for k, v in counter.most_common()) + ")"


def _markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def recovery_table(run: Run) -> str:
    times = run.recovery
    retries = run.retries
    head = ["server", "db", "cause", "streams", "missed each", "recovered", "p50 s", "p90 s",
            "p99 s", "max s", "all recovered s", "missing", "dup", "misrouted",
            "refused handshakes", "dropped after open", "retried streams", "max retries"]
    row = ["tocsin", run.backend, run.cause, f"{len(run.streams):,}"
           + (f" ({run.users:,} users x {run.per_user})" if run.per_user > 1 else ""),
           str(run.missed), f"{len(times):,}", _s(percentile(times, 50)),
           _s(percentile(times, 90)), _s(percentile(times, 99)), _s(times[-1] if times else None),
           _s(run.all_recovered_s) if run.all_recovered_s is not None else "not all",
           str(run.missing + run.racing_missing), str(run.duplicates),
           str(run.misrouted + run.foreign + run.wrong_seq), _counts(run.refusals),
           _counts(run.drops), f"{sum(1 for r in retries if r):,}",
           str(max(retries, default=0))]
    return _markdown(head, [row])


def phases_table(run: Run) -> str:
    opened = run.opened
    head = ["streams open before s", "first notification at all s", "away s"
            + (" (SIGKILL to healthy)" if run.cause == "restart" else " (close)"),
            "published while away", "first frame p50 s", "first frame p99 s",
            "storm window s", "listen queue drops"]
    missed = run.publishes.get("missed", Publishes())
    row = [f"{run.connect_s:.1f}", _s(run.first_s), _s(run.away_s), f"{missed.acked:,}",
           _s(percentile(opened, 50)), _s(percentile(opened, 99)), _s(run.storm_s),
           f"{run.listen_drops:,}"]
    return _markdown(head, [row])


def resource_table(run: Run) -> str:
    c = run.cpu
    head = ["server CPU", "server CPU ms per stream", "PostgreSQL CPU", "load-gen CPU",
            "other CPU", "machine busy", "RSS before MB", "peak RSS MB", "RSS after MB"]
    row = [_pct(c.server if c else None), _s(run.cpu_ms_per_stream),
           _pct(c.postgres if c else None),
           _pct(c.loadgen if c else None), _pct(c.other if c else None),
           _pct(c.machine if c else None), _mb(run.rss_before_kb), _mb(run.rss_peak_kb),
           _mb(run.rss_after_kb)]
    return _markdown(head, [row])


def racing_table(run: Run) -> str:
    p = run.publishes.get("racing", Publishes())
    head = ["racing rate/s", "POSTs", "notifications acked", "HTTP errors", "missing"]
    errors = ", ".join(f"{k}: {v}" for k, v in p.errors().items()) or "0"
    row = [f"{run.racing_rate:,.0f}" if run.racing_rate else "-", f"{p.requests:,}",
           f"{p.acked:,}", errors, str(run.racing_missing)]
    return _markdown(head, [row])


def print_report(run: Run, args: argparse.Namespace, machine: dict[str, str]) -> None:
    print()
    print(machine_line(machine))
    print(f"Storm: {len(run.streams):,} WebSocket streams of {run.users:,} users, cause "
          f"{run.cause}, {run.missed} notifications per user published while away (POSTs of "
          f"{args.batch} user_ids over {args.concurrency} connections); every reconnect "
          f"launched at once with since=<newest seq received>; a failed attempt retried after "
          f"{BACKOFF_BASE:g} s doubling to {BACKOFF_CAP:g} s (x 0.5-1), at most "
          f"{args.max_attempts} attempts, {args.connect_timeout:g} s each, within "
          f"{args.timeout:g} s. Recovery: from the storm's start to the stream's last missed "
          "seq. CPU: % of one core over the storm window (200 % = both cores).")
    print()
    print(recovery_table(run))
    print()
    print(phases_table(run))
    print()
    print(resource_table(run))
    if run.racing_rate:
        print()
        print(racing_table(run))


def json_record(run: Run, args: argparse.Namespace, machine: dict[str, str]) -> dict[str, Any]:
    times, opened, c = run.recovery, run.opened, run.cpu

    def quantiles(values: Sequence[float]) -> dict[str, float | None]:
        return {q: (round(percentile(values, v), 4) if values else None)
                for q, v in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}

    ok, _ = run.verdict(args.goal)
    return {
        "benchmark": "storm", "server": "tocsin", "backend": run.backend, "cause": run.cause,
        "users": run.users, "per_user": run.per_user, "streams": len(run.streams),
        "missed_per_user": run.missed, "racing_rate": run.racing_rate, "batch": args.batch,
        "concurrency": args.concurrency, "goal_s": args.goal, "timeout_s": args.timeout,
        "connect_timeout_s": args.connect_timeout, "max_attempts": args.max_attempts,
        "connected": run.connected, "connect_s": round(run.connect_s, 3),
        "connect_errors": dict(run.connect_errors), "first_s": round(run.first_s, 3),
        "not_first": run.not_first, "away_s": round(run.away_s, 3),
        "restart_s": None if run.restart_s != run.restart_s else round(run.restart_s, 3),
        "publishes": {name: {"requests": p.requests, "acked": p.acked,
                             "http_status": dict(p.statuses), "bad_receipts": p.bad_receipts}
                      for name, p in run.publishes.items()},
        "recovered": len(times), "recovery_s": quantiles(times),
        "all_recovered_s": (round(run.all_recovered_s, 4)
                            if run.all_recovered_s is not None else None),
        "first_frame_s": quantiles(opened),
        "storm_window_s": round(run.storm_s, 3), "listen_drops": run.listen_drops,
        "missing": run.missing, "racing_missing": run.racing_missing,
        "duplicates": run.duplicates, "misrouted": run.misrouted, "foreign": run.foreign,
        "wrong_seq": run.wrong_seq, "out_of_order": run.out_of_order, "resyncs": run.resyncs,
        "refused": dict(run.refusals), "dropped_after_open": dict(run.drops),
        "early_drops": dict(run.early_drops), "first_frames": dict(run.first_frames),
        "other_events": dict(run.other_events), "gave_up": dict(run.gave_up),
        "retried_streams": sum(1 for r in run.retries if r),
        "retries_total": sum(run.retries), "retries_max": max(run.retries, default=0),
        "stored": run.stored, "acked": run.acked,
        "rss_kb_before": run.rss_before_kb, "rss_kb_peak": run.rss_peak_kb,
        "rss_kb_after": run.rss_after_kb,
        "cpu": None if c is None else {
            "window_s": round(c.window, 2), "server_pct": c.server,
            "server_ms_per_stream": run.cpu_ms_per_stream, "postgres_pct": c.postgres,
            "loadgen_pct": c.loadgen, "other_pct": c.other, "machine_busy_pct": c.machine},
        "ok": ok, "machine": machine,
    }


# -- main -------------------------------------------------------------------------------------

def _batch(value: str) -> int:
    number = _positive_int(value)
    if number > MAX_BATCH_USERS:
        raise argparse.ArgumentTypeError(f"at most {MAX_BATCH_USERS} (TOCSIN_MAX_BATCH_USERS)")
    return number


def _missed(value: str) -> int:
    number = int(value)
    if not 0 <= number <= MAX_REPLAY:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_REPLAY}, got {value}")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Reconnect storm: every client of a real Tocsin server resumes by seq at "
                    "once.")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres",
                        help="the server's database (default postgres)")
    parser.add_argument("--clients", type=_positive_int,
                        help="users, each with --per-user streams (default 5000; --quick 500)")
    parser.add_argument("--per-user", type=_positive_int, default=1,
                        help="streams per user (default 1)")
    parser.add_argument("--cause", choices=CAUSES, default="restart",
                        help="restart: SIGKILL the server and start it again (default); "
                             "close: the clients close their streams, the server stays up")
    parser.add_argument("--missed", type=_missed, default=3,
                        help="notifications per user published while the clients are away "
                             f"(default 3; at most {MAX_REPLAY}, TOCSIN_MAX_REPLAY: more is "
                             "answered with resync, not replayed)")
    parser.add_argument("--racing", action="store_true",
                        help="keep publishing during the storm, until every stream recovered")
    parser.add_argument("--racing-rate", type=_positive_float, default=1000.0,
                        help="notifications/s published with --racing (default 1000)")
    parser.add_argument("--batch", type=_batch, default=100,
                        help="user_ids per POST (default 100)")
    parser.add_argument("--concurrency", type=_positive_int, default=8,
                        help="HTTP connections the publisher uses (default 8)")
    parser.add_argument("--goal", type=_positive_float, default=10.0,
                        help="seconds within which every stream must recover (default 10)")
    parser.add_argument("--timeout", type=_positive_float, default=120.0,
                        help="longest wait for the storm, and for the first notification "
                             "(default 120 s)")
    parser.add_argument("--connect-timeout", type=_positive_float, default=30.0,
                        help="one attempt's handshake and first frame (default 30 s, as "
                             "bench/livegen.py's: a shorter one than the server needs turns "
                             "its queue into abandoned work and retries)")
    parser.add_argument("--max-attempts", type=_positive_int, default=20,
                        help="reconnect attempts per stream (default 20)")
    parser.add_argument("--grace", type=_positive_float, default=5.0,
                        help="with --racing, seconds to wait for the last racing deliveries "
                             "(default 5)")
    parser.add_argument("--quiet-wait", type=float, default=30.0,
                        help="before the run, wait up to this many seconds for the machine to "
                             "be quiet (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the backoff jitter")
    parser.add_argument("--quick", action="store_true", help="500 users unless --clients")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also append the run's results to PATH as a JSON line")
    parser.add_argument("--logs", type=Path, metavar="DIR",
                        help="copy the server logs (the killed server's too) into DIR")
    parser.add_argument("--pg-dsn", type=_loopback_url, default=DEFAULT_PG_ADMIN_DSN,
                        help="admin DSN to create and drop databases (default %(default)s)")
    args = parser.parse_args(argv)
    if args.clients is None:
        args.clients = 500 if args.quick else 5000
    return args


async def amain(args: argparse.Namespace) -> int:
    streams = args.clients * args.per_user
    # Here the streams, their sockets closed in the cause still in the kernel, and the
    # publisher; in the server the same number of streams again.
    raise_fd_limit(2 * streams + args.concurrency)
    pg_version = await postgres_version(args.pg_dsn)
    if pg_version is None and args.backend == "postgres":
        print("PostgreSQL is unreachable: using SQLite.", file=sys.stderr)
        args.backend = "sqlite"
    machine = machine_info(pg_version)
    await wait_quiet(args.quiet_wait)
    with tempfile.TemporaryDirectory(prefix="tocsin-storm-") as tmp:
        run = await measure(args, Path(tmp))
    if args.json is not None:
        with args.json.open("a") as handle:
            handle.write(json.dumps(json_record(run, args, machine)) + "\n")
    print_report(run, args, machine)
    ok, line = run.verdict(args.goal)
    print(f"\nVerdict: {'OK' if ok else 'FAILED'}: {line}.")
    if run.server_log:
        print(f"\nthe server logged:\n{run.server_log}", file=sys.stderr)
    problems = run.problems(args.goal)
    if not ok and not problems:
        problems = [line]
    return report_problems("STORM BENCHMARK PROBLEMS", problems) or (0 if ok else 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # the load generator is lighter on uvloop, as the server is
        return asyncio.run(amain(args))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(amain(args))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
