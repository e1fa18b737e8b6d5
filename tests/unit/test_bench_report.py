"""The pure part of the benchmarks' --baseline comparison: run order, pairing, ratios, tables.

Nothing here measures anything (speed is measured by bench/, never asserted in tests).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pytest

import live
import publish
from baseline import Build, pins_from_freeze
from compare import (
    RATIO_LABEL,
    compared_table,
    cpu_per_thousand,
    format_ratio,
    interleave,
    markdown,
    ratio,
    ratio_row,
    side_by_side,
    uneven,
)
from livegen import Client, Connected, CpuShare, Published, Tally
from loadgen import Outcome
from procstat import CpuUsage

BASE = Build(name="baseline", commit="a" * 40, python="/cache/venv/bin/python",
             revision="HEAD~1")
CURRENT = Build(name="current", commit="b" * 40 + "+dirty", python="/repo/.venv/bin/python")


def _rows(table: str) -> list[list[str]]:
    """A Markdown table's cells, header first, the separator left out."""
    lines = table.splitlines()
    assert set(lines[1]) <= {"|", "-"}
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in [lines[0], *lines[2:]]]


def _column(table: str, name: str) -> list[str]:
    head, *body = _rows(table)
    return [row[head.index(name)] for row in body]


# -- order, pairs, ratios ---------------------------------------------------------------------

def test_interleave_alternates_abba() -> None:
    assert interleave([200, 500, 1000], ["B", "C"]) == [
        (200, "B"), (200, "C"), (500, "C"), (500, "B"), (1000, "B"), (1000, "C")]


def test_interleave_one_build_is_the_slots_in_order() -> None:
    assert interleave(["single", "batched"], ["C"]) == [("single", "C"), ("batched", "C")]
    assert interleave([], ["B", "C"]) == []


def test_every_slot_runs_once_per_build_and_each_build_goes_first_equally() -> None:
    order = interleave(list(range(4)), ["B", "C"])
    assert Counter(order) == {(slot, b): 1 for slot in range(4) for b in "BC"}
    firsts = [order[i][1] for i in range(0, len(order), 2)]
    assert firsts.count("B") == firsts.count("C")


def test_side_by_side_pairs_by_key_in_first_appearance_order() -> None:
    items = [("x", "cur"), ("x", "base"), ("y", "base"), ("z", "cur"), ("y", "cur")]
    pairs = side_by_side(items, key=lambda i: i[0], is_baseline=lambda i: i[1] == "base")
    assert pairs == [(("x", "base"), ("x", "cur")), (("y", "base"), ("y", "cur")),
                     (None, ("z", "cur"))]


def test_side_by_side_a_repeated_key_starts_a_new_pair() -> None:
    items = [("x", "base", 1), ("x", "cur", 1), ("x", "base", 2)]
    pairs = side_by_side(items, key=lambda i: i[0], is_baseline=lambda i: i[1] == "base")
    assert pairs == [(("x", "base", 1), ("x", "cur", 1)), (("x", "base", 2), None)]


def test_uneven_finds_pairs_whose_neighbour_load_differed() -> None:
    items = [("x", "base", 10.0), ("x", "cur", 30.0), ("y", "base", 120.0), ("y", "cur", 150.0),
             ("z", "base", None), ("z", "cur", 90.0), ("w", "cur", 0.0)]
    skewed = uneven(items, key=lambda i: i[0], is_baseline=lambda i: i[1] == "base",
                    other=lambda i: i[2], limit=25.0)
    assert skewed == [(("y", "base", 120.0), ("y", "cur", 150.0))]


@pytest.mark.parametrize(("current", "baseline", "shown"), [
    (150.0, 100.0, "1.50"),
    (1.0, 3.0, "0.33"),
    (0.0, 2.0, "0.00"),
    (1.0, 0.0, "-"),
    (float("nan"), 1.0, "-"),
    (1.0, float("nan"), "-"),
    (None, 1.0, "-"),
    (1.0, None, "-"),
])
def test_ratio_is_current_over_baseline(current: float | None, baseline: float | None,
                                        shown: str) -> None:
    assert format_ratio(ratio(current, baseline)) == shown


