"""The pure part of the benchmarks' --baseline and --repeat: run order, pairing, medians,
spreads, ratios, tables.

Nothing here measures anything (speed is measured by bench/, never asserted in tests).
"""

from __future__ import annotations

import argparse
import json
import math
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
    format_ratios,
    format_spread,
    interleave,
    markdown,
    median,
    medians_each,
    pair_ratios,
    ratio,
    ratio_row,
    repetitions,
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


def test_an_odd_offset_starts_the_abba_order_reversed() -> None:
    assert interleave([200, 500], ["B", "C"], offset=1) == [
        (200, "C"), (200, "B"), (500, "B"), (500, "C")]
    assert interleave([200, 500], ["B", "C"], offset=2) == interleave([200, 500], ["B", "C"])


def test_repetitions_with_offsets_give_each_build_first_place_in_turn() -> None:
    # what the scripts run for --repeat 4: repetition r with offset r - 1
    order = [(r, slot, b) for r in range(1, 5)
             for slot, b in interleave(["single", "batched"], ["B", "C"], offset=r - 1)]
    assert Counter((slot, b) for _, slot, b in order) == {
        (slot, b): 4 for slot in ("single", "batched") for b in "BC"}
    for slot in ("single", "batched"):
        firsts = [next(b for r2, s, b in order if (r2, s) == (r, slot)) for r in range(1, 5)]
        assert firsts.count("B") == firsts.count("C") == 2
        assert firsts[0] != firsts[1]
    # a run's two builds stay next to each other: each pair is adjacent
    for i in range(0, len(order), 2):
        assert order[i][:2] == order[i + 1][:2] and order[i][2] != order[i + 1][2]


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
                    [({"rate": 100.0, "p50": 4.0}, {"rate": 120.0, "p50": 2.0})],
                    figures=lambda figures: figures, ranged=("rate",))
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
        summary=lambda i: {"key": i[0][0], "build": i[0][1], "value": f"{i[0][2]:g}"},
        figures=lambda i: {"value": i[2]}, shared=("key",), key=lambda i: i[0],
        is_baseline=lambda i: i[1] == "baseline")
    assert _rows(table)[1:] == [
        ["b", "baseline", "100"], ["b", "current", "110"], ["b", RATIO_LABEL, "1.10"],
        ["a", "baseline", "50"], ["a", "current", "40"], ["a", RATIO_LABEL, "0.80"],
        ["c", "current", "7"],
    ]


# -- repetitions: pairs, medians, spreads -----------------------------------------------------

def test_repetitions_group_by_key_and_pair_by_repetition() -> None:
    items = [("x", "base", 1), ("x", "cur", 1), ("y", "cur", 1), ("y", "base", 1),
             ("x", "cur", 2), ("x", "base", 2), ("y", "base", 2), ("x", "cur", 3)]
    groups = repetitions(items, key=lambda i: i[0], repeat=lambda i: i[2],
                         is_baseline=lambda i: i[1] == "base")
    x, y = groups
    assert x.baseline == (("x", "base", 1), ("x", "base", 2))
    assert x.current == (("x", "cur", 1), ("x", "cur", 2), ("x", "cur", 3))
    assert x.pairs == ((("x", "base", 1), ("x", "cur", 1)), (("x", "base", 2), ("x", "cur", 2)))
    assert y.pairs == ((("y", "base", 1), ("y", "cur", 1)),)  # y's 2nd baseline run: no pair
    assert y.baseline[-1] == ("y", "base", 2)


def test_repetitions_sort_by_index_whatever_the_order_given() -> None:
    items = [("x", "cur", 3), ("x", "base", 2), ("x", "cur", 1), ("x", "base", 1),
             ("x", "cur", 2)]
    (x,) = repetitions(items, key=lambda i: i[0], repeat=lambda i: i[2],
                       is_baseline=lambda i: i[1] == "base")
    assert [i[2] for i in x.current] == [1, 2, 3]
    assert [(b[2], c[2]) for b, c in x.pairs] == [(1, 1), (2, 2)]


