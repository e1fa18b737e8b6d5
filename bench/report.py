"""What every benchmark prints around its results: the machine they were measured on, and, loudly,
what made a run not valid."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping


def report_problems(title: str, problems: Iterable[str]) -> int:
    """Print the problems loudly to stderr; the exit code: 1 if there were any, else 0."""
    listed = list(dict.fromkeys(problems))
    if not listed:
        return 0
    banner = "!" * 78
    print(f"\n{banner}\n{title}:", file=sys.stderr)
    for problem in listed:
        print(f"  - {problem}", file=sys.stderr)
    print(banner, file=sys.stderr)
    return 1


def machine_line(machine: Mapping[str, str]) -> str:
    """The line that heads a benchmark's results: where and on what commit they were measured
    (publish.machine_info(), plus `node` for the live benchmark). A figure drawn from recorded
    results is titled with it too, so it reads the same as the tables."""
    node = f"Node.js {machine['node']}; " if "node" in machine else ""
    return (f"Machine: {machine['nproc']} cores, {machine['cpu']}; Python {machine['python']}; "
            f"PostgreSQL {machine['postgresql']}; {node}{machine['date']}; "
            f"commit {machine['commit']}")
