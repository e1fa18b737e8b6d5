"""The live benchmark's figure (bench/plot.py), drawn from hand-made records shaped like the
JSON lines of `bench/live.py --json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy
import pytest
from matplotlib.axes import Axes

import plot

MACHINE = {"nproc": "2", "cpu": "AMD EPYC", "python": "3.11.7", "postgresql": "15.20",
           "node": "v20.20.2", "date": "2026-12-01 12:00 UTC", "commit": "abc1234"}


def _record(server: str, rate: float, delivered: float, p99: float, *, repeat: int = 1,
            build: str | None = None, nodes: int = 1) -> dict[str, Any]:
    return {"label": f"single-r{rate:g}", "server": server, "backend": "postgres",
            "nodes": nodes, "build": build, "build_commit": None, "slot": f"single-r{rate:g}",
            "repeat": repeat, "users": 1000, "rate": rate, "machine": MACHINE,
            "delivered_per_s": delivered, "lat_ms": {"p50": p99 / 4, "p99": p99}}


def _series_lines(ax: Axes) -> dict[str, list[float]]:
    """The drawn series by label (the asked-rate reference line left out), with their y."""
    return {str(line.get_label()): numpy.asarray(line.get_ydata(), dtype=float).tolist()
            for line in ax.get_lines() if line.get_label() != plot.IDEAL_LABEL}


def test_two_servers_give_two_lines_on_each_panel_of_a_png(tmp_path: Path) -> None:
    idle = _record("tocsin", 0, 0, 0)
    del idle["delivered_per_s"], idle["lat_ms"]  # as live.py records an idle run: left out
    records = [_record("tocsin", 200, 200, 5.0), _record("tocsin", 500, 499, 8.0),
               _record("seed-node", 200, 200, 3.0), _record("seed-node", 500, 480, 30.0), idle]
    out = tmp_path / "live.png"
    figure = plot.draw(records, out)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    delivered, p99 = figure.axes
    assert _series_lines(delivered) == {"Tocsin": [200, 499], "seed-node": [200, 480]}
    assert _series_lines(p99) == {"Tocsin": [5.0, 8.0], "seed-node": [3.0, 30.0]}
    assert p99.get_yscale() == "log"
    assert "commit abc1234" in figure.get_suptitle()
    assert "(notifications/s)" in delivered.get_xlabel() and "ms" in p99.get_ylabel()


def test_repeated_runs_are_drawn_at_their_median_and_builds_apart(tmp_path: Path) -> None:
    records = [_record("tocsin", 500, delivered, p99, repeat=i, build=build)
               for build in ("current", "baseline")
               for i, (delivered, p99) in enumerate([(490, 9.0), (500, 7.0), (470, 20.0)], 1)]
    records += [_record("tocsin", 500, 500, 12.0, nodes=2, build="current")]
    figure = plot.draw(records, tmp_path / "repeat.png")
    delivered, p99 = figure.axes
    assert _series_lines(delivered) == {"Tocsin, current": [490], "Tocsin, baseline": [490],
                                        "Tocsin, 2 nodes, current": [500]}
    assert _series_lines(p99)["Tocsin, baseline"] == [9.0]
    assert "median of its runs" in figure.get_suptitle()


def test_nothing_published_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to draw"):
        plot.draw([{"label": "idle-u1000", "server": "tocsin", "rate": 0}],
                  tmp_path / "idle.png")


def test_the_cli_draws_several_files_and_names_unnamed_records(tmp_path: Path) -> None:
    live = tmp_path / "live.jsonl"
    live.write_text("".join(json.dumps(_record("tocsin", r, r, 4.0)) + "\n" for r in (200, 500)))
    anchor = tmp_path / "anchor.jsonl"  # as the anchor's recording: no server, no machine
    anchor.write_text(json.dumps({"label": "b_u1000_r500", "users": 1000, "rate": 500.0,
                                  "delivered_per_s": 500.0, "lat_ms": {"p99": 6.65}}) + "\n\n")
    out = tmp_path / "both.png"
    assert plot.main([str(live), str(anchor), str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    drawn = plot.series([*plot.load(live), *plot.load(anchor)])
    assert [(s.label, [p.rate for p in s.points]) for s in drawn] == [
        ("Tocsin", [200, 500]), ("seed-node", [500])]
    with pytest.raises(SystemExit):
        plot.main([str(live), str(anchor)])  # the last input is no figure to overwrite
    assert anchor.read_text().startswith("{")
