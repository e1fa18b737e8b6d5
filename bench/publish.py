"""Publish throughput of a real `tocsin serve` process, on SQLite and on PostgreSQL.

For each backend: a fresh database, a server on a free loopback port, then two closed-loop
scenarios against POST /v1/notifications:

- single:  one `user_id` per request, users taken round-robin;
- batched: `user_ids` of --batch-size users per request (consecutive slices of the users).

Each runs --warmup seconds unmeasured, then --seconds measured. Reported per scenario:
requests/s, notifications/s, latency p50/p90/p99, errors by status (must be 0), and the CPU
used over the measured window by the server, this load generator, PostgreSQL and the whole
machine. The stored row count is checked against the 202s received.

With --baseline REV, a build of that commit (bench/baseline.py) gets a server and a database of
its own beside the working tree's, and every scenario runs on both, alternately (ABBA); the table
shows the two side by side with their ratios, current / baseline.

With --repeat N, the whole measurement runs N times, each time on fresh servers and databases
(with --baseline, still alternately, each build going first in turn): each table row then gives
the median of each figure over the N runs (errors: their total), `req/s min-max` their spread,
and the ratio row the median of the N ratios of a baseline run to the current run beside it, with
their min-max for req/s, p99 and the server CPU per 1,000 notifications. The JSON lines keep one
line per run, with its `repeat` (1 to N).

    .venv/bin/python bench/publish.py                 # what `make bench` runs
    .venv/bin/python bench/publish.py --quick --backends sqlite
    .venv/bin/python bench/publish.py --quick --baseline main  # the working tree against main
    .venv/bin/python bench/publish.py --baseline main --repeat 5  # a before/after verdict
    .venv/bin/python bench/publish.py --profile /tmp/prof  # py-spy on the server, per scenario
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flame
import loadgen
from baseline import Build, builds_to_measure
from compare import (
    BASELINE,
    CURRENT,
    compared_table,
    cpu_per_thousand,
    format_spread,
    interleave,
    median,
    uneven,
)
from loadgen import Outcome, Scenario
from report import report_problems
from server import (
    DEFAULT_PG_ADMIN_DSN,
    Database,
    Server,
    postgres_database,
    postgres_version,
    running_server,
    sqlite_database,
)

PUBLISH_PATH = "/v1/notifications"
BACKENDS = ("sqlite", "postgres")
OTHER_CPU_WARNING = 15.0  # % of one core used by the rest of the machine during a window


@dataclass(slots=True)
class Row:
    backend: str
    outcome: Outcome
    stored_ok: bool
    stored_detail: str
    profiled: bool
    build: str = CURRENT  # or BASELINE
    build_label: str = ""  # e.g. `baseline 1a2b3c4d5e`
    repeat: int = 1  # which run of --repeat N (1 to N)
    repeats: int = 1  # N

    @property
    def title(self) -> str:
        """How messages name it: `sqlite single`, `sqlite single (baseline)`, with --repeat
        `sqlite single (baseline, run 2 of 5)`."""
        notes = ([self.build] if self.build != CURRENT else []) + (
            [f"run {self.repeat} of {self.repeats}"] if self.repeats > 1 else [])
        suffix = f" ({', '.join(notes)})" if notes else ""
        return f"{self.backend} {self.outcome.scenario}{suffix}"

    @property
    def server_cpu_per_thousand(self) -> float:
        """Server CPU seconds per 1,000 notifications stored in the measured window."""
        o = self.outcome
        return cpu_per_thousand(o.cpu.server, o.window_seconds, o.notifications)


# -- scenarios --------------------------------------------------------------------------------

def user_ids(count: int) -> list[str]:
    return [f"bench-user-{i:06d}" for i in range(count)]


def _body(audience: dict[str, Any], n: int) -> bytes:
    return json.dumps({
        **audience,
        "type": "bench.ping",
        "title": "Benchmark notification",
        "message": "Sent by bench/publish.py",
        "data": {"n": n, "source": "bench"},
    }, separators=(",", ":")).encode()


def single_scenario(users: int) -> Scenario:
    bodies = [_body({"user_id": uid}, n) for n, uid in enumerate(user_ids(users))]
    return Scenario(name="single", path=PUBLISH_PATH, bodies=bodies, notifications_per_request=1)


def batched_scenario(users: int, batch_size: int) -> Scenario:
    """Consecutive slices of `batch_size` users; the last one wraps round to the first users."""
    ids = user_ids(users)
    bodies = [
        _body({"user_ids": [ids[(start + j) % users] for j in range(batch_size)]}, n)
        for n, start in enumerate(range(0, users, batch_size))
    ]
    return Scenario(name=f"batched x{batch_size}", path=PUBLISH_PATH, bodies=bodies,
                    notifications_per_request=batch_size)


# -- machine ----------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_revision() -> str:
    """The commit measured, `+dirty` when src/ has uncommitted changes; `unknown` outside git."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=here,
                               check=True, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def machine_info(pg_version: str | None) -> dict[str, str]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": source_revision(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "postgresql": pg_version or "not measured",
        "kernel": platform.release(),
    }


