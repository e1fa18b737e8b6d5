"""CPU time from /proc: of the server, of this load generator, of PostgreSQL, of the machine.

On a 2-core machine the load generator, the server and the database share the same cores, so a
throughput figure means little without knowing who used the CPU. Each reading here is a counter;
two snapshots and the wall time between them give a percentage of one core (200 % = both cores).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def process_cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU seconds of one process (all its threads), from /proc/<pid>/stat; with
    `reaped_children`, plus that of its children that have exited and been waited for."""
    raw = (_PROC / str(pid) / "stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: fields 16 and 17
    return ticks / _TICKS


def self_cpu_seconds() -> float:
    """User + system CPU seconds of this process (the load generator), all threads."""
    times = os.times()
    return times.user + times.system


def _is_client_backend(title: str) -> bool:
    # "postgres: 15/main: user db 127.0.0.1(5432) idle"; background workers have no client
    return "(" in title or "[local]" in title


def postgres_cpu_seconds(database: str | None = None) -> float:
    """CPU seconds of the PostgreSQL processes serving `database`: its client backends, plus the
    shared background processes (WAL writer, checkpointer, ...). None: every `postgres` process.

    A backend that exits between two readings takes its time with it, and the server's pool
    does close connections under load (overflow connections are not kept); so the postmaster's
    reaped children are counted too. Those include backends of other databases that exited
    meanwhile: on a machine where other work uses PostgreSQL, this over-counts (and the "other"
    CPU column shows that the machine was not quiet).
    """
    total = 0.0
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            if (database is not None and _is_client_backend(title)
                    and f" {database} " not in title):
                continue  # another database's client: not ours
            postmaster = not title.startswith("postgres:")
            total += process_cpu_seconds(int(entry.name), reaped_children=postmaster)
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return total


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from the first line of /proc/stat."""
    first = (_PROC / "stat").read_text().splitlines()[0].split()
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    total = sum(values)
    return (total - idle) / _TICKS, total / _TICKS


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    wall: float
    server: float
    loadgen: float
    postgres: float
    machine_busy: float
    machine_total: float

    @classmethod
    def take(cls, wall: float, server_pid: int, *, postgres_database: str | None
             ) -> CpuSnapshot:
        """`postgres_database`: the database whose PostgreSQL processes to count, or None."""
        busy, total = machine_busy_seconds()
        return cls(
            wall=wall,
            server=process_cpu_seconds(server_pid),
            loadgen=self_cpu_seconds(),
            postgres=postgres_cpu_seconds(postgres_database) if postgres_database else 0.0,
            machine_busy=busy,
            machine_total=total,
        )


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """Percent of one core over a window; `machine` is the busy share of all cores (0-100 %);
    `other` is what the rest of the machine used (other processes, the kernel, this profile's
    py-spy), in percent of one core."""

    server: float
    loadgen: float
    postgres: float | None
    machine: float
    other: float

    @classmethod
    def between(cls, before: CpuSnapshot, after: CpuSnapshot, *, with_postgres: bool
                ) -> CpuUsage:
        wall = max(after.wall - before.wall, 1e-9)
        total = max(after.machine_total - before.machine_total, 1e-9)
        cores = os.cpu_count() or 1
        server = 100 * (after.server - before.server) / wall
        loadgen = 100 * (after.loadgen - before.loadgen) / wall
        postgres = 100 * (after.postgres - before.postgres) / wall
        machine = 100 * (after.machine_busy - before.machine_busy) / total
        return cls(
            server=server,
            loadgen=loadgen,
            postgres=postgres if with_postgres else None,
            machine=machine,
            other=max(0.0, machine * cores - server - loadgen - postgres),
        )


def memory_kb(pid: int | None = None) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KB, from /proc/<pid>/status; None: this process."""
    status = (_PROC / (str(pid) if pid is not None else "self") / "status").read_text()
    found = {"VmRSS": 0, "VmHWM": 0}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in found:
            found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def command_cpu_seconds(comm: str) -> float:
    """CPU seconds of every process whose command name (/proc/<pid>/comm) is `comm`, e.g.
    `redis-server`. A process that starts or exits between two readings skews the difference."""
    total = 0.0
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == comm:
                total += process_cpu_seconds(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return total
