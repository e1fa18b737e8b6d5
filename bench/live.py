"""Live delivery of a real `tocsin serve`: N users connected over WebSocket, a paced publisher.

Scenarios (`--scenarios`, default `single,two-node,idle`):

- single:   one server process; --users users (1,000) connected; for each of --rates (200, 500,
            1,000 notifications/s), a fresh database and server, --seconds (15) of one POST per
            notification to a random connected user.
- single-sqlite: the same at --rates on a SQLite file (the embedded store), whatever --backend
            says, so that one invocation measures it beside PostgreSQL and the anchor: its rows
            say `sqlite` in the db column, and the Tocsin / anchor table gains a row per rate for
            it (Tocsin on SQLite against seed-node on PostgreSQL).
- two-node: two server processes on one database, TOCSIN_BUS_URL=redis://…; user i connects to
            node i % 2, publish k goes to node k % 2 (so about half the deliveries cross nodes;
            all of them go through Redis); at each of --two-node-rates (500, 1,000).
- batched:  one server process, --users connected, on --backend's database; one POST with
            `user_ids` of --batch-size (100) distinct connected users per that many
            notifications, paced so that each of --batched-rates (5,000, 10,000, 20,000, 40,000)
            is notifications/s (50 to 400 POSTs/s). Every receipt is checked as for single
            (each user of a batch must receive exactly one frame of that POST, and no one else
            any), latency is publish→receipt per notification, delivered/s counts
            notifications; its delivery table says so and gives POSTs/s beside them.
- idle:     --idle-users (5,000) connected, nothing published: server memory per connection.
- anchor:   the seed-node reference server (Node.js, Socket.IO 4, PostgreSQL) under the same
            load at --anchor-rates, for Tocsin/anchor ratios on this machine (needs node >= 20;
            `npm ci` is run in a temporary copy of --anchor-dir unless it has node_modules).

With the anchor and any of single, single-sqlite and batched, a last table sets each against the
goals: Tocsin's highest delivered/s over its rates (batched: the highest whose p99 is within
250 ms) divided by the anchor's highest, its single-publish saturation. The goals' figures come
from one invocation (about 6 minutes; the highest rates must be beyond each server's saturation,
which the table flags when they are not):

    .venv/bin/python bench/live.py --scenarios single,single-sqlite,batched,anchor \
        --rates 1000,2000,4000 --anchor-rates 1000,2000,4000

Reported per run: attempted/s, acknowledged/s, delivered/s, lost (acknowledged but not received
within --grace seconds after the last answer), duplicates, misrouted, late sends, publish→receipt
latency p50/p90/p99/max, HTTP errors by status, the CPU of each server process, PostgreSQL,
Redis, this load generator and the machine, and server RSS before connecting, after connecting
(KB per idle connection) and after the run. Rates, attempted, acknowledged and delivered count
notifications in every scenario; late sends and HTTP errors count POSTs, one per notification
except in batched runs.

With --baseline REV, a build of that commit (bench/baseline.py) runs every Tocsin scenario too,
alternately with the working tree (ABBA over the rates), each run on fresh servers and a fresh
database as always; the tables show the two side by side with their ratios, current / baseline.
The anchor's ratios stay those of the working tree's build.

With --repeat N, every scenario and rate (the anchor's too) runs N times, each run on fresh
servers and a fresh database; the runs go round: all the scenarios once, then again, with
--baseline each rate's builds taking turns going first. Each row of the tables then gives the
median of each figure over the N runs (lost, dup, misrouted and HTTP errors: their total),
`delivered/s min-max` their spread, and a ratio row the median of the N ratios of a baseline run
to the current run beside it, with their min-max for delivered/s, p99 and the server CPU per
1,000 deliveries; the Tocsin / anchor ratios are ratios of medians. Runs are labelled
`single-r500-rep2` and so on; the JSON lines keep one line per run, with its `repeat` (1 to N).

With --plot PATH, the end of the run draws delivered/s and p99 against the asked rate into a PNG
(bench/plot.py, which also draws it again from --json files); batched runs, whose rates are ten
times higher, get a row of panels of their own.

The JSON lines (--json) have one record per run; beside the figures above, `scenario`,
`batch_size` (users per POST, 1 for single publishes) and, for runs that published,
`posts_attempted`, `posts_acked`, `posts_per_s_asked` and `posts_attempted_per_s`; `rate`,
`attempted`, `acked`, `delivered` and `delivered_per_s` count notifications.

    .venv/bin/python bench/live.py                  # what `make bench` runs (about 3 minutes)
    .venv/bin/python bench/live.py --quick
    .venv/bin/python bench/live.py --quick --scenarios single-sqlite,batched  # 500/s, 5,000/s
    .venv/bin/python bench/live.py --scenarios batched --batched-rates 10000 --baseline main
    .venv/bin/python bench/live.py --quick --json /tmp/live.jsonl --plot /tmp/live.png  # figure
    .venv/bin/python bench/live.py --scenarios single --rates 500 --baseline main
    .venv/bin/python bench/live.py --scenarios single --rates 500 --baseline main --repeat 5
    .venv/bin/python bench/live.py --scenarios single --rates 1000,1500,2000
    .venv/bin/python bench/live.py --scenarios anchor --anchor-rates 500,1000,2000,3000
    .venv/bin/python bench/live.py --scenarios single --rates 1000 --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

import flame
import gcstats
import livegen
from baseline import Build, builds_to_measure
from compare import (
    BASELINE,
    CURRENT,
    compared_table,
    cpu_per_thousand,
    format_spread,
    interleave,
    markdown,
    median,
    medians_each,
    uneven,
)
from livegen import BatchTally, Connected, Cpu, CpuShare, Flavor, Published, Tally
from procstat import machine_busy_seconds, memory_kb
from publish import machine_info, profile_window, py_spy
from report import machine_line, report_problems
from server import (
    DEFAULT_PG_ADMIN_DSN,
    HOST,
    Database,
    Server,
    free_port,
    postgres_database,
    postgres_version,
    running_server,
    sqlite_database,
    wait_healthy,
)
from tocsin.auth.tokens import TokenAuthority

SCENARIOS = ("single", "single-sqlite", "two-node", "batched", "idle", "anchor")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_ANCHOR_DIR = REPO.parent / "shared" / "anchors" / "seed-node"
SETTLE_SECONDS = 1.0  # after the last stream opened, before reading RSS
OTHER_CPU_WARNING = 15.0
QUIET_BUSY = 15.0  # % of one core: below this, the machine counts as quiet before a run
MAX_BATCH_USERS = 1000  # the server's TOCSIN_MAX_BATCH_USERS default: a larger batch is refused
# docs/benchmarks.md, "Against the goals": Tocsin's figure over the anchor's single-publish
# saturation on PostgreSQL; batched figures count only at a p99 within BATCHED_P99_GOAL_MS
GOAL_SINGLE_POSTGRES = 3.0
GOAL_SINGLE_SQLITE = 1.5
GOAL_BATCHED = 20.0
BATCHED_P99_GOAL_MS = 250.0
KEPT_UP = 0.98  # delivered/s at least this share of the asked rate: not saturated there


@dataclass(slots=True)
class Run:
    label: str
    server: str  # tocsin | seed-node
    backend: str
    nodes: int
    users: int
    rate: float  # 0: idle
    connected: Connected
    rss_before_kb: list[int]
    rss_connected_kb: list[int]
    rss_after_kb: list[int] = field(default_factory=list)
    hwm_kb: list[int] = field(default_factory=list)
    rss_after_close_kb: list[int] = field(default_factory=list)
    loadgen_rss_kb: int = 0
    published: Published | None = None
    tally: Tally | None = None
    cpu: CpuShare | None = None
    grace_used: float = 0.0
    stored: int | None = None
    server_log: str = ""
    profiled: bool = False
    gc: list[dict[str, Any]] = field(default_factory=list)  # per node, over the window
    note: str = ""  # a what-if applied to the server, shown beside its name
    build: str = ""  # CURRENT or BASELINE for Tocsin; "" for the anchor
    build_label: str = ""  # e.g. `baseline 1a2b3c4d5e`, when builds are compared
    slot: str = ""  # what the same run of another build is labelled by (default: label)
    repeat: int = 1  # which run of --repeat N this is (1 to N)
    batch_size: int = 1  # users per POST (`user_ids`); 1: one `user_id` per POST
    scenario: str = ""  # which of SCENARIOS ran it
    # sorted once: a batched run holds hundreds of thousands, and every table asks for them
    _sorted_latencies: list[float] | None = field(default=None, init=False, repr=False)

    @property
    def key(self) -> str:
        return self.slot or self.label

    @property
    def server_cpu_per_thousand(self) -> float:
        """Server CPU seconds (all nodes) per 1,000 notifications delivered."""
        c, t = self.cpu, self.tally
        if c is None or t is None:
            return float("nan")
        return cpu_per_thousand(c.server, c.window, t.delivered)

    @property
    def delivered_per_second(self) -> float:
        return self.tally.delivered / self.deliver_window if self.tally else float("nan")

    @property
    def kb_per_connection(self) -> float:
        n = len(self.connected.clients)
        return (sum(self.rss_connected_kb) - sum(self.rss_before_kb)) / n if n else float("nan")

    @property
    def latencies(self) -> list[float]:
        """The publish→receipt latencies in ms, sorted."""
        if self.tally is None:
            return []
        cached = self._sorted_latencies
        if cached is None or len(cached) != len(self.tally.latencies_ms):
            cached = self._sorted_latencies = sorted(self.tally.latencies_ms)
        return cached

    @property
    def publish_window(self) -> float:
        p = self.published
        return max(p.last_send - p.t0, 1e-9) if p else float("nan")

    @property
    def deliver_window(self) -> float:
        """From the first due send to the last receipt (at least the publish window)."""
        p, t = self.published, self.tally
        if p is None or t is None:
            return float("nan")
        return max(t.last_receipt - p.t0, p.last_send - p.t0, 1e-9)

    def problems(self) -> list[str]:
        found = []
        if self.connected.errors:
            found.append(f"connect errors {dict(self.connected.errors)}")
        t, p = self.tally, self.published
        if (self.batch_size > 1 and self.rate > 0 and p is None
                and len(self.connected.clients) < self.batch_size):
            found.append(f"{len(self.connected.clients)} streams open, fewer than the "
                         f"{self.batch_size} users of a POST: nothing published")
        if t is not None and p is not None:
            lost = t.lost()
            if lost:
                found.append(f"{lost} acknowledged notifications never received")
            if t.duplicates or t.misrouted or t.foreign:
                found.append(f"duplicates {t.duplicates}, misrouted {t.misrouted}, "
                             f"foreign {t.foreign}")
            errors = http_errors(p, self.server)
            if errors:
                found.append(f"HTTP errors {errors}")
            if t.disconnects:
                found.append(f"{t.disconnects} streams closed during the run")
            ok = p.acked
            if self.stored is not None and self.stored != ok:
                found.append(f"{self.stored} rows stored for {ok} acknowledged")
        return found


def http_errors(published: Published, server: str) -> dict[str, int]:
    ok = "202" if server == "tocsin" else "201"
    return {k: v for k, v in sorted(published.statuses.items()) if k != ok}


# -- servers ----------------------------------------------------------------------------------

def _user_ids(count: int) -> list[str]:
    run = secrets.token_hex(3)  # fresh Redis channels and rows each run
    return [f"live-{run}-{i:06d}" for i in range(count)]


@asynccontextmanager
async def fresh_database(args: argparse.Namespace, workdir: Path, backend: str | None = None
                         ) -> AsyncIterator[Database]:
    """A fresh database of `backend` (default --backend's)."""
    if (backend or args.backend) == "sqlite":
        sub = Path(tempfile.mkdtemp(prefix="db-", dir=workdir))
        async with sqlite_database(sub) as database:
            yield database
    else:
        async with postgres_database(args.pg_dsn) as database:
            yield database


@dataclass(frozen=True, slots=True)
class Node:
    server: Server
    gc_stats: Path | None  # where bench/gcstats.py writes the server's GC totals


@asynccontextmanager
async def tocsin_nodes(database: Database, workdir: Path, nodes: int, redis_url: str,
                       args: argparse.Namespace, python: str = sys.executable
                       ) -> AsyncIterator[list[Node]]:
    """`nodes` server processes on one database; more than one share Redis, a key and a secret.
    They start one after the other (the first one migrates the fresh database). With
    --gc-stats, each runs through bench/gcstats.py (and --gc-freeze, --gc-threshold apply).
    `python` runs them (a baseline build's interpreter, or this one)."""
    env = {"TOCSIN_BUS_URL": redis_url} if nodes > 1 else {}
    api_key, jwt_secret = secrets.token_hex(16), secrets.token_urlsafe(36)
    launcher = (str(Path(__file__).with_name("gcstats.py")),) if args.gc_stats \
        else ("-m", "tocsin")
    what_if = ({"BENCH_GC_FREEZE": "1"} if args.gc_freeze else {}) | (
        {"BENCH_GC_THRESHOLD": args.gc_threshold} if args.gc_threshold else {})
    async with AsyncExitStack() as stack:
        started: list[Node] = []
        for _ in range(nodes):
            stats = workdir / f"gc-{secrets.token_hex(4)}.json" if args.gc_stats else None
            extra = env | ({"BENCH_GC_STATS": str(stats), **what_if} if stats else {})
            server = await stack.enter_async_context(running_server(
                database, workdir, extra_env=extra, api_key=api_key, jwt_secret=jwt_secret,
                launcher=launcher, python=python))
            if stats is not None and args.gc_freeze:
                await _frozen(stats)
            started.append(Node(server, stats))
        yield started


async def _frozen(stats: Path) -> None:
    """Ask a gcstats.py server to call gc.freeze() now; wait (at most 5 s) until it has."""
    gcstats.freeze_trigger(stats).touch()
    for _ in range(50):
        reading = gcstats.read(stats)
        if reading is not None and reading.get("frozen"):
            print(f"[gc] {reading['frozen']:,} objects frozen at start", file=sys.stderr)
            return
        await asyncio.sleep(0.1)
    print("[gc] the server did not report gc.freeze() within 5 s", file=sys.stderr)


def _anchor_env(database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PG", "TOCSIN_")) and k not in ("DATABASE_URL", "PORT")}
    env.update({"PORT": str(port), "DATABASE_URL": database_url})
    return env


@asynccontextmanager
async def anchor_server(app_dir: Path, database: Database, workdir: Path
                        ) -> AsyncIterator[Server]:
    """`node server.js` on a free port (it binds 127.0.0.1 and applies schema.sql itself)."""
    port = free_port()
    log_path = workdir / f"seed-node-{port}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            "node", "server.js", cwd=app_dir, env=_anchor_env(database.url, port),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT)
    server = Server(process=process, base_url=f"http://{HOST}:{port}", api_key="",
                    log_path=log_path)
    try:
        await wait_healthy(server, within=60, path="/health")
        yield server
    finally:
        await server.stop()


def node_version() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        return subprocess.run([node, "--version"], check=True, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_anchor(source: Path, workdir: Path) -> Path:
    """The anchor's directory, ready to run: `source` if it has node_modules, else a copy in
    `workdir` where `npm ci` installed the locked dependencies."""
    if (source / "node_modules").is_dir():
        return source
    target = workdir / "seed-node"
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # the source may be read-only
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed")
    print(f"[anchor] npm ci in {target}", file=sys.stderr)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=target, check=True,
                   timeout=600, stdout=subprocess.DEVNULL)
    return target


# -- one run ----------------------------------------------------------------------------------

def _log_problems(servers: Sequence[Server]) -> str:
    lines: list[str] = []
    for server in servers:
        try:
            text = server.log_path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        interesting = [line for line in text.splitlines()
                       if any(word in line for word in ("Traceback", "ERROR", "error", "WARNING",
                                                        "Error"))]
        lines += [f"{server.log_path.name}: {line}" for line in interesting[:5]]
    return "\n".join(lines)


async def measure(flavor: Flavor, servers: Sequence[Server], database: Database,
                  args: argparse.Namespace, *, label: str, user_ids: Sequence[str],
                  rate: float, gc_paths: Sequence[Path] = (), batch_size: int = 1) -> Run:
    """Connect the users, publish at `rate` notifications/s for --seconds (nothing when 0),
    `batch_size` users per POST, and account for it."""
    pids = [s.pid for s in servers]
    base_urls = [s.base_url for s in servers]
    tally: Tally
    if batch_size > 1:
        posts = max(1, int(rate * args.seconds / batch_size))
        tally = BatchTally(posts * batch_size, batch_size=batch_size)
    else:
        tally = Tally(max(1, int(rate * args.seconds)))
    rss_before = [memory_kb(pid)[0] for pid in pids]
    ws_connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=ws_connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as ws_session:
        connected = await livegen.connect_all(flavor, ws_session, base_urls, user_ids, tally)
        print(f"[{label}] {len(connected.clients)}/{len(user_ids)} streams open in "
              f"{connected.seconds:.1f} s" + (f", errors {dict(connected.errors)}"
                                             if connected.errors else ""), file=sys.stderr)
        await asyncio.sleep(SETTLE_SECONDS)
        run = Run(label=label, server=flavor.name, backend=database.backend, nodes=len(servers),
                  users=len(user_ids), rate=rate, connected=connected, rss_before_kb=rss_before,
                  rss_connected_kb=[memory_kb(pid)[0] for pid in pids],
                  profiled=args.profile is not None and rate > 0, batch_size=batch_size)
        try:
            # a batch names distinct connected users: with fewer streams open than that,
            # nothing is published, and problems() says why
            if rate > 0 and len(connected.clients) >= batch_size:
                before = await database.count_notifications()
                await _publish(run, flavor, servers, database, args, tally, rate, gc_paths)
                run.stored = await database.count_notifications() - before
            run.rss_after_kb = [memory_kb(pid)[0] for pid in pids]
            run.hwm_kb = [memory_kb(pid)[1] for pid in pids]
            run.loadgen_rss_kb = memory_kb()[0]
        finally:
            await livegen.close_all(connected.clients, tally)
    await asyncio.sleep(SETTLE_SECONDS)
    run.rss_after_close_kb = [memory_kb(pid)[0] for pid in pids]
    run.server_log = _log_problems(servers)
    return run


async def _publish(run: Run, flavor: Flavor, servers: Sequence[Server], database: Database,
                   args: argparse.Namespace, tally: Tally, rate: float,
                   gc_paths: Sequence[Path]) -> None:
    pids = [s.pid for s in servers]
    livegen.freeze_heap()
    snapshots: list[Cpu] = []
    gc_readings: list[list[dict[str, Any] | None]] = []

    def snapshot() -> None:
        snapshots.append(Cpu.take(pids, database.postgres_name))
        gc_readings.append([gcstats.read(path) for path in gc_paths])

    profiles: list[tuple[Path, asyncio.Task[None]]] = []
    if args.profile is not None:
        for i, pid in enumerate(pids):
            out = args.profile / f"{run.label}-node{i}.txt"
            profiles.append((out, asyncio.create_task(
                profile_window(pid, 0.05, args.seconds, out))))
    batches = (f" ({rate / run.batch_size:g} POSTs/s of {run.batch_size} users)"
               if run.batch_size > 1 else "")
    print(f"[{run.label}] publishing {rate:g} notifications/s{batches} for {args.seconds:g} s "
          f"over {args.concurrency} connections", file=sys.stderr)
    if isinstance(tally, BatchTally):
        if not isinstance(flavor, livegen.TocsinFlavor) or len(servers) != 1:
            raise ValueError("batched publishes are Tocsin's, on one node")
        published = await livegen.publish_batched(
            flavor, servers[0].base_url, run.connected.clients, tally, rate=rate,
            seconds=args.seconds, concurrency=args.concurrency, rng=random.Random(args.seed),
            on_start=snapshot)
    else:
        published = await livegen.publish(
            flavor, [s.base_url for s in servers], run.connected.clients, tally, rate=rate,
            seconds=args.seconds, concurrency=args.concurrency, rng=random.Random(args.seed),
            on_start=snapshot)
    run.grace_used = await livegen.wait_for_stragglers(tally, published, args.grace)
    snapshot()
    run.published, run.tally = published, tally
    if len(snapshots) == 2:
        run.cpu = CpuShare.between(snapshots[0], snapshots[1],
                                   with_postgres=database.postgres_name is not None)
        run.gc = [gcstats.between(a, b) for a, b in zip(*gc_readings, strict=True)
                  if a is not None and b is not None]
        for i, gc in enumerate(run.gc):
            print(f"[{run.label}] node {i} garbage collection: {gc}", file=sys.stderr)
    for out, task in profiles:
        await task
        if out.exists():
            print(flame.report(flame.load(out), title=f"py-spy: {run.label} ({out})",
                               probes=flame.LIVE_PROBES))
    lat = run.latencies
    print(f"[{run.label}] attempted {published.attempted / run.publish_window:,.0f}/s, "
          f"delivered {tally.delivered / run.deliver_window:,.0f}/s, lost {tally.lost()}, "
          f"p50 {livegen.percentile(lat, 50):.1f} ms, p99 {livegen.percentile(lat, 99):.1f} ms, "
          f"late sends {published.late_sends}", file=sys.stderr)


# -- scenarios --------------------------------------------------------------------------------

async def wait_quiet(max_wait: float) -> None:
    """Before a run (no server of ours running): wait, at most `max_wait` seconds, for a second
    in which the whole machine used less than QUIET_BUSY % of one core."""
    cores = os.cpu_count() or 1
    busy = float("nan")
    for _ in range(max(1, round(max_wait))):
        b0, t0 = machine_busy_seconds()
        await asyncio.sleep(1.0)
        b1, t1 = machine_busy_seconds()
        busy = 100 * cores * (b1 - b0) / max(t1 - t0, 1e-9)
        if busy < QUIET_BUSY:
            return
    if max_wait > 0:
        print(f"warning: the machine is busy ({busy:.0f} % of a core used by others) after "
              f"waiting {max_wait:g} s for quiet: starting anyway", file=sys.stderr)


def _tocsin_flavor(server: Server, user_ids: Sequence[str]) -> livegen.TocsinFlavor:
    authority = TokenAuthority(server.jwt_secret)
    tokens = {uid: authority.mint(uid, 3600)[0] for uid in user_ids}
    return livegen.TocsinFlavor(server.api_key, tokens)


def run_label(slot: str, build: str, repeat: int, repeats: int) -> str:
    """`single-r500`; a baseline's says so (`single-r500-baseline`), and with --repeat each run
    says which it is (`single-r500-baseline-rep2`)."""
    label = slot if build in (CURRENT, "") else f"{slot}-{build}"
    return f"{label}-rep{repeat}" if repeats > 1 else label


async def tocsin_run(args: argparse.Namespace, workdir: Path, build: Build, *, nodes: int,
                     users: int, rate: float, slot: str, compare: bool = False,
                     repeat: int = 1, scenario: str = "", backend: str | None = None,
                     batch_size: int = 1) -> Run:
    """Run `repeat` of --repeat of `build`; `slot` names it (`single-r500`), and its label says
    which build and run it is (run_label()). With `compare`, its rows in the tables name the
    build. `backend`: the database (default --backend's); `batch_size`: users per POST."""
    label = run_label(slot, build.name, repeat, args.repeat)
    await wait_quiet(args.quiet_wait)
    async with fresh_database(args, workdir, backend) as database, \
            tocsin_nodes(database, workdir, nodes, args.redis_url, args,
                         python=build.python) as started:
        servers = [node.server for node in started]
        user_ids = _user_ids(users)
        flavor = _tocsin_flavor(servers[0], user_ids)
        run = await measure(flavor, servers, database, args, label=label, user_ids=user_ids,
                            rate=rate,
                            gc_paths=[n.gc_stats for n in started if n.gc_stats is not None],
                            batch_size=batch_size)
        run.note = what_if(args)
        run.build, run.slot, run.repeat, run.scenario = build.name, slot, repeat, scenario
        run.build_label = build.label if compare else ""
        return run


async def anchor_run(args: argparse.Namespace, workdir: Path, app_dir: Path, *, users: int,
                     rate: float, slot: str, repeat: int = 1) -> Run:
    await wait_quiet(args.quiet_wait)
    async with postgres_database(args.pg_dsn) as database, \
            anchor_server(app_dir, database, workdir) as server:
        run = await measure(livegen.SocketIOFlavor(), [server], database, args,
                            label=run_label(slot, "", repeat, args.repeat),
                            user_ids=_user_ids(users), rate=rate)
        run.slot, run.repeat, run.scenario = slot, repeat, "anchor"
        return run


async def redis_reachable(url: str) -> bool:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        return True
    except Exception as exc:
        print(f"Redis is unreachable at {url}: {exc}", file=sys.stderr)
        return False
    finally:
        await client.aclose()


# -- output -----------------------------------------------------------------------------------

def _f(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.0f} %"


def _mb(kb: Sequence[float]) -> str:
    return " + ".join(f"{v / 1024:.0f}" for v in kb) if kb else "-"


def _who(run: Run) -> str:
    name = run.server
    if run.server == "tocsin" and run.nodes > 1:
        name = f"tocsin, {run.nodes} nodes"
    if run.batch_size > 1:
        name += f", batched x{run.batch_size}"  # as the publish benchmark names its batches
    return f"{name} ({run.note})" if run.note else name


def what_if(args: argparse.Namespace) -> str:
    parts = (["gc.freeze()"] if args.gc_freeze else []) + (
        [f"gc.set_threshold({args.gc_threshold})"] if args.gc_threshold else [])
    return " + ".join(parts)


def _build(run: Run) -> str:
    return run.build_label or run.build or "-"


def _table(runs: Sequence[Run], head: list[str], summary: Callable[[Sequence[Run]], dict[str, str]],
           figures: Callable[[Run], dict[str, float]], shared: Sequence[str], compare: bool,
           spread: tuple[str, str] | None = None, ranged: Sequence[str] = ()) -> str:
    """A row per slot (compare.compared_table): the median over its runs (`summary`), or the
    run's own figures when it ran once. With `compare`, a build column after the server's,
    each slot's baseline row, current row and ratios (their median over the pairs of runs, with
    the min-max of RANGED_COLUMNS when there are several). With --repeat, `spread` =
    (column, after) adds that column (its min-max, from `summary`) after the column `after`.
    `ranged`: the columns whose ratios show their min-max (default RANGED_COLUMNS)."""
    if spread is not None and any(r.repeat > 1 for r in runs):
        column, after = spread
        head = [*head[:head.index(after) + 1], column, *head[head.index(after) + 1:]]
    if compare:
        head = [*head[:1], "build", *head[1:]]
    return compared_table(runs, head, summary=lambda rs: summary(rs) | {"build": _build(rs[0])},
                          figures=figures, shared=shared, key=lambda r: r.key,
                          is_baseline=lambda r: r.build == BASELINE, repeat=lambda r: r.repeat,
                          ranged=ranged or RANGED_COLUMNS)


def _med(runs: Sequence[Run], figure: Callable[[Run], float | None]) -> float:
    return median(figure(r) for r in runs)


def _rate_of(runs: Sequence[Run], count: Callable[[Run], float | None],
             window: Callable[[Run], float]) -> float:
    return _med(runs, lambda r: (c / window(r)) if (c := count(r)) is not None else None)


SPREAD = "delivered/s min-max"
CPU_PER_1K = "server CPU s per 1,000 deliveries"
RANGED_COLUMNS = ("delivered/s", "p99 ms", CPU_PER_1K)  # ratios with a min-max, with --repeat
# The batched table's names for the columns it shares with the single one: what counts
# notifications says so, beside the POSTs it also shows, and what counts POSTs says that.
BATCHED_COLUMNS = {
    "rate/s": "rate notifications/s", "attempted/s": "attempted notifications/s",
    "acked/s": "acked notifications/s", "delivered/s": "delivered notifications/s",
    SPREAD: "delivered notifications/s min-max", "late sends": "late POSTs",
    "HTTP errors": "HTTP errors (POSTs)",
}
POSTS_ASKED = "POSTs/s asked"
POSTS_ACKED = "POSTs/s acked"


def delivery_table(runs: Sequence[Run], *, compare: bool = False, batched: bool = False) -> str:
    """The delivery table of `runs`; `batched`: of batched runs, its columns named for what
    they count (BATCHED_COLUMNS) and the POSTs/s asked and acknowledged beside them."""
    head = ["server", "db", "users", "rate/s", "attempted/s", "acked/s", "delivered/s", "lost",
            "dup", "misrouted", "late sends", "p50 ms", "p90 ms", "p99 ms", "max ms",
            "HTTP errors"]
    if batched:
        head.insert(head.index("rate/s") + 1, POSTS_ASKED)
        head.insert(head.index("acked/s") + 1, POSTS_ACKED)

    def summary(runs: Sequence[Run]) -> dict[str, str]:
        """Medians; lost, dup, misrouted and HTTP errors summed, so that one bad run shows."""
        r = runs[0]
        pubs = [(run.published, run.tally) for run in runs]
        published = [p for p, _ in pubs if p is not None]
        tallies = [t for _, t in pubs if t is not None]
        errors: Counter[str] = Counter()
        for p in published:
            errors.update(http_errors(p, r.server))

        def acked_window(run: Run) -> float:
            p = run.published
            assert p is not None
            return max((p.last_ack or p.t0) - p.t0, 1e-9)

        def lat(q: float) -> float:
            return _med(runs, lambda run: livegen.percentile(run.latencies, q))

        return {
            "server": f"{_who(r)}{' (profiled)' if r.profiled else ''}", "db": r.backend,
            "users": f"{r.users:,}", "rate/s": f"{r.rate:,.0f}",
            POSTS_ASKED: f"{r.rate / r.batch_size:,.0f}",
            "attempted/s": f"{_rate_of(runs, _attempted, lambda run: run.publish_window):,.0f}",
            "acked/s": f"{_rate_of(runs, _acked, acked_window):,.0f}",
            POSTS_ACKED: f"{_rate_of(runs, _posts_acked, acked_window):,.0f}",
            "delivered/s": f"{_med(runs, lambda run: run.delivered_per_second):,.0f}",
            SPREAD: format_spread((run.delivered_per_second for run in runs),
                                  lambda v: f"{v:,.0f}"),
            "lost": str(sum(t.lost() for t in tallies)),
            "dup": str(sum(t.duplicates for t in tallies)),
            "misrouted": str(sum(t.misrouted for t in tallies)),
            "late sends": f"{median(p.late_sends for p in published):,.0f}",
            "p50 ms": _f(lat(50)), "p90 ms": _f(lat(90)), "p99 ms": _f(lat(99)),
            "max ms": _f(_med(runs, lambda run: run.latencies[-1] if run.latencies else None)),
            "HTTP errors": ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0",
        }

    def figures(r: Run) -> dict[str, float]:
        return {"delivered/s": r.delivered_per_second,
                "p50 ms": livegen.percentile(r.latencies, 50),
                "p99 ms": livegen.percentile(r.latencies, 99)}

    names = BATCHED_COLUMNS if batched else {}

    def name(column: str) -> str:
        return names.get(column, column)

    measured = [r for r in runs if r.published is not None and r.tally is not None]
    return _table(measured, [name(c) for c in head],
                  lambda rs: {name(k): v for k, v in summary(rs).items()},
                  lambda r: {name(k): v for k, v in figures(r).items()},
                  [name(c) for c in ("server", "db", "users", "rate/s")], compare,
                  spread=(name(SPREAD), name("delivered/s")),
                  ranged=[name(c) for c in RANGED_COLUMNS])


def _attempted(run: Run) -> float | None:
    return run.published.attempted if run.published is not None else None


def _acked(run: Run) -> float | None:
    return run.published.acked if run.published is not None else None


def _posts_acked(run: Run) -> float | None:
    return run.published.posts_acked if run.published is not None else None


def _rate_cell(run: Run) -> str:
    """The asked rate in notifications/s, and for batches the POSTs/s it takes."""
    cell = f"{run.rate:,.0f}"
    if run.batch_size > 1:
        cell += f" ({run.rate / run.batch_size:,.0f} POSTs)"
    return cell


def resource_table(runs: Sequence[Run], *, compare: bool = False) -> str:
    head = ["server", "db", "rate/s", "server CPU", "PostgreSQL CPU", "Redis CPU", "load-gen CPU",
            "other CPU", "machine busy", "RSS before MB", "KB per idle conn", "RSS after MB",
            "peak RSS MB"]
    if compare:
        head.insert(head.index("server CPU") + 1, CPU_PER_1K)

    def summary(runs: Sequence[Run]) -> dict[str, str]:
        r = runs[0]
        cpus = [run.cpu for run in runs if run.cpu is not None]

        def cpu(figure: Callable[[CpuShare], float | None]) -> str:
            return _pct(median(figure(c) for c in cpus))

        servers = medians_each([c.servers for c in cpus])
        return {
            "server": _who(r), "db": r.backend, "rate/s": _rate_cell(r),
            "server CPU": " + ".join(_pct(s) for s in servers) if len(servers) > 1
            else cpu(lambda c: c.server),
            CPU_PER_1K: _f(_med(runs, lambda run: run.server_cpu_per_thousand), 2),
            "PostgreSQL CPU": cpu(lambda c: c.postgres),
            "Redis CPU": cpu(lambda c: c.redis) if r.nodes > 1 else "-",
            "load-gen CPU": cpu(lambda c: c.loadgen), "other CPU": cpu(lambda c: c.other),
            "machine busy": cpu(lambda c: c.machine),
            "RSS before MB": _mb(medians_each([run.rss_before_kb for run in runs])),
            "KB per idle conn": _f(_med(runs, lambda run: run.kb_per_connection)),
            "RSS after MB": _mb(medians_each([run.rss_after_kb for run in runs])),
            "peak RSS MB": _mb(medians_each([run.hwm_kb for run in runs])),
        }

    def figures(r: Run) -> dict[str, float]:
        return {CPU_PER_1K: r.server_cpu_per_thousand, "KB per idle conn": r.kb_per_connection}

    measured = [r for r in runs if r.cpu is not None]
    return _table(measured, head, summary, figures, ("server", "db", "rate/s"), compare)


def idle_table(runs: Sequence[Run], *, compare: bool = False) -> str:
    head = ["server", "users connected", "connect s", "RSS before MB", "RSS connected MB",
            "KB per connection", "RSS after all closed MB"]

    def summary(runs: Sequence[Run]) -> dict[str, str]:
        return {
            "server": _who(runs[0]),
            "users connected": f"{_med(runs, lambda r: len(r.connected.clients)):,.0f}",
            "connect s": f"{_med(runs, lambda r: r.connected.seconds):.1f}",
            "RSS before MB": _mb(medians_each([r.rss_before_kb for r in runs])),
            "RSS connected MB": _mb(medians_each([r.rss_connected_kb for r in runs])),
            "KB per connection": _f(_med(runs, lambda r: r.kb_per_connection)),
            "RSS after all closed MB": _mb(medians_each([r.rss_after_close_kb for r in runs])),
        }

    def figures(r: Run) -> dict[str, float]:
        return {"KB per connection": r.kb_per_connection}

    return _table(runs, head, summary, figures, ("server",), compare)


def _sep(head: str) -> str:
    return "|" + "---|" * (head.count("|") - 1)


DB_NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite"}
RATIO_CAPTION = ("Tocsin / seed-node at the same asked rates, one node each, single publishes; "
                 "seed-node always on PostgreSQL, Tocsin on the database its row names:")


def _tocsin_singles(runs: Sequence[Run]) -> dict[tuple[str, float], list[Run]]:
    """The working tree's one-node single-publish runs that published, by (database, rate)."""
    found: dict[tuple[str, float], list[Run]] = {}
    for r in runs:
        if (r.server == "tocsin" and r.nodes == 1 and r.batch_size == 1 and r.cpu
                and r.build != BASELINE):
            found.setdefault((r.backend, r.rate), []).append(r)
    return found


def _anchor_runs(runs: Sequence[Run]) -> dict[float, list[Run]]:
    found: dict[float, list[Run]] = {}
    for r in runs:
        if r.server != "tocsin" and r.cpu:
            found.setdefault(r.rate, []).append(r)
    return found


def _db_order(backend: str) -> tuple[bool, str]:
    return backend != "postgres", backend  # PostgreSQL first: the anchor's own database


def ratio_table(runs: Sequence[Run]) -> str:
    """Tocsin (one node, the working tree's build, single publishes) against the anchor at the
    rates both were run at, a row per Tocsin database (the anchor's is always PostgreSQL); with
    --repeat, ratios of the medians over each one's runs at that rate."""
    tocsin = _tocsin_singles(runs)
    anchor = _anchor_runs(runs)
    common = sorted((k for k in tocsin if k[1] in anchor), key=lambda k: (_db_order(k[0]), k[1]))
    if not common:
        return ""
    head = ("| Tocsin on | rate/s | delivered/s Tocsin / anchor | p50 Tocsin / anchor "
            "| p99 Tocsin / anchor | server CPU Tocsin / anchor | PostgreSQL CPU Tocsin / anchor |")
    lines = [head, _sep(head)]

    def ratio(a: float | None, b: float | None) -> str:
        if a is None or b is None or not b or a != a or b != b:
            return "-"
        return f"{a / b:.2f}"

    def delivered(runs: Sequence[Run]) -> float:
        return _med(runs, lambda run: run.delivered_per_second)

    def lat(runs: Sequence[Run], q: float) -> float:
        return _med(runs, lambda run: livegen.percentile(run.latencies, q))

    def server_cpu(runs: Sequence[Run]) -> float:
        return _med(runs, lambda run: run.cpu.server if run.cpu else None)

    def postgres_cpu(runs: Sequence[Run]) -> float:
        return _med(runs, lambda run: run.cpu.postgres if run.cpu else None)

    for backend, rate in common:
        t, a = tocsin[backend, rate], anchor[rate]
        lines.append(
            f"| {DB_NAMES.get(backend, backend)} | {rate:,.0f} "
            f"| {ratio(delivered(t), delivered(a))} "
            f"| {ratio(lat(t, 50), lat(a, 50))} | {ratio(lat(t, 99), lat(a, 99))} "
            f"| {ratio(server_cpu(t), server_cpu(a))} "
            f"| {ratio(postgres_cpu(t), postgres_cpu(a))} |")
    return "\n".join(lines)


GOAL_CAPTION = ("Against the goals: Tocsin's highest delivered/s over its asked rates (batched: "
                f"the highest whose p99 is within {BATCHED_P99_GOAL_MS:g} ms), over seed-node's "
                "single-publish saturation on PostgreSQL (its highest delivered/s); medians over "
                "the runs of a rate, the working tree's build:")


@dataclass(frozen=True, slots=True)
class Best:
    """A series' rate with the most delivered/s (medians over the runs of each rate)."""

    rate: float
    delivered: float
    p99: float

    @property
    def kept_up(self) -> bool:
        """Delivered what was asked: the server was not saturated at its best rate, so it may
        deliver more when asked for more."""
        return self.delivered >= KEPT_UP * self.rate

    def cell(self, *, p99: bool = False) -> str:
        text = f"{self.delivered:,.0f}/s at {self.rate:,.0f}/s asked"
        if p99:
            text += f", p99 {self.p99:,.0f} ms"
        return text + (" (kept up: may do more)" if self.kept_up else "")


def best(by_rate: dict[float, list[Run]], p99_limit: float | None = None) -> Best | None:
    """The rate of `by_rate` whose median delivered/s is the highest, among those whose median
    p99 is within `p99_limit` ms when given; None when there is none."""
    found: Best | None = None
    for rate, at_rate in by_rate.items():
        delivered = _med(at_rate, lambda run: run.delivered_per_second)
        p99 = _med(at_rate, lambda run: livegen.percentile(run.latencies, 99))
        if p99_limit is not None and not p99 <= p99_limit:
            continue
        if delivered == delivered and (found is None or delivered > found.delivered):
            found = Best(rate, delivered, p99)
    return found


def _lowest_p99(by_rate: dict[float, list[Run]]) -> str:
    """How near the goal's p99 the runs came: their lowest median p99, and at which rate."""
    p99s = {rate: _med(at_rate, lambda run: livegen.percentile(run.latencies, 99))
            for rate, at_rate in by_rate.items()}
    finite = {rate: p99 for rate, p99 in p99s.items() if p99 == p99}
    if not finite:
        return ""
    rate = min(finite, key=finite.__getitem__)
    return f" (lowest: {finite[rate]:,.0f} ms at {rate:,.0f}/s asked)"


def goal_table(runs: Sequence[Run]) -> str:
    """Tocsin's single publishes on each database and its batches against the goals, in
    multiples of the anchor's single-publish saturation; empty without the anchor or without
    any of those runs."""
    anchor = best(_anchor_runs(runs))
    if anchor is None:
        return ""
    groups: dict[tuple[int, str], dict[float, list[Run]]] = {}
    for (backend, rate), at_rate in _tocsin_singles(runs).items():
        groups.setdefault((1, backend), {})[rate] = at_rate
    for r in runs:
        if (r.server == "tocsin" and r.nodes == 1 and r.batch_size > 1 and r.cpu
                and r.build != BASELINE):
            groups.setdefault((r.batch_size, r.backend), {}).setdefault(r.rate, []).append(r)
    if not groups:
        return ""
    head = ["figure", "Tocsin", "seed-node saturation (PostgreSQL)", "Tocsin / seed-node", "goal"]
    rows: list[list[str]] = []
    for size, backend in sorted(groups, key=lambda k: (k[0] > 1, _db_order(k[1]), k[0])):
        db = DB_NAMES.get(backend, backend)
        if size > 1:
            figure = (f"batched x{size}, {db}: highest delivered/s with p99 ≤ "
                      f"{BATCHED_P99_GOAL_MS:g} ms")
            mine, goal = best(groups[size, backend], BATCHED_P99_GOAL_MS), GOAL_BATCHED
        else:
            figure = f"single publishes, {db}: highest delivered/s"
            mine = best(groups[size, backend])
            goal = GOAL_SINGLE_POSTGRES if backend == "postgres" else GOAL_SINGLE_SQLITE
        shown = mine.cell(p99=size > 1) if mine is not None else (
            f"no rate with p99 ≤ {BATCHED_P99_GOAL_MS:g} ms" + _lowest_p99(groups[size, backend]))
        times = (f"{mine.delivered / anchor.delivered:.2f}x" if mine and anchor.delivered
                 else "-")
        rows.append([figure, shown, anchor.cell(), times, f"≥ {goal:g}x"])
    return markdown(head, rows)


def json_line(run: Run, args: argparse.Namespace, machine: dict[str, str],
              builds: Sequence[Build] = ()) -> str:
    """One run as a JSON line (json_record())."""
    return json.dumps(json_record(run, args, machine, builds))


def json_record(run: Run, args: argparse.Namespace, machine: dict[str, str],
                builds: Sequence[Build] = ()) -> dict[str, Any]:
    """One run's record, as the JSON lines give it and bench/plot.py draws it; `builds`: what
    was measured (the current build, and any baseline)."""
    p, t, c = run.published, run.tally, run.cpu
    lat = run.latencies
    commits = {build.name: build.commit for build in builds}
    record: dict[str, Any] = {
        "label": run.label, "scenario": run.scenario or None, "server": run.server,
        "backend": run.backend, "nodes": run.nodes, "batch_size": run.batch_size,
        "build": run.build or None, "build_commit": commits.get(run.build),
        "slot": run.key, "repeat": run.repeat, "repeats": args.repeat,
        "baseline_commit": commits.get(BASELINE), "current_commit": commits.get(CURRENT),
        "users": run.users, "rate": run.rate, "seconds": args.seconds,
        "concurrency": args.concurrency, "connected": len(run.connected.clients),
        "connect_s": round(run.connected.seconds, 2),
        "connect_errors": dict(run.connected.errors),
        "rss_kb_before": run.rss_before_kb, "rss_kb_connected": run.rss_connected_kb,
        "kb_per_conn": round(run.kb_per_connection, 1), "rss_kb_after": run.rss_after_kb,
        "server_hwm_kb": run.hwm_kb, "rss_kb_after_disconnect": run.rss_after_close_kb,
        "loadgen_rss_kb": run.loadgen_rss_kb, "profiled": run.profiled, "machine": machine,
        "gc": run.gc, "what_if": run.note,
    }
    if p is not None and t is not None:
        record.update({
            "attempted": p.attempted, "acked": p.acked, "delivered": t.delivered,
            "posts_attempted": p.posts_attempted, "posts_acked": p.posts_acked,
            "posts_per_s_asked": round(run.rate / run.batch_size, 1),
            "posts_attempted_per_s": round(p.posts_attempted / run.publish_window, 1),
            "lost": t.lost(), "delivered_not_acked": t.delivered_not_acked(),
            "duplicates": t.duplicates, "misrouted": t.misrouted, "foreign_events": t.foreign,
            "unread_count_events": t.unread_events, "other_events": dict(t.other_events),
            "http_status": dict(p.statuses), "disconnects": t.disconnects,
            "cross_node": p.cross_node, "stored": run.stored,
            "publish_window_s": round(run.publish_window, 3),
            "deliver_window_s": round(run.deliver_window, 3),
            "attempted_per_s": round(p.attempted / run.publish_window, 1),
            "delivered_per_s": round(t.delivered / run.deliver_window, 1),
            "late_sends_gt10ms": p.late_sends, "max_send_lag_ms": round(p.max_lag_ms, 1),
            "lat_ms": {q: round(livegen.percentile(lat, v), 2)
                       for q, v in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
            | {"mean": round(sum(lat) / len(lat), 2) if lat else None},
            "post_rtt_ms": {"p50": round(livegen.percentile(sorted(p.rtt_ms), 50), 2),
                            "p99": round(livegen.percentile(sorted(p.rtt_ms), 99), 2)},
            "grace_used_s": round(run.grace_used, 2),
            "server_cpu_s_per_1000_delivered": round(run.server_cpu_per_thousand, 4),
        })
    if c is not None:
        record["cpu"] = {"window_s": round(c.window, 2), "servers_pct": c.servers,
                         "server_pct": c.server, "postgres_pct": c.postgres,
                         "redis_pct": c.redis, "loadgen_pct": c.loadgen,
                         "other_pct": c.other, "machine_busy_pct": c.machine}
    return record


# -- main -------------------------------------------------------------------------------------

def _loopback_url(value: str) -> str:
    host = urlsplit(value).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise argparse.ArgumentTypeError(f"the benchmark only talks to loopback hosts, got "
                                         f"{host!r}")
    return value


def _rates(value: str) -> list[float]:
    try:
        rates = [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of rates, got {value!r}"
                                         ) from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be > 0")
    return rates


def _scenarios(value: str) -> list[str]:
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(SCENARIOS)}")
    return chosen


def _png_path(value: str) -> Path:
    # bench/plot.py, and matplotlib with it, only when a figure is asked for, and then at once:
    # a missing matplotlib stops the benchmark before its runs rather than after them.
    try:
        from plot import png_path
    except ImportError as exc:
        raise argparse.ArgumentTypeError(f"drawing needs matplotlib (the dev extra): {exc}"
                                         ) from None
    return png_path(value)


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Live delivery of a real Tocsin server.")
    parser.add_argument("--scenarios", type=_scenarios,
                        default=["single", "two-node", "idle"],
                        help=f"comma list of {', '.join(SCENARIOS)} "
                             "(default single,two-node,idle)")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres",
                        help="Tocsin's database (default postgres; the anchor always uses "
                             "PostgreSQL)")
    parser.add_argument("--users", type=_positive_int, default=1000,
                        help="connected users while publishing (default 1000)")
    parser.add_argument("--rates", type=_rates,
                        help="single-node rates, notifications/s, of single and single-sqlite "
                             "(default 200,500,1000)")
    parser.add_argument("--two-node-rates", type=_rates, help="default 500,1000")
    parser.add_argument("--batched-rates", type=_rates,
                        help="rates of the batched scenario, in notifications/s, not POSTs/s "
                             "(default 5000,10000,20000,40000: 50 to 400 POSTs/s of 100 users)")
    parser.add_argument("--batch-size", type=_positive_int, default=100,
                        help="users per POST in the batched scenario, distinct, all connected "
                             f"(default 100; at most --users and {MAX_BATCH_USERS}, the "
                             "server's TOCSIN_MAX_BATCH_USERS)")
    parser.add_argument("--anchor-rates", type=_rates, help="default: --rates")
    parser.add_argument("--idle-users", type=_positive_int,
                        help="users connected in the idle scenario (default 5000)")
    parser.add_argument("--seconds", type=_positive_float,
                        help="publishing seconds per run (default 15)")
    parser.add_argument("--grace", type=_positive_float, default=5.0,
                        help="seconds to wait for late deliveries after the last answer "
                             "(default 5)")
    parser.add_argument("--concurrency", type=_positive_int, default=32,
                        help="HTTP connections the publisher uses (default 32)")
    parser.add_argument("--quiet-wait", type=float, default=30.0,
                        help="before each run, wait up to this many seconds for the machine "
                             f"to be quiet (under {QUIET_BUSY:g} %% of a core busy; default 30)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the targets")
    parser.add_argument("--quick", action="store_true",
                        help="5 s runs at 500/s (batched: 5000 notifications/s), 1000 idle "
                             "users, unless given")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also append the raw results to PATH as JSON lines")
    parser.add_argument("--plot", type=_png_path, metavar="PATH",
                        help="at the end, draw delivered/s and p99 latency against the asked "
                             "rate, a line per server and build, into the PNG file PATH "
                             "(bench/plot.py; needs matplotlib, in the dev extra)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy on every server during each publishing window")
    parser.add_argument("--gc-stats", action="store_true",
                        help="run Tocsin through bench/gcstats.py and report the share of its "
                             "CPU spent in garbage collection over each window")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="what-if (implies --gc-stats): gc.freeze() in each server once it "
                             "is up, before clients connect")
    parser.add_argument("--gc-threshold", metavar="A,B,C",
                        help="what-if (implies --gc-stats): gc.set_threshold(A, B, C) in each "
                             "server")
    parser.add_argument("--anchor-dir", type=Path, default=DEFAULT_ANCHOR_DIR,
                        help="the seed-node anchor (copied and `npm ci`-ed unless it has "
                             "node_modules; default %(default)s)")
    parser.add_argument("--pg-dsn", type=_loopback_url,
                        default=os.environ.get("TOCSIN_BENCH_PG_DSN", DEFAULT_PG_ADMIN_DSN),
                        help="admin DSN to create and drop databases (default %(default)s)")
    parser.add_argument("--redis-url", type=_loopback_url, default=DEFAULT_REDIS_URL,
                        help="the bus of the two-node scenario (default %(default)s)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the Tocsin scenarios on this git revision (commit, tag, "
                             "branch), built once into .bench-cache/<commit>/, alternately with "
                             "the working tree, and print both with their ratios")
    parser.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                        help="run every scenario and rate N times, each on fresh servers and a "
                             "fresh database, and print the medians, their spread and (with "
                             "--baseline) the median of the per-pair ratios (default 1; 5 for a "
                             "verdict)")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 5.0 if args.quick else 15.0
    if args.rates is None:
        args.rates = [500.0] if args.quick else [200.0, 500.0, 1000.0]
    if args.two_node_rates is None:
        args.two_node_rates = [500.0] if args.quick else [500.0, 1000.0]
    if args.batched_rates is None:
        args.batched_rates = [5000.0] if args.quick else [5000.0, 10000.0, 20000.0, 40000.0]
    if "batched" in args.scenarios and args.batch_size > min(args.users, MAX_BATCH_USERS):
        parser.error(f"--batch-size {args.batch_size}: a POST names distinct connected users, "
                     f"at most --users ({args.users}) and {MAX_BATCH_USERS}")
    if args.anchor_rates is None:
        args.anchor_rates = args.rates
    if args.idle_users is None:
        args.idle_users = 1000 if args.quick else 5000
    if args.gc_freeze or args.gc_threshold:
        args.gc_stats = True
    return args