# -- one backend ------------------------------------------------------------------------------

def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


async def profile_window(pid: int, delay: float, seconds: float, out: Path) -> None:
    """py-spy on the server for the measured window only, as collapsed stacks in `out`."""
    await asyncio.sleep(delay)
    process = await asyncio.create_subprocess_exec(
        py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", "200", "--nonblocking", "--threads", "--format", "raw", "--output", str(out),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), seconds + 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        print(f"py-spy failed ({process.returncode}): {stderr.decode(errors='replace')}",
              file=sys.stderr)


@asynccontextmanager
async def open_database(backend: str, args: argparse.Namespace, workdir: Path
                        ) -> AsyncIterator[Database]:
    if backend == "sqlite":
        async with sqlite_database(workdir) as database:
            yield database
    else:
        async with postgres_database(args.pg_dsn) as database:
            yield database


async def bench_backend(backend: str, args: argparse.Namespace, workdir: Path,
                        builds: Sequence[Build], repeat: int = 1) -> list[Row]:
    """Each build gets a database and a server of its own, started before anything is measured
    and kept for all the scenarios; the scenarios run on the builds in turn (ABBA). `repeat`
    (1 to --repeat) is which run this is: each one starts afresh, and an even one starts the
    ABBA order reversed, so that each scenario's builds take turns going first."""
    scenarios = [single_scenario(args.users), batched_scenario(args.users, args.batch_size)]
    rows: list[Row] = []
    async with AsyncExitStack() as stack:
        targets: dict[str, tuple[Database, Server]] = {}
        for build in builds:
            home = workdir / f"{backend}-{build.name}-{repeat}"
            home.mkdir()
            database = await stack.enter_async_context(open_database(backend, args, home))
            server = await stack.enter_async_context(
                running_server(database, home, python=build.python))
            targets[build.name] = (database, server)
            print(f"[{backend}] {build.label}: server pid {server.pid} on {server.base_url}"
                  + (f" (run {repeat} of {args.repeat})" if args.repeat > 1 else ""),
                  file=sys.stderr)
        for scenario, build in interleave(scenarios, builds, offset=repeat - 1):
            database, server = targets[build.name]
            rows.append(await bench_scenario(scenario, database, server, args,
                                             build if len(builds) > 1 else None, repeat))
    return rows


async def bench_scenario(scenario: Scenario, database: Database, server: Server,
                         args: argparse.Namespace, build: Build | None, repeat: int = 1) -> Row:
    """One scenario on one server; `build` names it when builds are compared, `repeat` which
    run of --repeat it is."""
    repeated = args.repeat > 1
    tag = (f"[{database.backend}{f' {build.name}' if build else ''}"
           f"{f' run {repeat}/{args.repeat}' if repeated else ''}]")
    before = await database.count_notifications()
    profile_task: asyncio.Task[None] | None = None
    profile_out: Path | None = None
    if args.profile is not None:
        slug = scenario.name.split()[0]
        suffix = f"-{build.name}" if build is not None and build.name != CURRENT else ""
        suffix += f"-rep{repeat}" if repeated else ""
        profile_out = args.profile / f"{database.backend}-{slug}{suffix}.txt"
        profile_task = asyncio.create_task(
            profile_window(server.pid, args.warmup, args.seconds, profile_out))
    print(f"{tag} {scenario.name}: {args.warmup:g} s warm-up + "
          f"{args.seconds:g} s, {args.concurrency} connections", file=sys.stderr)
    outcome = await loadgen.run(
        server.base_url, server.api_key, scenario,
        concurrency=args.concurrency, warmup=args.warmup, seconds=args.seconds,
        server_pid=server.pid, postgres_database=database.postgres_name,
    )
    if profile_task is not None and profile_out is not None:
        await profile_task
        if profile_out.exists():
            print(flame.report(flame.load(profile_out), title=(
                f"py-spy: {database.backend} {scenario.name} ({profile_out})")))
    after = await database.count_notifications()
    expected = outcome.total_ok_requests * scenario.notifications_per_request
    stored = after - before
    row = Row(
        backend=database.backend, outcome=outcome, stored_ok=stored == expected,
        stored_detail=f"{stored} rows stored for {expected} acknowledged",
        profiled=args.profile is not None,
        build=build.name if build else CURRENT, build_label=build.label if build else "",
        repeat=repeat, repeats=args.repeat,
    )
    print(f"{tag} {scenario.name}: "
          f"{outcome.requests_per_second:,.0f} req/s, "
          f"{outcome.notifications_per_second:,.0f} notifications/s, "
          f"p50 {outcome.percentile(50):.1f} ms, errors {sum(outcome.errors.values())}, "
          f"{row.stored_detail}", file=sys.stderr)
    return row


