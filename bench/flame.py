"""Summarise a py-spy profile (`py-spy record --format raw --threads`, collapsed stacks).

Each line of the file is `thread (tid): name;frame;frame;...;leaf count`, a frame being
`function (path/in/site-packages.py:line)`. Two views:

- *self time by component*: each sample goes to the innermost frame that belongs to a library or
  to Tocsin; standard-library frames count for their caller, except asyncio, json and uuid, which
  are shown on their own. A sample whose stack is standard library only is "event loop (uvloop,
  C)" on the main thread (Python stops at `Runner.run` while uvloop runs C code) or "thread
  wait" on other threads.
- *inclusive shares* of a few questions worth asking of the publish path (how much is SQL
  compilation, the driver, FastAPI's dependency solving, ...); they overlap.

SQLAlchemy's asyncio layer runs statements in greenlets, so py-spy sees stacks that start at
`Connection.execute`: a sample there is attributed correctly, but it has no Tocsin caller above it.

    .venv/bin/python bench/flame.py /tmp/prof/postgres-single.txt
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_STDLIB = frozenset(sys.stdlib_module_names)
_OWN_STDLIB = {"asyncio": "asyncio (Python part)", "json": "JSON (stdlib json)",
               "uuid": "uuid4"}


@dataclass(frozen=True, slots=True)
class Sample:
    thread: str
    frames: tuple[str, ...]  # root first
    count: int


def load(path: Path) -> list[Sample]:
    samples: list[Sample] = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        thread = parts[0].split(":", 1)[1].strip() if parts[0].startswith("thread") else "?"
        frames = tuple(parts[1:] if parts[0].startswith("thread") else parts)
        samples.append(Sample(thread=thread, frames=frames, count=int(count)))
    return samples


def frame_path(frame: str) -> str:
    """`f (sqlalchemy/sql/compiler.py:12)` → `sqlalchemy/sql/compiler.py`."""
    inner = frame.rpartition(" (")[2].rstrip(")")
    return inner.rpartition(":")[0] if ":" in inner else inner


def _top_module(path: str) -> str:
    first = path.split("/", 1)[0]
    return first.removesuffix(".py")


def component(frame: str) -> str | None:
    """The component a frame belongs to; None for standard-library frames that count for
    their caller."""
    path = frame_path(frame)
    top = _top_module(path)
    if path.startswith("<sqlalchemy generated"):
        return "SQLAlchemy Core: build, cache-key, compile statements"
    if path.startswith("<") or not path.endswith(".py"):
        return None  # frozen modules and generated code without a file count for their caller
    if top == "sqlalchemy":
        section = path.split("/")[1] if "/" in path else ""
        if section == "sql":
            return "SQLAlchemy Core: build, cache-key, compile statements"
        if section == "engine":
            return "SQLAlchemy engine: execute, bind params, results"
        if section in ("ext", "util") or "concurrency" in path:
            return "SQLAlchemy asyncio bridge (greenlet)"
        if section in ("dialects", "connectors"):
            return "SQLAlchemy dialect adapter (asyncpg/aiosqlite)"
        if section == "pool":
            return "SQLAlchemy connection pool"
        return "SQLAlchemy (other)"
    known = {
        "greenlet": "SQLAlchemy asyncio bridge (greenlet)",
        "asyncpg": "asyncpg driver",
        "aiosqlite": "aiosqlite + sqlite3 (its thread)",
        "sqlite3": "aiosqlite + sqlite3 (its thread)",
        "pydantic": "pydantic validation",
        "pydantic_core": "pydantic validation",
        "fastapi": "FastAPI routing, dependencies, responses",
        "starlette": "Starlette (requests, middleware, responses)",
        "uvicorn": "uvicorn + httptools (HTTP)",
        "httptools": "uvicorn + httptools (HTTP)",
        "anyio": "anyio threadpool hand-off",
        "orjson": "JSON (orjson)",
        "websockets": "websockets (WebSocket protocol)",
        "redis": "redis-py (bus)",
        "tocsin": "Tocsin code",
        "alembic": "Alembic",
    }
    if top in known:
        return known[top]
    if top in _OWN_STDLIB:
        return _OWN_STDLIB[top]
    if top in _STDLIB:
        return None
    return f"other: {top}"


_LOOP_ENTRIES = ("Runner.run ", "BaseEventLoop.run_until_complete ", "BaseEventLoop.run_forever ")


def self_component(sample: Sample) -> str:
    if sample.frames and sample.frames[-1].startswith(_LOOP_ENTRIES):
        return "event loop (uvloop, C)"
    for frame in reversed(sample.frames):
        found = component(frame)
        if found is not None:
            return found
    if sample.thread == "MainThread":
        return "event loop (uvloop, C)"
    return "thread wait / hand-off (stdlib only)"


def _any(predicate: Callable[[str], bool]) -> Callable[[Sample], bool]:
    return lambda sample: any(predicate(frame) for frame in sample.frames)


def _statement_api(path: str) -> bool:
    return (path.startswith(("sqlalchemy/sql/", "<sqlalchemy generated"))
            or (path.startswith("sqlalchemy/dialects/") and path.endswith("/dml.py")))


def _builds_statements(sample: Sample) -> bool:
    """A Tocsin store frame directly calling SQLAlchemy's statement-building API."""
    frames = sample.frames
    return any(
        frame_path(caller).startswith("tocsin/store/") and _statement_api(frame_path(callee))
        for caller, callee in itertools.pairwise(frames)
    )


