"""What every benchmark prints when a run is not valid."""

from __future__ import annotations

import sys
from collections.abc import Iterable


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
