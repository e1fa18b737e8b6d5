"""The pure part of measuring two builds side by side (`--baseline REV`): in which order the runs
go, which rows of a table belong together, and the current / baseline ratios.

Nothing here measures or starts anything, so tests/unit/test_bench_report.py checks all of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

S = TypeVar("S")
B = TypeVar("B")
T = TypeVar("T")

BASELINE = "baseline"
CURRENT = "current"
RATIO_LABEL = "current / baseline"


def interleave(slots: Sequence[S], builds: Sequence[B]) -> list[tuple[S, B]]:
    """Every slot (a scenario, a rate) once for each build, the builds alternating ABBA: in the
    given order for the 1st, 3rd… slot, reversed for the 2nd, 4th…, so that a drift over the run
    (the machine warming up, a neighbour starting) falls on both builds alike."""
    order: list[tuple[S, B]] = []
    for index, slot in enumerate(slots):
        turn = builds if index % 2 == 0 else list(reversed(builds))
        order.extend((slot, build) for build in turn)
    return order


def side_by_side(items: Iterable[T], key: Callable[[T], Hashable],
                 is_baseline: Callable[[T], bool]) -> list[tuple[T | None, T | None]]:
    """(baseline, other) pairs of the items with the same key, in the order the keys first
    appear; a key measured for one build only gives a pair with None on the other side. An item
    whose key is already taken on its side starts a pair of its own."""
    pairs: list[list[T | None]] = []
    open_pairs: dict[Hashable, list[T | None]] = {}
    for item in items:
        side = 0 if is_baseline(item) else 1
        pair = open_pairs.get(key(item))
        if pair is None or pair[side] is not None:
            pair = [None, None]
            pairs.append(pair)
            open_pairs[key(item)] = pair
        pair[side] = item
    return [(pair[0], pair[1]) for pair in pairs]


def uneven(items: Iterable[T], key: Callable[[T], Hashable], is_baseline: Callable[[T], bool],
           other: Callable[[T], float | None], limit: float) -> list[tuple[T, T]]:
    """The (baseline, current) pairs whose `other` figures (the CPU the rest of the machine used
    during each window, in % of one core) differ by more than `limit`: a neighbour that loaded
    one build's window more than the other's skews their ratios, whatever the code did."""
    skewed: list[tuple[T, T]] = []
    for base, current in side_by_side(items, key, is_baseline):
        if base is None or current is None:
            continue
        a, b = other(base), other(current)
        if a is not None and b is not None and abs(a - b) > limit:
            skewed.append((base, current))
    return skewed


def ratio(current: float | None, baseline: float | None) -> float | None:
    """current / baseline, or None when either is missing, not a number, or baseline is 0."""
    if current is None or baseline is None or not baseline:
        return None
    value = current / baseline
    return value if math.isfinite(value) else None


def format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cpu_per_thousand(cpu_percent: float | None, window_seconds: float, count: int) -> float:
    """CPU seconds per 1,000 events (the same figure as CPU milliseconds per event), from a CPU
    share in % of one core over a window of `window_seconds` in which `count` events happened;
    NaN when nothing happened or the share is unknown."""
    if cpu_percent is None or count <= 0 or not math.isfinite(cpu_percent):
        return float("nan")
    return cpu_percent / 100 * window_seconds / count * 1000


def markdown(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the header, its separator, the rows (each as long as the header)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if len(row) != len(head):
            raise ValueError(f"a row of {len(row)} cells under {len(head)} columns")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def compared_table(items: Iterable[T], head: Sequence[str], *,
                   cells: Callable[[T], Mapping[str, str]],
                   figures: Callable[[T], Mapping[str, float]], shared: Sequence[str],
                   key: Callable[[T], Hashable], is_baseline: Callable[[T], bool],
                   label_column: str = "build") -> str:
    """A table of two builds: for each key, the baseline's row, the other build's row, then
    (when both are there) a row with RATIO_LABEL in `label_column`, the `shared` cells of the
    two rows, and current / baseline under each column that `figures` gives a value for.
    `cells` gives an item's cell for every column of `head`."""
    rows: list[list[str]] = []
    for base, current in side_by_side(items, key, is_baseline):
        rows += [[cells(item)[column] for column in head]
                 for item in (base, current) if item is not None]
        if base is not None and current is not None:
            shown = cells(current)
            fixed = {column: shown[column] for column in shared} | {label_column: RATIO_LABEL}
            rows.append(ratio_row(head, fixed, figures(current), figures(base)))
    return markdown(head, rows)


def ratio_row(head: Sequence[str], fixed: Mapping[str, str], current: Mapping[str, float],
              baseline: Mapping[str, float]) -> list[str]:
    """The row that follows a baseline row and a current row: `fixed` cells by column (what the
    two rows share, and RATIO_LABEL), current / baseline in each column of `current`, and empty
    cells elsewhere."""
    cells: list[str] = []
    for column in head:
        if column in fixed:
            cells.append(fixed[column])
        elif column in current:
            cells.append(format_ratio(ratio(current[column], baseline.get(column))))
        else:
            cells.append("")
    return cells