def test_repetitions_refuse_two_runs_of_one_build_and_index() -> None:
    with pytest.raises(ValueError, match="repetition 1"):
        repetitions([("x", "cur", 1), ("x", "cur", 1)], key=lambda i: i[0],
                    repeat=lambda i: i[2], is_baseline=lambda i: False)


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 10.0]) == 3.0  # the mean of the middle two
    assert median([5.0]) == 5.0
    assert median([1.0, None, float("nan"), float("inf"), 3.0]) == 2.0
    assert math.isnan(median([]))
    assert math.isnan(median([None, float("nan")]))
    assert medians_each([[1.0, 10.0], [3.0, 30.0], [2.0, 20.0]]) == [2.0, 20.0]
    assert medians_each([[1.0, 10.0], [3.0]]) == [2.0]
    assert medians_each([]) == []


def test_format_spread() -> None:
    def whole(value: float) -> str:
        return f"{value:,.0f}"

    assert format_spread([1_520.0, 980.4, 1_203.0], whole) == "980-1,520"
    assert format_spread([400.2], whole) == "400"
    assert format_spread([400.2, 399.8], whole) == "400"  # equal once shown
    assert format_spread([None, float("nan"), 7.0, 9.0], whole) == "7-9"
    assert format_spread([], whole) == "-"


def test_pair_ratios_are_current_over_baseline_pair_by_pair() -> None:
    pairs = [((100.0,), (110.0,)), ((200.0,), (180.0,)), ((0.0,), (5.0,)), ((50.0,), (60.0,))]
    assert pair_ratios(pairs, lambda i: i[0]) == pytest.approx([1.1, 0.9, 1.2])  # 0: left out


def test_the_median_of_pair_ratios_is_not_the_ratio_of_medians() -> None:
    # a slow window drags both builds of its pair: pairing cancels it, medians do not
    pairs = [((100.0,), (110.0,)), ((50.0,), (55.0,)), ((90.0,), (99.0,))]
    ratios = pair_ratios(pairs, lambda i: i[0])
    assert format_ratios(ratios) == "1.10"
    medians = ratio(median(c[0] for _, c in pairs), median(b[0] for b, _ in pairs))
    assert format_ratio(medians) == "1.10"
    skewed = [((100.0,), (110.0,)), ((50.0,), (80.0,)), ((90.0,), (90.0,)), ((60.0,), (60.0,))]
    assert format_ratios(pair_ratios(skewed, lambda i: i[0]), ranged=True) == "1.05 (1.00-1.60)"
    assert format_ratio(ratio(median(c[0] for _, c in skewed),
                              median(b[0] for b, _ in skewed))) == "1.13"


def test_format_ratios() -> None:
    assert format_ratios([1.04, 0.91, 1.12], ranged=True) == "1.04 (0.91-1.12)"
    assert format_ratios([1.04, 0.91, 1.12]) == "1.04"
    assert format_ratios([1.25], ranged=True) == "1.25"  # one pair: as without --repeat
    assert format_ratios([], ranged=True) == "-"