# -- output -----------------------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.0f} %"


def _errors(errors: Counter[str]) -> str:
    if not errors:
        return "0"
    return ", ".join(f"{key}: {count}" for key, count in sorted(errors.items()))


CPU_PER_1K = "server CPU s per 1,000 notifications"
RATIO_COLUMNS = ("req/s", "notifications/s", "p50 ms", "p99 ms", CPU_PER_1K)
RANGED_COLUMNS = ("req/s", "p99 ms", CPU_PER_1K)  # whose ratio rows give a min-max with --repeat
SPREAD = "req/s min-max"


def _head(compare: bool, repeated: bool = False) -> list[str]:
    head = ["backend", "scenario", "conns", "req/s", "notifications/s", "p50 ms", "p90 ms",
            "p99 ms", "errors", "server CPU", "load-gen CPU", "PostgreSQL CPU", "other CPU",
            "machine busy"]
    if compare:
        head.insert(head.index("scenario") + 1, "build")
        head.insert(head.index("server CPU") + 1, CPU_PER_1K)
    if repeated:
        head.insert(head.index("req/s") + 1, SPREAD)
    return head


def _figures(row: Row) -> dict[str, float]:
    """The headline figures of a row, by column: what the ratio row divides."""
    o = row.outcome
    return {"req/s": o.requests_per_second, "notifications/s": o.notifications_per_second,
            "p50 ms": o.percentile(50), "p99 ms": o.percentile(99),
            CPU_PER_1K: row.server_cpu_per_thousand}


def _summary(rows: Sequence[Row]) -> dict[str, str]:
    """The cells of the row of one scenario and build, from its runs: each figure is the median
    over them (for one run, its own), the errors are their total (so that one bad run shows),
    and SPREAD is the min-max of req/s."""
    first = rows[0]
    outcomes = [row.outcome for row in rows]

    def med(figure: Callable[[Outcome], float | None]) -> float:
        return median(figure(o) for o in outcomes)

    return {
        "backend": f"{first.backend}{' (profiled)' if first.profiled else ''}",
        "scenario": first.outcome.scenario, "build": first.build_label or first.build,
        "conns": str(first.outcome.concurrency),
        "req/s": f"{med(lambda o: o.requests_per_second):,.0f}",
        SPREAD: format_spread((o.requests_per_second for o in outcomes), lambda v: f"{v:,.0f}"),
        "notifications/s": f"{med(lambda o: o.notifications_per_second):,.0f}",
        "p50 ms": f"{med(lambda o: o.percentile(50)):.1f}",
        "p90 ms": f"{med(lambda o: o.percentile(90)):.1f}",
        "p99 ms": f"{med(lambda o: o.percentile(99)):.1f}",
        "errors": _errors(sum((o.errors for o in outcomes), Counter())),
        "server CPU": _pct(med(lambda o: o.cpu.server)),
        CPU_PER_1K: _per_thousand(median(row.server_cpu_per_thousand for row in rows)),
        "load-gen CPU": _pct(med(lambda o: o.cpu.loadgen)),
        "PostgreSQL CPU": _pct(med(lambda o: o.cpu.postgres)),
        "other CPU": _pct(med(lambda o: o.cpu.other)),
        "machine busy": _pct(med(lambda o: o.cpu.machine)),
    }


