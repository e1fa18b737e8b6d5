"""A closed-loop HTTP load generator: C workers on one aiohttp session, each sending its next
request as soon as the previous one is answered.

The run is a warm-up followed by a measured window. Throughput and latency count the requests
that *completed* inside the window; errors count every request of the run, warm-up included.
Every loop is bounded: by the run's deadline, by `max_requests`, and each request by a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from procstat import CpuSnapshot, CpuUsage

REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """Requests to send in turn (round-robin over `bodies`), each one notifying
    `notifications_per_request` users."""

    name: str
    path: str
    bodies: Sequence[bytes]
    notifications_per_request: int
    expected_status: int = 202


@dataclass(slots=True)
class Outcome:
    scenario: str
    concurrency: int
    warmup_seconds: float
    window_seconds: float
    requests: int  # completed inside the window, successfully
    notifications: int
    latencies_ms: list[float]
    errors: Counter[str]  # status code or exception name -> count, over the whole run
    total_ok_requests: int  # successful requests over the whole run, warm-up included
    cpu: CpuUsage
    stopped_by_cap: bool = False

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.window_seconds

    @property
    def notifications_per_second(self) -> float:
        return self.notifications / self.window_seconds

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of latency in ms, nearest-rank; NaN with no samples."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
        return ordered[rank - 1]


async def run(
    base_url: str,
    api_key: str,
    scenario: Scenario,
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    server_pid: int,
    postgres_database: str | None,
    max_requests: int = 5_000_000,
) -> Outcome:
    """Drive `scenario` against `base_url` for `warmup` + `seconds` seconds."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    url = base_url + scenario.path
    counter = itertools.count()
    start = time.perf_counter()
    window_start = start + warmup
    window_end = window_start + seconds
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    ok_total = 0
    in_window = 0
    capped = False

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok_total, in_window, capped
        while time.perf_counter() < window_end:
            index = next(counter)
            if index >= max_requests:
                capped = True
                return
            body = scenario.bodies[index % len(scenario.bodies)]
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                continue
            done = time.perf_counter()
            if status != scenario.expected_status:
                errors[str(status)] += 1
                continue
            ok_total += 1
            if window_start <= done <= window_end:
                in_window += 1
                latencies.append((done - sent) * 1000)

    snapshots: list[CpuSnapshot] = []

    async def sample_cpu() -> None:
        for moment in (window_start, window_end):
            await asyncio.sleep(max(0.0, moment - time.perf_counter()))
            snapshots.append(CpuSnapshot.take(time.perf_counter(), server_pid,
                                              postgres_database=postgres_database))

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sampler = asyncio.create_task(sample_cpu())
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        if capped:
            sampler.cancel()
        else:
            await sampler

    if len(snapshots) == 2:
        cpu = CpuUsage.between(snapshots[0], snapshots[1],
                               with_postgres=postgres_database is not None)
    else:  # stopped by the request cap before the window ended
        nan = float("nan")
        cpu = CpuUsage(server=nan, loadgen=nan, postgres=None, machine=nan, other=nan)
    window = max(min(time.perf_counter(), window_end) - window_start, 1e-9)
    return Outcome(
        scenario=scenario.name,
        concurrency=concurrency,
        warmup_seconds=warmup,
        window_seconds=window,
        requests=in_window,
        notifications=in_window * scenario.notifications_per_request,
        latencies_ms=latencies,
        errors=errors,
        total_ok_requests=ok_total,
        cpu=cpu,
        stopped_by_cap=capped,
    )