def test_compared_table_with_repetitions() -> None:
    items = [  # (key, build, repetition, value), in the order ABBA over two repetitions runs them
        ("a", "baseline", 1, 100.0), ("a", "current", 1, 120.0),
        ("b", "current", 1, 10.0), ("b", "baseline", 1, 10.0),
        ("a", "current", 2, 90.0), ("a", "baseline", 2, 100.0),
        ("b", "baseline", 2, 20.0), ("b", "current", 2, 30.0),
        ("a", "baseline", 3, 50.0), ("a", "current", 3, 55.0),
    ]

    def summary(runs: object) -> dict[str, str]:
        assert isinstance(runs, tuple)
        values = [run[3] for run in runs]
        return {"key": runs[0][0], "build": runs[0][1], "value": f"{median(values):g}",
                "spread": format_spread(values, lambda v: f"{v:g}"), "n": str(len(runs))}

    table = compared_table(items, ["key", "build", "value", "spread", "n"], summary=summary,
                           figures=lambda i: {"value": i[3]}, shared=("key",),
                           key=lambda i: i[0], is_baseline=lambda i: i[1] == "baseline",
                           repeat=lambda i: i[2], ranged=("value",))
    assert _rows(table)[1:] == [
        ["a", "baseline", "100", "50-100", "3"], ["a", "current", "90", "55-120", "3"],
        ["a", RATIO_LABEL, "1.10 (0.90-1.20)", "", ""],
        ["b", "baseline", "15", "10-20", "2"], ["b", "current", "20", "10-30", "2"],
        ["b", RATIO_LABEL, "1.25 (1.00-1.50)", "", ""],
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
             per_request: int = 1, errors: Counter[str] | None = None) -> Outcome:
    window = 2.0
    requests = round(rps * window)
    return Outcome(
        scenario=scenario, concurrency=32, warmup_seconds=1.0, window_seconds=window,
        requests=requests, notifications=requests * per_request,
        latencies_ms=[p50] * 98 + [p50 * 2] * 2, errors=errors or Counter(),
        total_ok_requests=requests,
        cpu=CpuUsage(server=server_cpu, loadgen=10.0, postgres=None, machine=50.0, other=2.0),
    )


def _publish_row(build: Build | None, scenario: str, rps: float, p50: float,
                 server_cpu: float, repeat: int = 1, repeats: int = 1,
                 errors: Counter[str] | None = None) -> publish.Row:
    return publish.Row(
        backend="sqlite", outcome=_outcome(scenario, rps, p50, server_cpu, errors=errors),
        stored_ok=True, stored_detail="", profiled=False,
        build=build.name if build else "current", build_label=build.label if build else "",
        repeat=repeat, repeats=repeats)


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


def test_publish_table_with_repeats_gives_medians_spreads_and_median_pair_ratios() -> None:
    rows = [  # single over three repetitions, baseline first, then current first, ...
        _publish_row(BASE, "single", 400.0, 60.0, 80.0, 1, 3),
        _publish_row(CURRENT, "single", 500.0, 45.0, 80.0, 1, 3),
        _publish_row(CURRENT, "single", 300.0, 50.0, 60.0, 2, 3),
        _publish_row(BASE, "single", 300.0, 50.0, 60.0, 2, 3),
        _publish_row(BASE, "single", 450.0, 40.0, 90.0, 3, 3,
                     errors=Counter({"503": 2})),
        _publish_row(CURRENT, "single", 405.0, 40.0, 90.0, 3, 3,
                     errors=Counter({"503": 1, "ClientOSError": 1})),
    ]
    table = publish.markdown_table(rows, compare=True)
    head, *body = _rows(table)
    assert head[head.index("req/s") + 1] == publish.SPREAD
    assert [r[2] for r in body] == ["baseline aaaaaaaaaa", "current bbbbbbbbbb+dirty",
                                    RATIO_LABEL]
    base, current, ratios = (dict(zip(head, row, strict=True)) for row in body)
    assert (base["req/s"], base[publish.SPREAD]) == ("400", "300-450")
    assert (current["req/s"], current[publish.SPREAD]) == ("405", "300-500")
    assert (current["p50 ms"], current["p99 ms"], current["server CPU"]) == (
        "45.0", "90.0", "80 %")
    assert base["errors"] == "503: 2"  # the total over the runs, not a median of 0
    assert current["errors"] == "503: 1, ClientOSError: 1"
    # per pair: req/s 1.25, 1.00, 0.90; p99 0.75, 1.00, 1.00; CPU per 1,000 0.80, 1.00, 1.11
    assert ratios["req/s"] == "1.00 (0.90-1.25)"
    assert ratios["p99 ms"] == "1.00 (0.75-1.00)"
    assert ratios[publish.CPU_PER_1K] == "1.00 (0.80-1.11)"
    assert ratios["notifications/s"] == "1.00"  # a median too, without its min-max
    assert ratios[publish.SPREAD] == ""