def test_cpu_per_thousand() -> None:
    # half a core for 10 s is 5 CPU seconds; over 1,000 events, 5 s per 1,000 (5 ms each)
    assert cpu_per_thousand(50.0, 10.0, 1000) == pytest.approx(5.0)
    assert cpu_per_thousand(200.0, 2.0, 4000) == pytest.approx(1.0)
    assert cpu_per_thousand(50.0, 10.0, 0) != cpu_per_thousand(50.0, 10.0, 0)  # NaN
    assert cpu_per_thousand(None, 10.0, 10) != cpu_per_thousand(None, 10.0, 10)


def test_markdown_and_ratio_row() -> None:
    head = ["name", "build", "rate", "p50", "note"]
    row = ratio_row(head, {"name": "single", "build": RATIO_LABEL},
                    {"rate": 120.0, "p50": 2.0}, {"rate": 100.0, "p50": 4.0})
    assert row == ["single", RATIO_LABEL, "1.20", "0.50", ""]
    assert markdown(head, [row]) == (
        "| name | build | rate | p50 | note |\n|---|---|---|---|---|\n"
        f"| single | {RATIO_LABEL} | 1.20 | 0.50 |  |")
    with pytest.raises(ValueError, match="3 cells under 5 columns"):
        markdown(head, [["a", "b", "c"]])


def test_compared_table_puts_baseline_then_current_then_ratios() -> None:
    items = [("b", "current", 110.0), ("a", "baseline", 50.0), ("a", "current", 40.0),
             ("b", "baseline", 100.0), ("c", "current", 7.0)]
    table = compared_table(
        items, ["key", "build", "value"],
        cells=lambda i: {"key": i[0], "build": i[1], "value": f"{i[2]:g}"},
        figures=lambda i: {"value": i[2]}, shared=("key",), key=lambda i: i[0],
        is_baseline=lambda i: i[1] == "baseline")
    assert _rows(table)[1:] == [
        ["b", "baseline", "100"], ["b", "current", "110"], ["b", RATIO_LABEL, "1.10"],
        ["a", "baseline", "50"], ["a", "current", "40"], ["a", RATIO_LABEL, "0.80"],
        ["c", "current", "7"],
    ]


# -- builds -----------------------------------------------------------------------------------

def test_build_names() -> None:
    assert BASE.label == "baseline aaaaaaaaaa"
    assert CURRENT.label == "current bbbbbbbbbb+dirty"
    assert BASE.describe() == "baseline aaaaaaaaaa (HEAD~1)"
    unpinned = Build(name="baseline", commit="c" * 40, python="p", revision="c" * 40,
                     pinned=False)
    assert unpinned.describe() == (
        "baseline cccccccccc, dependencies not pinned to this environment's")


def test_pins_keep_only_exact_versions_and_never_tocsin() -> None:
    frozen = "\n".join([
        "# Editable install with no version control (tocsin==0.1.0)",
        "-e /work/tree",
        "fastapi==0.165.0",
        "aiohttp==3.14.5",
        "tocsin==0.1.0",
        "somepkg @ file:///tmp/somepkg",
        "aiohttp==3.14.5",
        "",
    ])
    assert pins_from_freeze(frozen) == "aiohttp==3.14.5\nfastapi==0.165.0\n"


# -- publish.py -------------------------------------------------------------------------------

def _outcome(scenario: str, rps: float, p50: float, server_cpu: float,
             per_request: int = 1) -> Outcome:
    window = 2.0
    requests = round(rps * window)
    return Outcome(
        scenario=scenario, concurrency=32, warmup_seconds=1.0, window_seconds=window,
        requests=requests, notifications=requests * per_request,
        latencies_ms=[p50] * 98 + [p50 * 2] * 2, errors=Counter(), total_ok_requests=requests,
        cpu=CpuUsage(server=server_cpu, loadgen=10.0, postgres=None, machine=50.0, other=2.0),
    )


