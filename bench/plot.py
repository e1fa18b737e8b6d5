"""The live benchmark's figure: delivered/s and p99 publish→receipt latency against the rate asked,
a line per server (Tocsin; seed-node when the anchor ran; each build apart with --baseline, two
nodes apart from one), drawn from the per-run records that `bench/live.py --json` writes
(live.json_record()) into a PNG.

`bench/live.py --plot PATH` draws it at the end of its runs; this script draws it again from JSON
lines written earlier, one file or several onto one figure:

    .venv/bin/python bench/plot.py results.jsonl docs/live-bench.png
    .venv/bin/python bench/plot.py /tmp/live.jsonl \\
        ../shared/anchors/seed-node/baseline-20261125.jsonl /tmp/live-vs-anchor.png

A rate run several times (--repeat N) is drawn at the median of its runs (compare.median(), as in
the tables), with a bar from the lowest to the highest. Idle runs (nothing published) are left
out. The anchor's recorded lines name no server: records without one are drawn as --server
(default seed-node). Tocsin on SQLite (the single-sqlite scenario, or --backend sqlite) is a line
of its own. Batched runs (several users per POST), whose rates are ten times those of single
publishes and would flatten them on shared axes, get a second row of panels, in notifications/s
as the tables give them, with the POSTs/s on the top axis when every batch has the same size.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, ScalarFormatter

from baseline import Build
from compare import BASELINE, median
from report import machine_line

Record = Mapping[str, Any]

UNNAMED_SERVER = "seed-node"  # the anchor's recorded baseline-20261125.jsonl names no server
IDEAL_LABEL = "asked rate (everything delivered)"
HEADING = "Live delivery (bench/live.py)"
TITLE_WIDTH = 150  # characters per title line: the machine line is longer than the figure


@dataclass(frozen=True, slots=True)
class Point:
    """One rate of one series: the figures of each of its runs."""

    rate: float
    delivered: tuple[float, ...]  # delivered/s
    p99: tuple[float, ...]  # ms


@dataclass(frozen=True, slots=True)
class Series:
    """One line on each panel: the runs of one server, build and setup, by rate."""

    label: str
    points: tuple[Point, ...]
    batch_size: int = 1  # users per POST: above 1, drawn on the batched panels


def published(records: Iterable[Record]) -> list[Record]:
    """The records of runs that published something (an idle run has neither rate nor
    delivered/s to draw)."""
    return [r for r in records if (r.get("rate") or 0) > 0 and "delivered_per_s" in r]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def _p99(record: Record) -> float:
    latencies = record.get("lat_ms") or {}
    return _number(latencies.get("p99"))


@dataclass(frozen=True, slots=True, order=True)
class _Key:
    """What sets one series apart from another; the field order is the legend's order: Tocsin
    first, one node before two, the current build before the baseline."""

    not_tocsin: bool
    server: str
    batch_size: int
    nodes: int
    not_postgres: bool
    backend: str
    is_baseline: bool
    build: str
    build_commit: str
    what_if: str
    users: int
    http_client: str


def _key(record: Record, unnamed: str) -> _Key:
    server = record.get("server") or unnamed
    build = record.get("build") or ""
    backend = record.get("backend") or ""  # the anchor's recording names none: PostgreSQL
    return _Key(not_tocsin=server != "tocsin", server=server,
                batch_size=record.get("batch_size") or 1, nodes=record.get("nodes") or 1,
                not_postgres=backend not in ("", "postgres"), backend=backend,
                is_baseline=build == BASELINE, build=build,
                build_commit=record.get("build_commit") or "",
                what_if=record.get("what_if") or "", users=record.get("users") or 0,
                http_client=record.get("http_client") or "")


def _label(key: _Key, keys: Sequence[_Key]) -> str:
    """The server as the tables name it, then only what tells this series from the others: the
    build when more than one was measured, the users and the HTTP client when they differ."""
    label = "Tocsin" if key.server == "tocsin" else key.server
    if key.not_postgres:  # PostgreSQL is every other line's, the anchor's included
        label += ", SQLite" if key.backend == "sqlite" else f", {key.backend}"
    if key.nodes > 1:
        label += f", {key.nodes} nodes"
    if key.batch_size > 1:
        label += f", batched x{key.batch_size}"  # as the tables name it
    if key.what_if:
        label += f" ({key.what_if})"
    if key.build and len({k.build for k in keys if k.build}) > 1:
        # how the tables name a build: `baseline 1a2b3c4d5e`
        label += ", " + (Build(key.build, key.build_commit, python="").label
                         if key.build_commit else key.build)
    if len({k.users for k in keys}) > 1:
        label += f", {key.users:,} users"
    if key.http_client and len({k.http_client for k in keys}) > 1:
        label += f", {key.http_client}"
    return label


def series(records: Iterable[Record], *, unnamed: str = UNNAMED_SERVER) -> list[Series]:
    """The lines to draw from the records of runs that published something, each series' points
    by rate; `unnamed`: the server of records that name none."""
    runs: dict[_Key, dict[float, list[Record]]] = {}
    for record in published(records):
        by_rate = runs.setdefault(_key(record, unnamed), {})
        by_rate.setdefault(float(record["rate"]), []).append(record)
    keys = sorted(runs)
    return [Series(label=_label(key, keys), points=tuple(
        Point(rate=rate, delivered=tuple(_number(r["delivered_per_s"]) for r in at_rate),
              p99=tuple(_p99(r) for r in at_rate))
        for rate, at_rate in sorted(runs[key].items())), batch_size=key.batch_size)
        for key in keys]


def machine_lines(records: Iterable[Record]) -> list[str]:
    """The distinct machine lines of the records, in the order they first appear."""
    lines = (machine_line(r["machine"]) for r in records if r.get("machine"))
    return list(dict.fromkeys(lines))


def _summary(records: Sequence[Record], drawn: Sequence[Series]) -> str:
    """What every point shares, said once above the panels rather than in each label."""
    parts = []
    users = {r.get("users") for r in records}
    if len(users) == 1 and (only := users.pop()):
        parts.append(f"{only:,} users connected")
    counts = {len(p.delivered) for s in drawn for p in s.points}
    if max(counts, default=1) > 1:
        runs = f"{counts.pop()} runs" if len(counts) == 1 else "runs"
        parts.append(f"each point the median of its {runs}, its bar their min-max")
    return "; ".join(parts)


def _medians(points: Sequence[Point], figure: Callable[[Point], Sequence[float]]) -> list[float]:
    return [median(figure(p)) for p in points]


def _spread(ax: Axes, points: Sequence[Point], figure: Callable[[Point], Sequence[float]],
            color: str) -> None:
    """A bar from the lowest to the highest run at each rate run more than once (a bar rather
    than a band, so that a single rate shows it too)."""
    for point in points:
        finite = [v for v in figure(point) if math.isfinite(v)]
        if len(finite) > 1:
            ax.vlines(point.rate, min(finite), max(finite), colors=color, alpha=0.45,
                      linewidth=4)


def draw(records: Iterable[Record], out: Path, *, notes: Sequence[str] = (),
         unnamed: str = UNNAMED_SERVER) -> Figure:
    """Write the figure of the records (live.json_record(), or the JSON lines of --json) to
    `out` as a PNG, and return it: delivered/s against the asked rate on the left, p99 latency
    (log scale) on the right, a line per series(); single publishes on the first row, batched
    publishes on a row of their own when there are any (each row only when it has a line);
    titled with the records' machine lines and `notes`. ValueError when no record published
    anything."""
    records = list(records)
    drawn = series(records, unnamed=unnamed)
    if not drawn:
        raise ValueError("no run published anything: nothing to draw")
    singles = [s for s in drawn if s.batch_size == 1]
    batched = [s for s in drawn if s.batch_size > 1]
    rows = [row for row in (singles, batched) if row]
    figure = Figure(figsize=(13, 1.2 + 4.4 * len(rows)), layout="constrained")
    # The Agg canvas: a file only, no display nor GUI toolkit, and no pyplot state shared with
    # whatever else runs in this process.
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), 2, squeeze=False)
    for (delivered_ax, p99_ax), row in zip(axes, rows, strict=True):
        if row is batched:
            sizes = {s.batch_size for s in row}
            what = (f"batched publishes, {min(sizes):,} users per POST" if len(sizes) == 1
                    else "batched publishes")
            _panels(delivered_ax, p99_ax, row, f"Delivered, {what}", f"Latency, p99, {what}")
            if len(sizes) == 1:
                _posts_axis(delivered_ax, min(sizes))
                _posts_axis(p99_ax, min(sizes))
        else:
            _panels(delivered_ax, p99_ax, row, "Delivered", "Latency, p99")
    summary = _summary(published(records), drawn)
    lines = [*machine_lines(records), *notes, *([summary] if summary else [])]
    figure.suptitle("\n".join([HEADING, *(textwrap.fill(line, TITLE_WIDTH) for line in lines)]),
                    fontsize=9)
    figure.savefig(out, format="png", dpi=110)
    return figure


def _posts_axis(ax: Axes, size: int) -> None:
    """The asked POSTs/s of batches of `size` users on the top axis (the bottom one stays in
    notifications/s, as the tables)."""

    def posts(notifications: Any) -> Any:  # numpy arrays, as matplotlib passes them
        return notifications / size

    def notifications(posts: Any) -> Any:
        return posts * size

    top = ax.secondary_xaxis("top", functions=(posts, notifications))
    top.set_xlabel("asked POSTs/s", fontsize="small")


def _panels(delivered_ax: Axes, p99_ax: Axes, drawn: Sequence[Series], delivered_title: str,
            p99_title: str) -> None:
    """One row: delivered/s and p99 against the asked rate, a line per series."""
    for one in drawn:
        rates = [p.rate for p in one.points]
        (line,) = delivered_ax.plot(rates, _medians(one.points, lambda p: p.delivered),
                                    marker="o", label=one.label)
        color = to_hex(line.get_color())
        _spread(delivered_ax, one.points, lambda p: p.delivered, color)
        p99_ax.plot(rates, _medians(one.points, lambda p: p.p99), marker="o", color=color,
                    label=one.label)
        _spread(p99_ax, one.points, lambda p: p.p99, color)
    # Where a server keeps up, delivered/s is the rate asked: its line leaves this one where it
    # saturates.
    delivered_ax.axline((0, 0), slope=1, color="grey", linestyle="--", linewidth=1,
                        label=IDEAL_LABEL, zorder=1)
    delivered_ax.set_xlim(left=0)
    delivered_ax.set_ylim(bottom=0)
    delivered_ax.set_title(delivered_title)
    delivered_ax.set_ylabel("delivered (notifications/s)")
    p99_ax.set_yscale("log")
    # 1, 10, 100 and, where the axis spans two decades or less, some of 2-9 between them, rather
    # than powers of ten
    p99_ax.yaxis.set_major_formatter(ScalarFormatter())
    p99_ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    p99_ax.set_xlim(left=0)
    p99_ax.set_title(p99_title)
    p99_ax.set_ylabel("p99 publish → receipt latency (ms, log scale)")
    for ax in (delivered_ax, p99_ax):
        ax.set_xlabel("asked rate (notifications/s)")
        ax.grid(True, which="major", alpha=0.4)
        ax.legend(fontsize="small")
    p99_ax.grid(True, which="minor", alpha=0.15)


def load(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON lines file (blank lines skipped)."""
    records = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc})") from None
    return records


def png_path(value: str) -> Path:
    """An output path that ends in .png, in a directory that exists: so that a missing output
    argument cannot turn the last input file into a figure, nor a long run end unable to save
    its figure."""
    path = Path(value)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"the figure is a PNG: expected a .png path, "
                                         f"got {value!r}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {path.parent}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Draw the live benchmark's figure from the JSON lines of "
                    "`bench/live.py --json` (several files onto one figure).")
    parser.add_argument("files", nargs="+", type=Path, metavar="RESULTS.jsonl")
    parser.add_argument("out", type=png_path, metavar="OUT.png")
    parser.add_argument("--server", default=UNNAMED_SERVER,
                        help="the server of records that name none (default %(default)s: the "
                             "anchor's recorded baseline-20261125.jsonl names none)")
    args = parser.parse_args(argv)
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        for path in args.files:
            found = load(path)
            if published(found) and not machine_lines(found):
                notes.append(f"{path.name}: no machine recorded")
            records += found
        draw(records, args.out, notes=notes, unnamed=args.server)
    except (OSError, ValueError) as exc:
        print(f"plot: {exc}", file=sys.stderr)
        return 1
    print(f"plot: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