def test_publish_table_repeated_without_baseline() -> None:
    rows = [_publish_row(None, "single", rps, 50.0, 80.0, r, 3)
            for r, rps in enumerate([410.0, 380.0, 520.0], start=1)]
    head, *body = _rows(publish.markdown_table(rows))
    assert "build" not in head
    assert len(body) == 1
    row = dict(zip(head, body[0], strict=True))
    assert (row["req/s"], row[publish.SPREAD]) == ("410", "380-520")


def test_publish_problems_name_the_run_they_happened_in() -> None:
    rows = [_publish_row(BASE, "single", 400.0, 60.0, 80.0, r, 3) for r in (1, 2, 3)]
    rows[1].outcome.errors["500"] = 3
    rows[2].stored_ok, rows[2].stored_detail = False, "799 rows stored for 800 acknowledged"
    assert publish.problems(rows) == [
        "sqlite single (baseline, run 2 of 3): errors 500: 3",
        "sqlite single (baseline, run 3 of 3): 799 rows stored for 800 acknowledged",
    ]
    assert _publish_row(None, "single", 1.0, 1.0, 1.0).title == "sqlite single"


def test_publish_json_keeps_one_line_per_run_with_its_repeat() -> None:
    args = argparse.Namespace(users=1000, batch_size=100)
    line = json.loads(publish.json_line(
        _publish_row(CURRENT, "single", 400.0, 60.0, 80.0, 2, 5), args, {}, [BASE, CURRENT]))
    assert (line["repeat"], line["repeats"], line["build"]) == (2, 5, "current")


def test_publish_parses_repeat() -> None:
    assert publish.parse_args([]).repeat == 1
    assert publish.parse_args(["--repeat", "5"]).repeat == 5
    with pytest.raises(SystemExit):
        publish.parse_args(["--repeat", "0"])


# -- live.py ----------------------------------------------------------------------------------