def _publish_row(build: Build | None, scenario: str, rps: float, p50: float,
                 server_cpu: float) -> publish.Row:
    return publish.Row(
        backend="sqlite", outcome=_outcome(scenario, rps, p50, server_cpu), stored_ok=True,
        stored_detail="", profiled=False, build=build.name if build else "current",
        build_label=build.label if build else "")


def test_publish_table_without_baseline_keeps_its_columns() -> None:
    table = publish.markdown_table([_publish_row(None, "single", 400.0, 60.0, 80.0)])
    assert table.splitlines()[0] == (
        "| backend | scenario | conns | req/s | notifications/s | p50 ms | p90 ms | p99 ms "
        "| errors | server CPU | load-gen CPU | PostgreSQL CPU | other CPU | machine busy |")
    assert table.splitlines()[2] == (
        "| sqlite | single | 32 | 400 | 400 | 60.0 | 60.0 | 120.0 | 0 | 80 % | 10 % | - "
        "| 2 % | 50 % |")


def test_publish_table_with_baseline() -> None:
    rows = [  # in the order ABBA measures them
        _publish_row(BASE, "single", 400.0, 60.0, 80.0),
        _publish_row(CURRENT, "single", 500.0, 45.0, 80.0),
        _publish_row(CURRENT, "batched x100", 30.0, 1000.0, 90.0),
        _publish_row(BASE, "batched x100", 25.0, 1250.0, 90.0),
    ]
    table = publish.markdown_table(rows, compare=True)
    head, *body = _rows(table)
    assert head[:3] == ["backend", "scenario", "build"]
    assert [(r[1], r[2]) for r in body] == [
        ("single", "baseline aaaaaaaaaa"), ("single", "current bbbbbbbbbb+dirty"),
        ("single", RATIO_LABEL),
        ("batched x100", "baseline aaaaaaaaaa"), ("batched x100", "current bbbbbbbbbb+dirty"),
        ("batched x100", RATIO_LABEL),
    ]
    ratios = dict(zip(head, body[2], strict=True))
    # 80 % of a core over 2 s: 1.6 s of CPU, for 800 then 1,000 notifications
    assert _column(table, publish.CPU_PER_1K)[:2] == ["2.00", "1.60"]
    assert {c: ratios[c] for c in publish.RATIO_COLUMNS} == {
        "req/s": "1.25", "notifications/s": "1.25", "p50 ms": "0.75", "p99 ms": "0.75",
        publish.CPU_PER_1K: "0.80"}
    assert {c for c, v in ratios.items() if v} == {
        "backend", "scenario", "build", *publish.RATIO_COLUMNS}
    assert _column(table, "req/s")[5] == "1.20"


def test_publish_json_names_both_commits() -> None:
    args = argparse.Namespace(users=1000, batch_size=100)
    line = json.loads(publish.json_line(_publish_row(BASE, "single", 400.0, 60.0, 80.0), args,
                                        {"commit": "bbbbbbb"}, [BASE, CURRENT]))
    assert (line["build"], line["build_commit"]) == ("baseline", BASE.commit)
    assert (line["baseline_commit"], line["current_commit"]) == (BASE.commit, CURRENT.commit)
    assert line["server_cpu_seconds_per_1000_notifications"] == pytest.approx(2.0)
    alone = json.loads(publish.json_line(_publish_row(None, "single", 400.0, 60.0, 80.0), args,
                                         {"commit": "bbbbbbb"}, [CURRENT]))
    assert (alone["build"], alone["build_commit"], alone["baseline_commit"]) == (
        "current", CURRENT.commit, None)


