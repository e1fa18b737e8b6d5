"""The pure part of measuring two builds side by side (`--baseline REV`), each run once or
`--repeat N` times: in which order the runs go, which runs belong together (in a row, in a pair),
their medians and spreads, and the current / baseline ratios.

Nothing here measures or starts anything, so tests/unit/test_bench_report.py checks all of it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")
B = TypeVar("B")
T = TypeVar("T")

BASELINE = "baseline"
CURRENT = "current"
RATIO_LABEL = "current / baseline"
RANGE = "-"  # between the two ends of a range, as in docs/benchmarks.md: `410-520`


def interleave(slots: Sequence[S], builds: Sequence[B], offset: int = 0) -> list[tuple[S, B]]:
    """Every slot (a scenario, a rate) once for each build, the builds alternating ABBA: in the
    given order for the 1st, 3rd… slot, reversed for the 2nd, 4th…, so that a drift over the run
    (the machine warming up, a neighbour starting) falls on both builds alike. An odd `offset`
    starts reversed: repetition r of a run passes r, so that from one repetition to the next each
    slot's builds take turns going first."""
    order: list[tuple[S, B]] = []
    for index, slot in enumerate(slots):
        turn = builds if (index + offset) % 2 == 0 else list(reversed(builds))
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


@dataclass(frozen=True, slots=True)
class Repetitions(Generic[T]):
    """The runs of one slot (a scenario, a rate): each build's in repetition order, and the
    (baseline, current) pairs, one per repetition that both builds ran."""

    baseline: tuple[T, ...]
    current: tuple[T, ...]
    pairs: tuple[tuple[T, T], ...]


def repetitions(items: Iterable[T], key: Callable[[T], Hashable],
                repeat: Callable[[T], int], is_baseline: Callable[[T], bool]
                ) -> list[Repetitions[T]]:
    """The items grouped by key, in the order the keys first appear. Within a group each build's
    items are sorted by their repetition index (`repeat`), and the baseline's and the current
    build's items of the same index make a pair: the two runs that interleave() ran one right
    after the other. An index that one build lacks gives no pair. ValueError if two items of one
    key and build have the same index."""
    groups: dict[Hashable, tuple[dict[int, T], dict[int, T]]] = {}
    for item in items:
        sides = groups.setdefault(key(item), ({}, {}))
        side = sides[0] if is_baseline(item) else sides[1]
        index = repeat(item)
        if index in side:
            raise ValueError(f"two runs of {key(item)!r} for one build with repetition {index}")
        side[index] = item
    found: list[Repetitions[T]] = []
    for base, current in groups.values():
        found.append(Repetitions(
            baseline=tuple(base[i] for i in sorted(base)),
            current=tuple(current[i] for i in sorted(current)),
            pairs=tuple((base[i], current[i]) for i in sorted(base.keys() & current.keys())),
        ))
    return found


def median(values: Iterable[float | None]) -> float:
    """The median of the finite values (the mean of the middle two when they are even in
    number); None, NaN and infinities are left out; NaN when nothing is left."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def medians_each(lists: Sequence[Sequence[float]]) -> list[float]:
    """The median of each position across lists (one figure per server node, say): as long as
    the shortest list."""
    length = min((len(values) for values in lists), default=0)
    return [median(values[i] for values in lists) for i in range(length)]


def format_spread(values: Iterable[float | None], fmt: Callable[[float], str]) -> str:
    """`min-max` of the finite values, each shown by `fmt`; one value (or all equal) alone, and
    `-` when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "-"
    low, high = fmt(min(finite)), fmt(max(finite))
    return low if low == high else f"{low}{RANGE}{high}"


def pair_ratios(pairs: Iterable[tuple[T, T]], figure: Callable[[T], float | None]
                ) -> list[float]:
    """current / baseline of `figure` for each (baseline, current) pair that has one (see
    ratio())."""
    found = (ratio(figure(current), figure(base)) for base, current in pairs)
    return [value for value in found if value is not None]


def _getter(column: str) -> Callable[[Mapping[str, float]], float | None]:
    return lambda figures: figures.get(column)


def format_ratios(ratios: Sequence[float], *, ranged: bool = False) -> str:
    """The median of per-pair ratios, `-` when there are none; with `ranged` and more than one
    ratio, followed by their min-max: `1.04 (0.91-1.12)`."""
    if not ratios:
        return "-"
    shown = format_ratio(median(ratios))
    if ranged and len(ratios) > 1:
        shown += f" ({format_ratio(min(ratios))}{RANGE}{format_ratio(max(ratios))})"
    return shown


def compared_table(items: Iterable[T], head: Sequence[str], *,
                   summary: Callable[[Sequence[T]], Mapping[str, str]],
                   figures: Callable[[T], Mapping[str, float]], shared: Sequence[str],
                   key: Callable[[T], Hashable], is_baseline: Callable[[T], bool],
                   repeat: Callable[[T], int] = lambda _: 1, ranged: Collection[str] = (),
                   label_column: str = "build") -> str:
    """A table of one or two builds whose runs may be repeated. For each key: a row for the
    baseline's runs, one for the other build's (`summary` gives a row's cell for every column of
    `head` from its runs, in repetition order: for one run, that run's figures; for several,
    their medians, say), then, when both builds ran it, a row with RATIO_LABEL in `label_column`,
    the `shared` cells of the current build's row, and under each column that `figures` gives a
    value for, the median over the pairs of repetitions (repetitions()) of the pair's current /
    baseline, with its min-max in the columns of `ranged` when there are several pairs."""
    rows: list[list[str]] = []
    for group in repetitions(items, key, repeat, is_baseline):
        shown = [summary(runs) for runs in (group.baseline, group.current) if runs]
        rows += [[cells[column] for column in head] for cells in shown]
        if group.pairs:
            fixed = {column: shown[-1][column] for column in shared} | {label_column: RATIO_LABEL}
            rows.append(ratio_row(head, fixed, group.pairs, figures, ranged))
    return markdown(head, rows)


def ratio_row(head: Sequence[str], fixed: Mapping[str, str],
              pairs: Sequence[tuple[T, T]], figures: Callable[[T], Mapping[str, float]],
              ranged: Collection[str] = ()) -> list[str]:
    """The row that follows a baseline row and a current row: `fixed` cells by column (what the
    two rows share, and RATIO_LABEL); in each column that `figures` gives for the current build,
    the median of the pairs' current / baseline (format_ratios(), with its min-max in the columns
    of `ranged`); empty cells elsewhere."""
    measured = [(figures(base), figures(current)) for base, current in pairs]
    columns = set(measured[0][1]) if measured else set()
    cells: list[str] = []
    for column in head:
        if column in fixed:
            cells.append(fixed[column])
        elif column in columns:
            ratios = pair_ratios(measured, _getter(column))
            cells.append(format_ratios(ratios, ranged=column in ranged))
        else:
            cells.append("")
    return cells