PROBES: list[tuple[str, Callable[[Sample], bool]]] = [
    ("SQL compilation (sqlalchemy/sql/compiler.py, crud.py)",
     _any(lambda f: frame_path(f) in ("sqlalchemy/sql/compiler.py", "sqlalchemy/sql/crud.py"))),
    ("SQLAlchemy cache-key generation (sql/cache_key.py)",
     _any(lambda f: frame_path(f) == "sqlalchemy/sql/cache_key.py")),
    ("building statements in tocsin.store (insert().values(), on_conflict, excluded)",
     _builds_statements),
    ("asyncpg (driver)", _any(lambda f: frame_path(f).startswith("asyncpg/"))),
    ("aiosqlite + sqlite3", _any(lambda f: frame_path(f).startswith("aiosqlite/"))),
    ("FastAPI solve_dependencies (auth, body parse + validation)",
     _any(lambda f: f.startswith("solve_dependencies "))),
    ("pydantic (validation, serialisation)",
     _any(lambda f: _top_module(frame_path(f)) in ("pydantic", "pydantic_core"))),
    ("JSON (json / orjson)",
     _any(lambda f: _top_module(frame_path(f)) in ("json", "orjson"))),
    ("sync dependency run in the threadpool (anyio worker threads)",
     lambda s: s.thread == "AnyIO worker thread"
     or any(frame_path(f).startswith("anyio/") for f in s.frames)),
]


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f} %" if whole else "  -  "


def _fanout(frame: str) -> bool:
    return (frame_path(frame) in ("tocsin/realtime/fanout.py", "tocsin/realtime/hub.py",
                                  "tocsin/bus/memory.py")
            or frame.startswith(("RedisBus.publish ", "RedisBus._dispatch ")))


def _stream_task(frame: str) -> bool:
    return frame.startswith("websocket_stream ") or frame_path(frame) in (
        "tocsin/realtime/connection.py", "tocsin/realtime/session.py",
        "tocsin/domain/events.py", "tocsin/realtime/transports/websocket.py")


def _ws_send(frame: str) -> bool:
    # py-spy often sees a resumed send without its callers: match the send frames themselves
    return (frame.startswith(("WebSocket.send ", "WebSocketsSansIOProtocol.send ",
                              "WebSocketsSansIOProtocol.asgi_send "))
            or _top_module(frame_path(frame)) == "websockets")


LIVE_PROBES: list[tuple[str, Callable[[Sample], bool]]] = [
    ("publish request (POST /v1/notifications; SQL run in greenlets is not under it)",
     _any(lambda f: f.startswith("publish (tocsin/api/publish.py"))),
    ("store + SQLAlchemy + driver", _any(lambda f: frame_path(f).startswith(
        ("tocsin/store/", "sqlalchemy/", "asyncpg/", "aiosqlite/")))),
    ("HTTP (uvicorn httptools protocol)",
     _any(lambda f: frame_path(f).startswith("uvicorn/protocols/http/"))),
    ("live path, all of it (the three below, without overlap)",
     _any(lambda f: _fanout(f) or _stream_task(f) or _ws_send(f))),
    ("  fan-out: Fanout, bus.publish, hub dispatch, Connection.deliver", _any(_fanout)),
    ("  stream tasks: websocket_stream, Connection, Session, Event, codec",
     _any(_stream_task)),
    ("    of which Connection.next (queue get, asyncio.wait, timers)",
     _any(lambda f: f.startswith("Connection.next "))),
    ("  WebSocket send (Starlette, uvicorn's protocol, websockets framing)", _any(_ws_send)),
    ("Redis client (redis-py)", _any(lambda f: _top_module(frame_path(f)) == "redis")),
    ("asyncio Python code (tasks, wait, queues, events)",
     _any(lambda f: _top_module(frame_path(f)) == "asyncio")),
]


def report(samples: Sequence[Sample], *, title: str, top: int = 15,
           probes: Sequence[tuple[str, Callable[[Sample], bool]]] = PROBES) -> str:
    total = sum(s.count for s in samples)
    lines = [f"## {title}", f"{total} samples (threads active at the sample; idle ones dropped)",
             ""]
    if not total:
        return "\n".join([*lines, "(no samples)"])

    threads: Counter[str] = Counter()
    for s in samples:
        threads[s.thread] += s.count
    lines.append("by thread:")
    lines += [f"  {_share(n, total)}  {name}" for name, n in threads.most_common()]

    components: Counter[str] = Counter()
    for s in samples:
        components[self_component(s)] += s.count
    lines += ["", "self time by component:"]
    lines += [f"  {_share(n, total)}  {name}" for name, n in components.most_common()]

    lines += ["", "inclusive (overlapping):"]
    for name, predicate in probes:
        hits = sum(s.count for s in samples if predicate(s))
        lines.append(f"  {_share(hits, total)}  {name}")

    leaves: Counter[str] = Counter()
    for s in samples:
        if s.frames:
            leaf = s.frames[-1]
            leaves[leaf.rpartition(":")[0] + ")" if ":" in leaf else leaf] += s.count
    lines += ["", f"top {top} functions by self time:"]
    lines += [f"  {_share(n, total)}  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(arg) for arg in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print("usage: flame.py PROFILE.txt [...]  (py-spy record --format raw --threads)",
              file=sys.stderr)
        return 2
    for path in paths:
        print(report(load(path), title=str(path)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