# -- live.py ----------------------------------------------------------------------------------

def _run(build: Build | None, *, server: str = "tocsin", rate: float = 200.0,
         delivered: int = 1000, p50: float = 3.0, server_cpu: float = 40.0,
         kb: float = 50.0) -> live.Run:
    users = 100
    clients = [Client(index=i, user_id=f"u{i}", node=0) for i in range(users)]
    slot = f"single-r{rate:g}" if server == "tocsin" else f"anchor-r{rate:g}"
    label = slot if build is None or build.name == "current" else f"{slot}-{build.name}"
    tally = Tally(delivered)
    tally.delivered = delivered
    tally.latencies_ms = [p50] * 98 + [p50 * 10] * 2
    tally.last_receipt = 5.0
    published = Published(rate=rate, seconds=5.0, concurrency=32, attempted=delivered,
                          acked=delivered, t0=0.0, last_send=5.0, last_ack=5.0)
    return live.Run(
        label=label, server=server, backend="postgres", nodes=1, users=users, rate=rate,
        connected=Connected(clients=clients, seconds=1.0, errors=Counter()),
        rss_before_kb=[100_000], rss_connected_kb=[100_000 + round(kb * users)],
        rss_after_kb=[150_000], hwm_kb=[150_000], rss_after_close_kb=[150_000],
        published=published, tally=tally,
        cpu=CpuShare(window=5.0, servers=(server_cpu,), loadgen=10.0, postgres=10.0,
                     redis=0.0, machine=40.0, other=1.0),
        build="" if server != "tocsin" else (build.name if build else "current"),
        build_label=build.label if build else "", slot=slot,
    )


def test_live_tables_with_baseline() -> None:
    runs = [_run(BASE, delivered=1000, p50=4.0, server_cpu=40.0, kb=50.0),
            _run(CURRENT, delivered=1000, p50=3.0, server_cpu=30.0, kb=40.0)]
    delivery = live.delivery_table(runs, compare=True)
    head, *body = _rows(delivery)
    assert head[:2] == ["server", "build"]
    assert [r[1] for r in body] == ["baseline aaaaaaaaaa", "current bbbbbbbbbb+dirty",
                                    RATIO_LABEL]
    ratios = dict(zip(head, body[2], strict=True))
    assert (ratios["delivered/s"], ratios["p50 ms"], ratios["p99 ms"]) == ("1.00", "0.75", "0.75")
    assert ratios["lost"] == ""

    resources = live.resource_table(runs, compare=True)
    # 40 % of a core over 5 s: 2 s of CPU for 1,000 deliveries
    assert _column(resources, live.CPU_PER_1K) == ["2.00", "1.50", "0.75"]
    assert _column(resources, "KB per idle conn") == ["50.0", "40.0", "0.80"]

    idle = live.idle_table(runs, compare=True)
    assert _column(idle, "KB per connection") == ["50.0", "40.0", "0.80"]


def test_live_tables_without_baseline_keep_their_columns() -> None:
    runs = [_run(None)]
    assert _rows(live.delivery_table(runs))[0][:2] == ["server", "db"]
    assert live.CPU_PER_1K not in _rows(live.resource_table(runs))[0]
    assert _rows(live.idle_table(runs))[0][0] == "server"


def test_the_anchor_is_compared_with_the_current_build_only() -> None:
    runs = [_run(BASE, server_cpu=90.0), _run(CURRENT, server_cpu=40.0),
            _run(None, server="seed-node", server_cpu=20.0)]
    ratios = _rows(live.ratio_table(runs))
    assert len(ratios) == 2
    assert ratios[1][ratios[0].index("server CPU Tocsin / anchor")] == "2.00"
    delivery = _rows(live.delivery_table(runs, compare=True))
    assert [r[1] for r in delivery[1:]] == ["baseline aaaaaaaaaa", "current bbbbbbbbbb+dirty",
                                            RATIO_LABEL, "-"]