def _per_thousand(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def markdown_table(rows: Sequence[Row], *, compare: bool = False) -> str:
    """The results, a row per backend and scenario; with `compare`, a build column and the
    server CPU per 1,000 notifications, each scenario's baseline row then its current row, then
    their ratios (current / baseline) in the columns of RATIO_COLUMNS. Rows of several runs
    (--repeat) give medians and a SPREAD column, and their ratios are the medians of the ratios
    of each pair of runs, with their min-max in RANGED_COLUMNS."""
    repeated = any(row.repeat > 1 for row in rows)
    return compared_table(rows, _head(compare, repeated), summary=_summary, figures=_figures,
                          shared=("backend", "scenario"),
                          key=lambda r: (r.backend, r.outcome.scenario),
                          is_baseline=lambda r: r.build == BASELINE, repeat=lambda r: r.repeat,
                          ranged=RANGED_COLUMNS)


def json_line(row: Row, args: argparse.Namespace, machine: dict[str, str],
              builds: Sequence[Build] = ()) -> str:
    """One row as JSON; `builds`: what was measured (the current build, and any baseline)."""
    o = row.outcome
    commits = {build.name: build.commit for build in builds}
    return json.dumps({
        "backend": row.backend,
        "scenario": o.scenario,
        "build": row.build,
        "build_commit": commits.get(row.build),
        "repeat": row.repeat,
        "repeats": row.repeats,
        "baseline_commit": commits.get(BASELINE),
        "current_commit": commits.get(CURRENT),
        "concurrency": o.concurrency,
        "users": args.users,
        "batch_size": args.batch_size if o.scenario.startswith("batched") else 1,
        "warmup_seconds": o.warmup_seconds,
        "window_seconds": round(o.window_seconds, 4),
        "requests": o.requests,
        "notifications": o.notifications,
        "requests_per_second": round(o.requests_per_second, 2),
        "notifications_per_second": round(o.notifications_per_second, 2),
        "latency_ms": {
            "p50": o.percentile(50), "p90": o.percentile(90), "p99": o.percentile(99),
            "p99.9": o.percentile(99.9), "max": max(o.latencies_ms, default=None),
            "mean": sum(o.latencies_ms) / len(o.latencies_ms) if o.latencies_ms else None,
        },
        "errors": dict(o.errors),
        "ok_requests_whole_run": o.total_ok_requests,
        "stored_matches_acknowledged": row.stored_ok,
        "stored_detail": row.stored_detail,
        "cpu_percent_of_one_core": {
            "server": o.cpu.server, "loadgen": o.cpu.loadgen, "postgres": o.cpu.postgres,
            "other": o.cpu.other,
        },
        "machine_busy_percent": o.cpu.machine,
        "server_cpu_seconds_per_1000_notifications": row.server_cpu_per_thousand,
        "stopped_by_request_cap": o.stopped_by_cap,
        "profiled": row.profiled,
        "machine": machine,
    })


# -- main -------------------------------------------------------------------------------------

def _loopback_dsn(dsn: str) -> str:
    host = urlsplit(dsn).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(
            f"the benchmark only talks to loopback hosts, got {host!r}")
    return dsn


def _backends(value: str) -> list[str]:
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(BACKENDS)}")
    return chosen


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(value: str) -> int | float:
        number = kind(value)
        if number <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
        return number

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Publish throughput of a real Tocsin server (SQLite and PostgreSQL).")
    parser.add_argument("--backends", type=_backends, default=list(BACKENDS),
                        help="comma list of sqlite,postgres (default: both)")
    parser.add_argument("--seconds", type=_positive(float),
                        help="measured seconds per scenario (default 10; 3 with --quick)")
    parser.add_argument("--warmup", type=_positive(float),
                        help="unmeasured warm-up seconds per scenario (default 2; 1 with --quick)")
    parser.add_argument("--concurrency", type=_positive(int), default=32,
                        help="concurrent connections (default 32)")
    parser.add_argument("--users", type=_positive(int), default=1000,
                        help="distinct users, taken round-robin (default 1000)")
    parser.add_argument("--batch-size", type=_positive(int), default=100,
                        help="users per request in the batched scenario (default 100)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also append the raw results to PATH as JSON lines")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 3 s measured after 1 s warm-up, unless given")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run py-spy on the server during each measured window and write "
                             "collapsed stacks to DIR (its figures are then not comparable)")
    parser.add_argument("--pg-dsn", type=_loopback_dsn,
                        default=os.environ.get("TOCSIN_BENCH_PG_DSN", DEFAULT_PG_ADMIN_DSN),
                        help="admin DSN used to create and drop the benchmark database "
                             "[TOCSIN_BENCH_PG_DSN] (default %(default)s)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure this git revision (commit, tag, branch), built once "
                             "into .bench-cache/<commit>/, alternately with the working tree, "
                             "and print both with their ratios")
    parser.add_argument("--repeat", type=_positive(int), default=1, metavar="N",
                        help="run everything N times, on fresh servers and databases each time, "
                             "and print the medians, their spread and (with --baseline) the "
                             "median of the per-pair ratios (default 1; 5 for a verdict)")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    if args.batch_size > args.users:
        parser.error("--batch-size cannot exceed --users (a batch names each user once)")
    return args


