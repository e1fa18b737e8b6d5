"""Launch `tocsin serve` recording the time its garbage collector takes (live.py --gc-stats).

    python bench/gcstats.py serve --host … --port …     (instead of python -m tocsin serve …)

A `gc.callbacks` hook times every collection, by generation; a daemon thread writes the running
totals, with the process's CPU time, as one JSON object to $BENCH_GC_STATS every 0.2 s (the file
is replaced atomically). Two readings give the share of the server's CPU spent collecting
garbage over a window, and the longest pause. The hook costs two clock reads per collection.
The process keeps its pid (this script calls `tocsin.cli.main()` in place), so /proc figures
and py-spy still apply.

Two what-ifs, to measure candidate settings without changing the server's code:
$BENCH_GC_THRESHOLD="a,b,c" calls `gc.set_threshold(a, b, c)` at start, and with
$BENCH_GC_FREEZE set, the thread calls `gc.freeze()` once the file $BENCH_GC_STATS.freeze
appears (live.py creates it when the server answers /healthz, before any client connects).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

INTERVAL = 0.2

_runs = [0, 0, 0]
_seconds = [0.0, 0.0, 0.0]
_longest = [0.0]
_started = [0.0]


def _hook(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _started[0]
    generation = int(info["generation"])
    _runs[generation] += 1
    _seconds[generation] += took
    _longest[0] = max(_longest[0], took)


def snapshot() -> dict[str, Any]:
    return {"wall": time.monotonic(), "cpu": time.process_time(), "runs": list(_runs),
            "seconds": list(_seconds), "longest": _longest[0], "frozen": gc.get_freeze_count()}


def freeze_trigger(path: Path) -> Path:
    return path.with_name(path.name + ".freeze")


def _writer(path: Path, freeze: bool) -> None:
    temporary = path.with_suffix(".tmp")
    trigger = freeze_trigger(path)
    while True:
        if freeze and not gc.get_freeze_count() and trigger.exists():
            gc.freeze()
        temporary.write_text(json.dumps(snapshot()))
        temporary.replace(path)
        time.sleep(INTERVAL)


def read(path: Path) -> dict[str, Any] | None:
    """The latest totals written by a server started through this script, if any."""
    try:
        found: dict[str, Any] = json.loads(path.read_text())
        return found
    except (OSError, ValueError):
        return None


def between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Collections over a window: runs and milliseconds by generation, the share of the
    process's CPU time, and the longest pause seen since the process started."""
    seconds = [b - a for a, b in zip(before["seconds"], after["seconds"], strict=True)]
    cpu = max(after["cpu"] - before["cpu"], 1e-9)
    return {
        "runs": [b - a for a, b in zip(before["runs"], after["runs"], strict=True)],
        "ms": [round(s * 1000, 1) for s in seconds],
        "share_of_cpu_pct": round(100 * sum(seconds) / cpu, 1),
        "longest_pause_ms_since_start": round(after["longest"] * 1000, 1),
    }


def main() -> None:
    path = Path(os.environ["BENCH_GC_STATS"])
    threshold = os.environ.get("BENCH_GC_THRESHOLD")
    if threshold:
        gc.set_threshold(*(int(part) for part in threshold.split(",")))
    gc.callbacks.append(_hook)
    threading.Thread(target=_writer, args=(path, bool(os.environ.get("BENCH_GC_FREEZE"))),
                     daemon=True, name="gc-stats").start()
    from tocsin.cli import main as tocsin_main

    sys.argv = ["tocsin", *sys.argv[1:]]
    tocsin_main()


if __name__ == "__main__":
    main()