def _run(build: Build | None, *, server: str = "tocsin", rate: float = 200.0,
         delivered: int = 1000, p50: float = 3.0, server_cpu: float = 40.0,
         kb: float = 50.0, repeat: int = 1, lost: int = 0) -> live.Run:
    users = 100
    clients = [Client(index=i, user_id=f"u{i}", node=0) for i in range(users)]
    slot = f"single-r{rate:g}" if server == "tocsin" else f"anchor-r{rate:g}"
    label = slot if build is None or build.name == "current" else f"{slot}-{build.name}"
    tally = Tally(delivered + lost)
    tally.delivered = delivered
    tally.latencies_ms = [p50] * 98 + [p50 * 10] * 2
    tally.last_receipt = 5.0
    published = Published(rate=rate, seconds=5.0, concurrency=32, attempted=delivered + lost,
                          acked=delivered + lost, t0=0.0, last_send=5.0, last_ack=5.0)
    for key in range(delivered, delivered + lost):  # acknowledged, never received
        tally.ack(key)
    return live.Run(
        label=label, server=server, backend="postgres", nodes=1, users=users, rate=rate,
        connected=Connected(clients=clients, seconds=1.0, errors=Counter()),
        rss_before_kb=[100_000], rss_connected_kb=[100_000 + round(kb * users)],
        rss_after_kb=[150_000], hwm_kb=[150_000], rss_after_close_kb=[150_000],
        published=published, tally=tally,
        cpu=CpuShare(window=5.0, servers=(server_cpu,), loadgen=10.0, postgres=10.0,
                     redis=0.0, machine=40.0, other=1.0),
        build="" if server != "tocsin" else (build.name if build else "current"),
        build_label=build.label if build else "", slot=slot, repeat=repeat,
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


def test_live_tables_with_repeats() -> None:
    runs = [  # the ABBA order of --repeat 3 at one rate
        _run(BASE, delivered=1000, p50=4.0, server_cpu=40.0, repeat=1),
        _run(CURRENT, delivered=900, p50=3.0, server_cpu=30.0, repeat=1),
        _run(CURRENT, delivered=1000, p50=2.0, server_cpu=45.0, repeat=2, lost=3),
        _run(BASE, delivered=800, p50=4.0, server_cpu=40.0, repeat=2),
        _run(BASE, delivered=1000, p50=5.0, server_cpu=50.0, repeat=3),
        _run(CURRENT, delivered=1000, p50=5.0, server_cpu=50.0, repeat=3),
    ]
    delivery = live.delivery_table(runs, compare=True)
    head, *body = _rows(delivery)
    assert head[head.index("delivered/s") + 1] == live.SPREAD
    base, current, ratios = (dict(zip(head, row, strict=True)) for row in body)
    assert (base["delivered/s"], base[live.SPREAD]) == ("200", "160-200")
    assert (current["delivered/s"], current[live.SPREAD]) == ("200", "180-200")
    assert current["lost"] == "3"  # the total: one bad run shows
    assert current["p50 ms"] == "3.0"
    # per pair: delivered/s 0.90, 1.25, 1.00; p99 (10 x p50) 0.75, 0.50, 1.00
    assert ratios["delivered/s"] == "1.00 (0.90-1.25)"
    assert ratios["p99 ms"] == "0.75 (0.50-1.00)"
    assert ratios["p50 ms"] == "0.75"

    resources = live.resource_table(runs, compare=True)
    # server CPU s per 1,000: baseline 2.00, 2.50, 2.50; current 1.67, 2.25, 2.50
    assert _column(resources, live.CPU_PER_1K) == ["2.50", "2.25", "0.90 (0.83-1.00)"]
    assert _column(resources, "server CPU") == ["40 %", "45 %", ""]
    assert live.SPREAD not in _rows(resources)[0]

    alone = live.delivery_table([r for r in runs if r.build == "current"])
    assert len(_rows(alone)) == 2 and live.SPREAD in _rows(alone)[0]


def test_live_problems_fail_the_run_whichever_repetition_has_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    runs = [_run(CURRENT, repeat=1), _run(CURRENT, repeat=2, lost=3), _run(CURRENT, repeat=3)]
    runs[1].label = live.run_label("single-r200", "current", 2, 3)
    assert live._verdict(runs) == 1
    assert "single-r200-rep2: 3 acknowledged notifications never received" in (
        capsys.readouterr().err)
    assert live._verdict([runs[0], runs[2]]) == 0


def test_live_run_labels() -> None:
    assert live.run_label("single-r500", "current", 1, 1) == "single-r500"
    assert live.run_label("single-r500", "baseline", 1, 1) == "single-r500-baseline"
    assert live.run_label("single-r500", "baseline", 2, 5) == "single-r500-baseline-rep2"
    assert live.run_label("anchor-r500", "", 3, 5) == "anchor-r500-rep3"


def test_the_anchor_ratios_use_medians_with_repeats() -> None:
    runs = [_run(CURRENT, server_cpu=cpu, p50=p50, repeat=r)
            for r, (cpu, p50) in enumerate([(40.0, 3.0), (60.0, 4.0), (44.0, 5.0)], start=1)]
    runs += [_run(BASE, server_cpu=99.0, repeat=r) for r in (1, 2, 3)]
    runs += [_run(None, server="seed-node", server_cpu=cpu, p50=2.0, repeat=r)
             for r, cpu in enumerate([20.0, 22.0, 10.0], start=1)]
    head, row = _rows(live.ratio_table(runs))
    ratios = dict(zip(head, row, strict=True))
    assert ratios["server CPU Tocsin / anchor"] == "2.20"  # median 44 / median 20
    assert ratios["p50 Tocsin / anchor"] == "2.00"  # median 4 / 2
    assert ratios["delivered/s Tocsin / anchor"] == "1.00"


def test_live_json_and_args_with_repeat() -> None:
    args = live.parse_args(["--quick", "--repeat", "2"])
    assert args.repeat == 2
    assert live.parse_args([]).repeat == 1
    line = json.loads(live.json_line(_run(CURRENT, repeat=2), args, {}, [BASE, CURRENT]))
    assert (line["slot"], line["repeat"], line["repeats"]) == ("single-r200", 2, 2)