async def amain(args: argparse.Namespace) -> int:
    pg_version = None
    backends = list(args.backends)
    if "postgres" in backends:
        pg_version = await postgres_version(args.pg_dsn)
        if pg_version is None:
            print("PostgreSQL is unreachable: benchmarking SQLite only.", file=sys.stderr)
            backends.remove("postgres")
            if not backends:
                backends = ["sqlite"]
    machine = machine_info(pg_version)
    if args.profile is not None:
        py_spy()  # fail before starting anything if it is missing
        args.profile.mkdir(parents=True, exist_ok=True)
    builds = builds_to_measure(args.baseline)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tocsin-bench-") as tmp:
        workdir = Path(tmp)
        for repeat in range(1, args.repeat + 1):
            for backend in backends:
                rows += await bench_backend(backend, args, workdir, builds, repeat)

    if args.json is not None:
        with args.json.open("a") as handle:
            for row in rows:
                handle.write(json_line(row, args, machine, builds) + "\n")

    compare = len(builds) > 1
    print()
    print(f"Machine: {machine['nproc']} cores, {machine['cpu']}; Python {machine['python']}; "
          f"PostgreSQL {machine['postgresql']}; {machine['date']}; commit {machine['commit']}")
    if compare:
        print(builds_line(builds))
    if args.repeat > 1:
        print(repeat_line(args.repeat, compare))
    print(f"Load: {args.concurrency} connections, {args.users} users round-robin, batches of "
          f"{args.batch_size}; {args.warmup:g} s warm-up + {args.seconds:g} s measured per "
          "scenario. CPU columns: % of one core over the measured window (200 % = both cores); "
          "other: the rest of the machine (other processes, kernel, py-spy); machine busy: "
          "% of all cores.")
    print()
    print(markdown_table(rows, compare=compare))

    disturbed = [row for row in rows if row.outcome.cpu.other > OTHER_CPU_WARNING]
    if disturbed:
        print(f"\nwarning: other processes used more than {OTHER_CPU_WARNING:.0f} % of a core "
              "during " + ", ".join(f"{r.title} "
                                     f"({r.outcome.cpu.other:.0f} %)" for r in disturbed)
              + ": those figures are disturbed; run again on a quiet machine.", file=sys.stderr)
    skewed = uneven(rows, key=lambda r: (r.backend, r.outcome.scenario, r.repeat),
                    is_baseline=lambda r: r.build == BASELINE, other=lambda r: r.outcome.cpu.other,
                    limit=OTHER_CPU_WARNING)
    if skewed:
        print(f"\nwarning: the rest of the machine used more than {OTHER_CPU_WARNING:.0f} % of a "
              "core more during one build's window than during the other's, for "
              + ", ".join(f"{b.backend} {b.outcome.scenario}"
                          f"{f' run {b.repeat}' if b.repeats > 1 else ''} "
                          f"({b.outcome.cpu.other:.0f} % baseline, {c.outcome.cpu.other:.0f} % "
                          "current)" for b, c in skewed)
              + ": those ratios measure that as much as the code; run again.", file=sys.stderr)
    return report_problems("BENCHMARK PROBLEMS — the figures above are not valid",
                           problems(rows))


def problems(rows: Sequence[Row]) -> list[str]:
    """What makes the figures invalid, run by run (whichever of --repeat's runs it is in)."""
    return [
        f"{row.title}: errors {_errors(row.outcome.errors)}"
        for row in rows if row.outcome.errors
    ] + [
        f"{row.title}: {row.stored_detail}"
        for row in rows if not row.stored_ok
    ] + [
        f"{row.title}: stopped by the request cap"
        for row in rows if row.outcome.stopped_by_cap
    ]


def builds_line(builds: Sequence[Build]) -> str:
    return ("Builds: " + "; ".join(build.describe() for build in builds)
            + ". Each scenario ran on both, alternately (ABBA), each build on a server and a "
            "database of its own; ratios are current / baseline.")


def repeat_line(repeats: int, compare: bool) -> str:
    """What the rows mean when every scenario ran `repeats` times."""
    line = (f"Repeated: everything ran {repeats} times, each time on fresh servers and databases"
            + (", each scenario's builds taking turns going first" if compare else "")
            + f"; a row gives the median of each figure over its {repeats} runs (errors: their "
            f"total) and {SPREAD} their spread")
    if compare:
        line += (f"; a ratio row, the median of the {repeats} ratios of a baseline run to the "
                 "current run beside it, with their min-max for req/s, p99 and CPU per 1,000")
    return line + "."


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
