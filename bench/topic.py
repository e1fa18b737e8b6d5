"""A topic's fan-out on PostgreSQL: how fast 100,000 subscribers are notified, and what it does
to single publishes meanwhile.

A fresh database and a real `tocsin serve`: its in-process worker expands the fan-out, as a
default deployment does, or with `--worker separate` a `tocsin worker` process beside it (and
the server's own worker off). The topic's subscribers are written straight into
`topic_subscribers` with COPY, for setup speed, with their `users` rows (the application's
existing users), then analyzed. Then:

1. idle:    --concurrency closed-loop single publishes (one `user_id`, other users than the
            topic's) for --seconds, after a --warmup; their latency is the baseline;
2. fan-out: one POST /v1/notifications to the topic, and the same single-publish load until
            GET /v1/fanouts/{id} says done. Reported: the time from the 202 to done, the
            notifications stored per second over it, and the single publishes' latency
            during it, beside the idle one (p50, p99, and p99 during / idle).

Finally the stored rows are counted: every subscriber's notification, plus every single
publish that got its 202.

    .venv/bin/python bench/topic.py                      # 100,000 subscribers, batch 100
    .venv/bin/python bench/topic.py --subscribers 20000 --seconds 5   # a quick look
    .venv/bin/python bench/topic.py --worker separate    # the fan-out in its own process
    .venv/bin/python bench/topic.py --batch 1000 --json /tmp/topic.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from server import (
    DEFAULT_PG_ADMIN_DSN,
    Database,
    postgres_database,
    postgres_version,
    running_server,
    server_env,
)

TOPIC = "bench-topic"
REQUEST_TIMEOUT = 30.0


@dataclass(slots=True)
class Latencies:
    phase: str
    requests: int  # answered 202 after the warm-up
    accepted: int  # answered 202 at all (each one a stored row)
    seconds: float
    errors: int
    latencies_ms: list[float]

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in ms; NaN with no samples."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[max(1, min(len(ordered), math.ceil(q / 100 * len(ordered)))) - 1]


@dataclass(slots=True)
class Result:
    worker: str
    subscribers: int
    batch: int
    concurrency: int
    fanout_seconds: float
    stored_per_second: float
    idle: Latencies
    during: Latencies
    rows_expected: int
    rows_stored: int
    processed: int


async def add_subscribers(database: Database, count: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(database.url, timeout=10)
    try:
        now = dt.datetime.now(dt.UTC)
        await conn.execute("INSERT INTO topics (name, self_subscribe, created_at, updated_at) "
                           "VALUES ($1, false, $2, $2)", TOPIC, now)
        users = [f"fan-{i:06d}" for i in range(count)]
        # Subscribers are users the application already has (their rows exist), as they
        # would in use; the fan-out's upserts then update rows rather than create them.
        await conn.copy_records_to_table(
            "users", columns=["id", "created_at", "updated_at"],
            records=((user, now, now) for user in users))
        await conn.copy_records_to_table(
            "topic_subscribers", columns=["topic", "user_id", "created_at"],
            records=((TOPIC, user, now) for user in users))
        # As after any bulk load: without statistics the planner takes the tables for a few
        # rows, and reads every remaining subscriber (and every user) for each batch instead
        # of one index range of a batch (autovacuum would analyze them too, later).
        await conn.execute("ANALYZE users, topic_subscribers")
    finally:
        await conn.close()


async def single_publishes(session: aiohttp.ClientSession, base_url: str, headers: dict[str, str],
                           phase: str, concurrency: int, *, until: asyncio.Event,
                           warmup: float = 0.0) -> Latencies:
    """Closed-loop publishes to users outside the topic until `until` is set; only those
    finished after `warmup` seconds are counted."""
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0
    ok = 0
    start = time.perf_counter()
    counted_from = start + warmup

    async def loop() -> None:
        nonlocal errors, ok
        while not until.is_set():
            body = {"user_id": f"single-{phase}-{next(counter) % 1000}", "type": "comment",
                    "title": "A single publish"}
            sent = time.perf_counter()
            try:
                async with session.post(f"{base_url}/v1/notifications", json=body,
                                        headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                continue
            done = time.perf_counter()
            if status != 202:
                errors += 1
                continue
            ok += 1
            if done >= counted_from:
                latencies.append((done - sent) * 1000)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return Latencies(phase=phase, requests=len(latencies), accepted=ok,
                     seconds=time.perf_counter() - counted_from, errors=errors,
                     latencies_ms=latencies)


@contextlib.asynccontextmanager
async def separate_worker(database: Database, workdir: Path, api_key: str, jwt_secret: str,
                          extra: dict[str, str]) -> AsyncIterator[None]:
    """`tocsin worker` beside the server, on the same database; SIGTERM on exit."""
    env = {**server_env(database.url, workdir, api_key, jwt_secret), **extra}
    with (workdir / "worker.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tocsin", "worker", "--log-level", "warning", env=env,
            cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT)
    try:
        yield
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def measure(args: argparse.Namespace) -> Result:
    api_key, jwt_secret = secrets.token_hex(16), secrets.token_urlsafe(36)
    extra = {"TOCSIN_FANOUT_BATCH": str(args.batch)}
    async with postgres_database(args.pg_admin_dsn) as database:
        with tempfile.TemporaryDirectory(prefix="tocsin-bench-topic-") as workdir:
            server_extra = dict(extra)
            if args.worker == "separate":
                server_extra["TOCSIN_WORKER_IN_PROCESS"] = "false"
            async with running_server(database, Path(workdir), extra_env=server_extra,
                                      api_key=api_key, jwt_secret=jwt_secret) as server, \
                    contextlib.AsyncExitStack() as stack:
                if args.worker == "separate":
                    await stack.enter_async_context(
                        separate_worker(database, Path(workdir), api_key, jwt_secret, extra))
                await add_subscribers(database, args.subscribers)
                headers = {"Authorization": f"Bearer {server.api_key}"}
                timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
                connector = aiohttp.TCPConnector(limit=args.concurrency + 2)
                async with aiohttp.ClientSession(timeout=timeout, connector=connector) as s:
                    stop_idle = asyncio.Event()
                    asyncio.get_running_loop().call_later(args.warmup + args.seconds,
                                                          stop_idle.set)
                    idle = await single_publishes(s, server.base_url, headers, "idle",
                                                  args.concurrency, until=stop_idle,
                                                  warmup=args.warmup)

                    done = asyncio.Event()
                    during_task = asyncio.create_task(single_publishes(
                        s, server.base_url, headers, "during", args.concurrency, until=done))
                    started = time.perf_counter()
                    async with s.post(f"{server.base_url}/v1/notifications", headers=headers,
                                      json={"topic": TOPIC, "type": "comment",
                                            "title": "To everyone"}) as response:
                        accepted = await response.json()
                        if response.status != 202:
                            raise RuntimeError(f"the topic publish got {response.status}: "
                                               f"{accepted}")
                    progress: dict[str, Any] = {}
                    deadline = started + args.max_seconds
                    while time.perf_counter() < deadline:
                        async with s.get(f"{server.base_url}/v1/fanouts/"
                                         f"{accepted['fanout_id']}", headers=headers) as got:
                            progress = await got.json()
                        if progress.get("status") == "done":
                            break
                        await asyncio.sleep(0.1)
                    elapsed = time.perf_counter() - started
                    done.set()
                    during = await during_task
                    if progress.get("status") != "done":
                        raise RuntimeError(f"the fan-out did not finish in {args.max_seconds} s:"
                                           f" {progress}\n{server.log_tail()}")
                stored = await database.count_notifications()
    return Result(worker=args.worker, subscribers=args.subscribers, batch=args.batch,
                  concurrency=args.concurrency, fanout_seconds=elapsed,
                  stored_per_second=accepted["recipients"] / elapsed, idle=idle, during=during,
                  rows_expected=accepted["recipients"] + idle.accepted + during.accepted,
                  rows_stored=stored, processed=int(progress["processed"]))


def report(result: Result) -> None:
    idle, during = result.idle, result.during
    where = "in the server" if result.worker == "in-process" else "in a worker process"
    print(f"\nTopic fan-out on PostgreSQL ({where}): {result.subscribers:,} subscribers, "
          f"batch {result.batch}, {result.concurrency} concurrent single publishes throughout")
    print(f"  fan-out: {result.fanout_seconds:.1f} s from the 202 to done, "
          f"{result.stored_per_second:,.0f} notifications stored/s "
          f"(processed {result.processed:,})")
    print(f"  {'single publishes':<18}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}")
    for phase in (idle, during):
        print(f"  {phase.phase:<18}{phase.requests:>10,}{phase.requests / phase.seconds:>9.0f}"
              f"{phase.percentile(50):>9.1f}{phase.percentile(99):>9.1f}{phase.errors:>8}")
    ratio = during.percentile(99) / idle.percentile(99)
    print(f"  p99 during / idle: {ratio:.2f}x")
    print(f"  rows stored: {result.rows_stored:,} ({result.rows_expected:,} expected)")
    print(f"  {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")


def problems(result: Result) -> list[str]:
    found = []
    if result.processed != result.subscribers:
        found.append(f"processed {result.processed} of {result.subscribers} subscribers")
    if result.rows_stored != result.rows_expected:
        found.append(f"{result.rows_stored} rows stored, {result.rows_expected} expected")
    if result.idle.errors or result.during.errors:
        found.append(f"errors: {result.idle.errors} idle, {result.during.errors} during")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100, help="TOCSIN_FANOUT_BATCH")
    parser.add_argument("--worker", choices=("in-process", "separate"), default="in-process",
                        help="who expands the fan-out: the server's own worker, or a "
                        "`tocsin worker` process")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="single publishes in flight, idle and during the fan-out")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="the idle window")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="give up on a fan-out that takes longer")
    parser.add_argument("--pg-admin-dsn", default=DEFAULT_PG_ADMIN_DSN)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if asyncio.run(postgres_version(args.pg_admin_dsn)) is None:
        return 2
    result = asyncio.run(measure(args))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(asdict(result)))
    found = problems(result)
    for problem in found:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