def raise_fd_limit(needed: int) -> None:
    """Open files for `needed` sockets here and in the servers (they inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 1024
    if soft >= want:
        return
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < want:
        print(f"warning: open files limited to {new}; {needed} connections may not fit",
              file=sys.stderr)


async def amain(args: argparse.Namespace) -> int:
    raise_fd_limit(max(args.users, args.idle_users if "idle" in args.scenarios else 0))
    scenarios = list(args.scenarios)
    pg_version = await postgres_version(args.pg_dsn)
    if pg_version is None:
        if args.backend == "postgres":
            print("PostgreSQL is unreachable: using SQLite.", file=sys.stderr)
            args.backend = "sqlite"
        if "anchor" in scenarios:
            print("the anchor needs PostgreSQL: skipped.", file=sys.stderr)
            scenarios.remove("anchor")
    if "two-node" in scenarios and not await redis_reachable(args.redis_url):
        print("two-node scenario skipped: it needs Redis.", file=sys.stderr)
        scenarios.remove("two-node")
    if "anchor" in scenarios:
        version = node_version()
        if version is None or int(version.lstrip("v").split(".")[0]) < 20:
            print(f"the anchor needs Node.js >= 20 (found {version}): skipped.",
                  file=sys.stderr)
            scenarios.remove("anchor")
    if args.profile is not None:
        py_spy()
        args.profile.mkdir(parents=True, exist_ok=True)
    machine = machine_info(pg_version)
    machine["node"] = node_version() or "none"
    builds = builds_to_measure(args.baseline)
    compare = len(builds) > 1

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="tocsin-live-") as tmp:
        workdir = Path(tmp)
        app_dir: Path | None = None
        for repeat in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"[live] run {repeat} of {args.repeat}", file=sys.stderr)
            turn = repeat - 1  # each slot's builds take turns going first
            if "single" in scenarios:
                for rate, build in interleave(args.rates, builds, turn):
                    runs.append(await tocsin_run(args, workdir, build, nodes=1, users=args.users,
                                                 rate=rate, slot=f"single-r{rate:g}",
                                                 compare=compare, repeat=repeat,
                                                 scenario="single"))
            if "single-sqlite" in scenarios:
                for rate, build in interleave(args.rates, builds, turn):
                    runs.append(await tocsin_run(args, workdir, build, nodes=1, users=args.users,
                                                 rate=rate, slot=f"single-sqlite-r{rate:g}",
                                                 compare=compare, repeat=repeat,
                                                 scenario="single-sqlite", backend="sqlite"))
            if "two-node" in scenarios:
                for rate, build in interleave(args.two_node_rates, builds, turn):
                    runs.append(await tocsin_run(args, workdir, build, nodes=2, users=args.users,
                                                 rate=rate, slot=f"two-node-r{rate:g}",
                                                 compare=compare, repeat=repeat,
                                                 scenario="two-node"))
            if "batched" in scenarios:
                size = args.batch_size
                for rate, build in interleave(args.batched_rates, builds, turn):
                    runs.append(await tocsin_run(args, workdir, build, nodes=1, users=args.users,
                                                 rate=rate, slot=f"batched-x{size}-r{rate:g}",
                                                 compare=compare, repeat=repeat,
                                                 scenario="batched", batch_size=size))
            if "idle" in scenarios:
                for users, build in interleave([args.idle_users], builds, turn):
                    runs.append(await tocsin_run(args, workdir, build, nodes=1, users=users,
                                                 rate=0, slot=f"idle-u{users}", compare=compare,
                                                 repeat=repeat, scenario="idle"))
            if "anchor" in scenarios:
                app_dir = app_dir or prepare_anchor(args.anchor_dir, workdir)
                for rate in args.anchor_rates:
                    runs.append(await anchor_run(args, workdir, app_dir, users=args.users,
                                                 rate=rate, slot=f"anchor-r{rate:g}",
                                                 repeat=repeat))
                if "idle" in scenarios:
                    runs.append(await anchor_run(args, workdir, app_dir, users=args.idle_users,
                                                 rate=0, slot=f"anchor-idle-u{args.idle_users}",
                                                 repeat=repeat))

    records = [json_record(run, args, machine, builds) for run in runs]
    if args.json is not None:
        with args.json.open("a") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
    print_report(runs, args, machine, builds)
    if args.plot is not None:
        from plot import draw  # parse_args() made sure it imports

        try:
            draw(records, args.plot)
            print(f"\nFigure: {args.plot}", file=sys.stderr)
        except ValueError as exc:  # only idle runs: no rate to draw against
            print(f"\nno figure: {exc}", file=sys.stderr)
    return _verdict(runs)


def print_report(runs: Sequence[Run], args: argparse.Namespace, machine: dict[str, str],
                 builds: Sequence[Build] = ()) -> None:
    compare = len(builds) > 1
    print()
    print(machine_line(machine))
    if compare:
        print("Builds: " + "; ".join(build.describe() for build in builds)
              + ". Each Tocsin scenario and rate ran on both, alternately (ABBA), each run on "
              "fresh servers and a fresh database; ratios are current / baseline (the anchor's, "
              "below, are the current build's).")
    if args.repeat > 1:
        print(repeat_line(args.repeat, compare))
    print(f"Load: one POST per notification to a random connected user, paced, "
          f"{args.concurrency} HTTP connections, {args.seconds:g} s per run, grace "
          f"{args.grace:g} s. CPU: % of one core over the publishing window and its "
          "deliveries (200 % = both cores).")
    busy = [r for r in runs if r.published is not None]
    idle = [r for r in runs if r.published is None and r.rate == 0]
    singles = [r for r in busy if r.batch_size == 1]
    batched = [r for r in busy if r.batch_size > 1]
    if singles:
        print()
        print(delivery_table(singles, compare=compare))
    if batched:
        sizes = " or ".join(f"{n:,}" for n in sorted({r.batch_size for r in batched}))
        print()
        print(f"Batched: one POST with user_ids of {sizes} distinct connected users per that "
              "many notifications, paced in notifications/s; rate, attempted, acked and "
              "delivered count notifications, latency is per notification, late POSTs and "
              "HTTP errors count POSTs.")
        print(delivery_table(batched, compare=compare, batched=True))
    if busy:
        print()
        print(resource_table(busy, compare=compare))
    if idle:
        print()
        print(idle_table(idle, compare=compare))
    ratios = ratio_table(runs)
    if ratios:
        print()
        print(RATIO_CAPTION)
        print(ratios)
    goals = goal_table(runs)
    if goals:
        print()
        print(GOAL_CAPTION)
        print(goals)


def repeat_line(repeats: int, compare: bool) -> str:
    """What the rows mean when every scenario and rate ran `repeats` times."""
    line = (f"Repeated: every scenario and rate ran {repeats} times, all of them once and then "
            "again, each run on fresh servers and a fresh database"
            + (", each rate's builds taking turns going first" if compare else "")
            + f"; a row gives the median of each figure over its {repeats} runs (lost, dup, "
            f"misrouted, HTTP errors: their total) and {SPREAD} their spread")
    if compare:
        line += (f"; a ratio row, the median of the {repeats} ratios of a baseline run to the "
                 "current run beside it, with their min-max for delivered/s, p99 and CPU per "
                 "1,000")
    return line + "; Tocsin / anchor: ratios of the medians."


def _verdict(runs: Sequence[Run]) -> int:
    disturbed = [r for r in runs if r.cpu is not None and r.cpu.other > OTHER_CPU_WARNING]
    if disturbed:
        print(f"\nwarning: other processes used more than {OTHER_CPU_WARNING:.0f} % of a core "
              "during " + ", ".join(f"{r.label} ({r.cpu.other:.0f} %)" for r in disturbed
                                    if r.cpu is not None)
              + ": those figures are disturbed.", file=sys.stderr)
    skewed = uneven(runs, key=lambda r: (r.key, r.repeat),
                    is_baseline=lambda r: r.build == BASELINE,
                    other=lambda r: r.cpu.other if r.cpu is not None else None,
                    limit=OTHER_CPU_WARNING)
    if skewed:
        print(f"\nwarning: the rest of the machine used more than {OTHER_CPU_WARNING:.0f} % of a "
              "core more during one build's run than during the other's, for "
              + ", ".join(f"{c.label} ({b.cpu.other:.0f} % baseline, {c.cpu.other:.0f} % current)"
                          for b, c in skewed if b.cpu is not None and c.cpu is not None)
              + ": those ratios measure that as much as the code; run again.", file=sys.stderr)
    for run in runs:
        if run.server_log:
            print(f"\n[{run.label}] the server logged:\n{run.server_log}", file=sys.stderr)
    return report_problems("LIVE BENCHMARK PROBLEMS",
                           (f"{r.label}: {p}" for r in runs for p in r.problems()))


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
