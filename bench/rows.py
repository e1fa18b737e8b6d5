"""Latency with a full notifications table against an empty one, on SQLite and on PostgreSQL.

The goal measured: publish and unread-count p99 with 1,000,000 rows in the table within 10 % of
an empty table's. For each backend, two cases, each on a fresh database and a fresh server:

- empty: the schema as `tocsin serve` migrates it, nothing else;
- full:  migrated by `tocsin migrate`, then --rows (1,000,000) notifications written directly
         with SQL (PostgreSQL: one `INSERT … SELECT` over `generate_series`; SQLite: one
         `INSERT … SELECT` over a recursive CTE, in one transaction), in created_at order, so
         that a user's rows lie scattered over the table as they do when they arrive over
         weeks. They belong to --measured-users (1,000) users holding --measured-share (30 %)
         of them, 300 each by default, so that their inbox queries walk long histories, and
         to --fill-users (10,000) others holding the rest in uneven amounts (70 on average).
         Every row is one the server could have written: the types, titles, messages, data
         and links of the built-in types, the receipt's decisions, the publisher of this
         server's key; each user's seqs run 1..n without a gap, created_at rises with the seq
         over the last --history-days (80, below the 90-day retention, so that the server's
         sweep deletes nothing while it is measured), the older ones mostly read (read_at
         after created_at), the newest ones mostly unread, and the users row holds last_seq,
         unread_count and a count_version that agree with the rows. One query then checks
         the row count and those invariants, and the fill is timed. On PostgreSQL the fill
         is followed by VACUUM ANALYZE and a CHECKPOINT: an operator's database has
         statistics, a visibility map and no gigabyte of dirty pages waiting, and measuring
         without them would measure the planner's guesses and the first reads setting hint
         bits. SQLite gets no ANALYZE, since the server never runs one: an operator's file
         has no sqlite_stat1 either.

Then a `tocsin serve` on each database (bench/server.py), both started once the fill is over
and running side by side, and three operations, each as a closed loop over --concurrency (32)
connections, then paced, on one server then the other, the order alternating from one
measurement to the next (ABBA: empty first, then full first, …): on this shared 2-core machine
other work comes and goes, and what falls on one case's windows should fall on the other's too.
The server not being measured sits idle meanwhile. The operations:

- publish:      POST /v1/notifications, one `user_id` per request (a `comment` with its data,
                rendered by the type's templates), the measured users round-robin;
- unread-count: GET /v1/me/unread-count with each measured user's token in turn;
- list:         GET /v1/me/notifications?limit=--page-size (20), the first page, likewise.

Before the reads, every measured user is brought to at least --page-size + 1 notifications
through the API (batches of 100 users), so that the first page has as many items in both cases.
Each loop runs --warmup (2) seconds unmeasured, then --seconds (10) measured. Reported: req/s,
latency p50/p90/p99 of the requests that completed in the window, errors (anything but 202 or
200, over the whole run), and the CPU of the server, PostgreSQL and the rest of the machine
(% of one core), the server's gen-2 garbage collections in the window and how long they took
(each server runs through bench/gcstats.py, the same process with a timing hook: a full
collection stops every request for a few hundred milliseconds on this machine, whatever the
table holds), and how long each of the server's sweeps that overlapped the window took
(below). A ratio row full / empty follows each operation.

Which p99 the verdict uses. In the closed loop the server is saturated and 32 requests are
always waiting: by Little's law the latency is about 32 / throughput, so its p99 measures
throughput and queueing on a 2-core machine shared with the load generator far more than what
one request costs. The paced run sends at a fixed rate, --paced-fraction (0.5) of the empty
case's closed-loop throughput of that operation, the same rate for the full case, from a
scheduler that does not wait for answers (latency counted from the moment each request is
handed to the connection pool, so a request waiting for a connection counts that wait). At
half the capacity queueing is small, and the p99 is that of a request at a moderate, equal
load: what "p99 with a full table" means to a user. A paced pair in which a server could not
keep the rate (it answered less than 95 % of it, or its p50 passed half its closed loop's,
where each request waits behind 31 others: queueing) is measured again, once, at half the
rate.
The verdict per operation is therefore the paced p99 ratio, full / empty: 1.10 or less is
OK; above it is said loudly. The closed-loop ratios are shown too: a throughput that drops
with the table shows there. Timings are noisy on this machine, so the exit status is non-zero
only for errors, a wrong row count or a broken invariant (checked after the fill and again
after the server has written its own rows).

Before each pair of windows the script waits up to --quiet-wait (15) seconds for a quiet
second on the machine. A verdict line also says when its pair was disturbed: the rest of the
machine using 15 % of a core more in one window than in the other, a paced server answering
less than 95 % of its rate (saturated: its p99 is queueing), a sweep running during a window,
the server's gen-2 garbage collections taking longer in one window than in the other by half
the p99 or more, or the paced scheduler running late by half the p99 (the load generator
starved of CPU). Such a ratio measures that, not the table: run again, or with --repeat.

With --repeat N, both cases run N times (fresh databases, fills and servers every time, the
paced rates those of the first run); rows give medians, ratio rows the median of the N ratios
of each full run to the empty run beside it.

The servers run with their default settings, their in-process worker included: its sweep
(every TOCSIN_SWEEP_SECONDS, 60, and once at start) scans the table for expired and purgeable
rows, and what it costs with a full table is part of what is measured: the "sweep" column shows it
(when each sweep ran comes from the servers' jobs tables). Both servers sweep on the same
clock boundaries, so the column also names the other server's sweeps: on two cores they take
CPU from the one being measured. --explain prints, for
each database after its run, the plans (PostgreSQL: EXPLAIN ANALYZE, BUFFERS; SQLite: EXPLAIN
QUERY PLAN and a timing) of the inbox page, the count and the sweep's two scans. Temporary
databases are dropped at the end; all traffic goes to 127.0.0.1.

    .venv/bin/python bench/rows.py --quick                  # 100,000 rows, 1 s + 3 s windows
    .venv/bin/python bench/rows.py --quick --backends sqlite --explain
    .venv/bin/python bench/rows.py                          # 1,000,000 rows, both backends
    .venv/bin/python bench/rows.py --backends postgres --repeat 3 --json /tmp/rows.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import math
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

import gcstats
from loadgen import REQUEST_TIMEOUT, Outcome
from procstat import CpuSnapshot, CpuUsage, machine_busy_seconds
from publish import machine_info
from report import machine_line, report_problems
from server import (
    DEFAULT_PG_ADMIN_DSN,
    Database,
    Server,
    postgres_database,
    postgres_version,
    running_server,
    server_env,
    sqlite_database,
)
from tocsin.auth.keys import hash_key
from tocsin.auth.tokens import TokenAuthority

BACKENDS = ("postgres", "sqlite")
CASES = ("empty", "full")
OPERATIONS = ("publish", "unread-count", "list")
CLOSED, PACED = "closed", "paced"
PUBLISH_PATH = "/v1/notifications"
COUNT_PATH = "/v1/me/unread-count"
LIST_PATH = "/v1/me/notifications"
LIMIT = 1.10  # p99 full / empty at most this: the goal
OTHER_CPU_WARNING = 15.0  # % of one core used by the rest of the machine during a window
KEPT_UP = 0.95  # a paced run answering less than this share of its rate was saturated
QUEUEING_SHARE = 0.5  # … and so was one whose p50 passed this share of the closed loop's
QUIET_BUSY = 15.0  # % of one core: below this, the machine counts as quiet before a window
MAX_IN_FLIGHT = 2000  # paced runs: more unanswered requests than this and the run is invalid
MAX_REQUESTS = 5_000_000  # closed loops: a bound whatever the server's speed
MIGRATE_TIMEOUT = 300.0
TOP_UP_BATCH = 100  # users per request when measured users are brought to a full first page
# `tocsin serve` through it: the same process (it calls tocsin.cli.main() in place), with a
# hook timing each garbage collection, so that a window's pauses can be told from its queries.
GC_LAUNCHER = Path(__file__).with_name("gcstats.py")
RETENTION_DAYS = 90  # the server's default TOCSIN_RETENTION_DAYS
# The weights of the built-in types in the filled rows: twenty slots, drawn uniformly.
TYPE_SLOTS = (["comment"] * 6 + ["like"] * 5 + ["mention"] * 2 + ["follow"] * 2
              + ["message"] * 2 + ["system", "order", "payment"])
ACTORS = ["Alice Martin", "Bob Chen", "Chloé Dubois", "Dmitri Ivanov", "Emma Wilson",
          "François Leroy", "Grace Okafor", "Hiro Tanaka", "Isabel García", "Jonas Berg",
          "Kofi Mensah", "Lena Schmidt", "Mateo Rossi", "Nadia Haddad", "Oliver Smith",
          "Priya Patel", "Quentin Moreau", "Rosa Fernández", "Sven Larsen", "Tomasz Nowak",
          "Uma Rao", "Victor Hugo", "Wen Li", "Ximena López", "Yusuf Demir", "Zoe Taylor",
          "Ana Costa", "Ben Cohen", "Carla Romano", "David Kim", "Elif Kaya", "Farah Ali",
          "Gustav Nilsson", "Hana Novak", "Ivan Petrov", "Julia Weber", "Karim Benali",
          "Laura Bianchi", "Mia Johansson", "Noah Brown"]
LOREM = ("Thanks for the write-up, this is really helpful. I tried the second approach on our "
         "staging cluster and the latency dropped by half; the only thing I would add is a "
         "note about connection pooling, since the default pool is small. Could you also share "
         "the config you used for the benchmark? We are planning the migration next sprint and "
         "want to compare numbers before we commit to it. See you at the review on Thursday.")


# -- what the full database holds ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FillUser:
    id: str
    rows: int  # its notifications: seqs 1..rows
    first: float  # epoch seconds: when its history starts
    span: float  # seconds from `first` to the end of the history
    unread_tail: int  # its newest `unread_tail` rows are mostly unread, the others mostly read


@dataclass(frozen=True, slots=True)
class FillPlan:
    rows: int
    measured: list[FillUser]
    others: list[FillUser]
    end: float  # epoch seconds: no filled row is newer

    @property
    def users(self) -> list[FillUser]:
        return self.measured + self.others

    @property
    def measured_ids(self) -> list[str]:
        return [user.id for user in self.measured]

    def describe(self) -> str:
        each = self.measured[0].rows if self.measured else 0
        counts = [user.rows for user in self.others]
        others = (f"{sum(counts):,} for {len(counts):,} others ({min(counts)}-{max(counts)} "
                  f"each, mean {sum(counts) / len(counts):.0f})" if counts else "no others")
        return (f"{self.rows:,} rows: {each * len(self.measured):,} for the "
                f"{len(self.measured):,} measured users ({each} each), {others}")


def plan_fill(rows: int, measured_users: int, fill_users: int, measured_share: float,
              history_days: float, seed: int, end: float) -> FillPlan:
    """Who owns how many of `rows`: each measured user the same number, the other users uneven
    amounts (lognormal weights, at least one each), summing to `rows` exactly. Ids are drawn
    from one id space, so the measured users are not a block of the primary key."""
    rng = random.Random(seed)
    each = math.floor(rows * measured_share / measured_users)
    rest = rows - each * measured_users
    if fill_users == 0 and rest:
        each, rest = rows // measured_users, rows % measured_users
        if rest:
            raise ValueError("with --fill-users 0, --rows must be a multiple of --measured-users")
    if fill_users and rest < fill_users:
        raise ValueError(f"{rest:,} rows left for {fill_users:,} other users: at least one each "
                         "is needed (lower --measured-share or --fill-users)")
    weights = [rng.lognormvariate(0.0, 0.6) for _ in range(fill_users)]
    total = sum(weights)
    counts = [max(1, math.floor(w / total * rest)) for w in weights]
    # Rounding leaves the sum a little off: settle the difference one row at a time, on the
    # heaviest users (a bounded loop: the difference is at most the number of users).
    by_weight = sorted(range(fill_users), key=lambda i: -weights[i])
    difference = rest - sum(counts)
    for i in itertools.islice(itertools.cycle(by_weight), 4 * fill_users + abs(difference)):
        if difference == 0:
            break
        step = 1 if difference > 0 else -1
        if counts[i] + step >= 1:
            counts[i] += step
            difference -= step
    if difference:
        raise AssertionError("could not spread the rows over the users")
    ids = [f"u_{i:06d}" for i in range(measured_users + fill_users)]
    chosen = set(rng.sample(range(len(ids)), measured_users))
    history = history_days * 86400

    def user(uid: str, n: int) -> FillUser:
        first = end - history * (0.5 + 0.5 * rng.random())  # joined in the first half
        return FillUser(id=uid, rows=n, first=first, span=end - first,
                        unread_tail=max(1, round(n * (0.05 + 0.25 * rng.random()))))

    measured = [user(ids[i], each) for i in sorted(chosen)]
    others_ids = [ids[i] for i in range(len(ids)) if i not in chosen]
    others = [user(uid, n) for uid, n in zip(others_ids, counts, strict=True)]
    return FillPlan(rows=rows, measured=measured, others=others, end=end)


def publisher_of(api_key: str) -> str:
    """The publisher a configured key stands for (auth/keys.py), stored on each of its rows."""
    return f"env-{hash_key(api_key)[:12]}"


# The rows of both backends' fills, column by column. `r` draws the random parts once per row
# (MATERIALIZED: referenced several times, random() must not run again per reference); `t`
# names them. A row is read when it is older than the user's unread tail (95 % of those) or in
# the tail (30 %); read_at lies after created_at, within two days, never after the fill's end.
_PG_FILL = """
WITH u AS (
    SELECT * FROM unnest($1::varchar[], $2::int[], $3::float8[], $4::float8[], $5::int[])
        AS u(id, n, first, span, tail)
), r AS MATERIALIZED (
    SELECT u.id AS user_id, s.seq, u.n, u.tail,
           u.first + (s.seq - 0.9 + 0.8 * random()) * u.span / u.n AS at,
           random() AS r_read, random() AS r_delay,
           floor(random() * 20)::int AS k_type, floor(random() * 40)::int AS k_actor,
           100000 + floor(random() * 900000)::int AS k_obj,
           floor(random() * 160)::int AS k_len, floor(random() * 240)::int AS k_off
    FROM u CROSS JOIN LATERAL generate_series(1, u.n) AS s(seq)
), t AS (
    SELECT user_id, seq, at, r_delay, k_obj,
           ($6::text[])[k_type + 1] AS kind, ($7::text[])[k_actor + 1] AS actor,
           substr($8::text, k_off + 1, 20 + k_len) AS excerpt,
           (seq <= n - tail AND r_read < 0.95) OR (seq > n - tail AND r_read < 0.3) AS is_read
    FROM r
)
INSERT INTO notifications (id, user_id, seq, type, title, message, data, action_url, priority,
                           read, read_at, created_at, expires_at, publisher, quiet, status,
                           decisions)
SELECT gen_random_uuid(), user_id, seq, kind,
       CASE kind WHEN 'comment' THEN actor || ' commented on your post'
                 WHEN 'like' THEN actor || ' liked your post'
                 WHEN 'mention' THEN actor || ' mentioned you'
                 WHEN 'follow' THEN actor || ' started following you'
                 WHEN 'message' THEN 'New message from ' || actor
                 WHEN 'system' THEN 'New sign-in to your account'
                 WHEN 'order' THEN 'Order ' || k_obj || ' shipped'
                 ELSE 'Payment received: €' || (k_obj % 500) || '.00' END,
       CASE WHEN kind IN ('comment', 'mention', 'message', 'system', 'order')
            THEN excerpt END,
       CASE kind WHEN 'comment' THEN jsonb_build_object('actor', actor, 'post_id', k_obj,
                                       'comment_id', k_obj % 9973 + 1, 'excerpt', excerpt)
                 WHEN 'mention' THEN jsonb_build_object('actor', actor, 'post_id', k_obj,
                                       'comment_id', k_obj % 9973 + 1, 'excerpt', excerpt)
                 WHEN 'like' THEN jsonb_build_object('actor', actor, 'post_id', k_obj)
                 WHEN 'follow' THEN jsonb_build_object('actor', actor,
                                                       'actor_id', 'u_' || k_obj)
                 WHEN 'message' THEN jsonb_build_object('actor', actor, 'thread_id', k_obj,
                                                        'excerpt', excerpt)
                 WHEN 'system' THEN jsonb_build_object('subject', 'New sign-in to your account',
                                       'body', excerpt, 'ip', '192.0.2.' || (k_obj % 250))
                 WHEN 'order' THEN jsonb_build_object('order_id', k_obj, 'status', 'shipped',
                                                      'details', excerpt)
                 ELSE jsonb_build_object('amount', '€' || (k_obj % 500) || '.00',
                                         'status', 'received', 'invoice', 'INV-' || k_obj) END,
       CASE kind WHEN 'comment' THEN '/posts/' || k_obj || '#comment-' || (k_obj % 9973 + 1)
                 WHEN 'mention' THEN '/posts/' || k_obj || '#comment-' || (k_obj % 9973 + 1)
                 WHEN 'like' THEN '/posts/' || k_obj
                 WHEN 'follow' THEN '/users/u_' || k_obj
                 WHEN 'message' THEN '/messages/' || k_obj
                 WHEN 'order' THEN '/orders/' || k_obj
                 WHEN 'payment' THEN '/billing/invoices/INV-' || k_obj END,
       CASE WHEN kind IN ('system', 'payment') THEN 'high'
            WHEN kind = 'like' THEN 'low' ELSE 'normal' END,
       is_read,
       CASE WHEN is_read THEN to_timestamp(at + r_delay * least(172800, $9 - at)) END,
       to_timestamp(at),
       CASE WHEN kind = 'system' THEN to_timestamp(at) + interval '120 days' END,
       $10, false, 'created',
       CASE WHEN kind IN ('message', 'system', 'order', 'payment')
            THEN '{"email": "skipped:unavailable", "web": "delivered"}'::jsonb
            ELSE '{"web": "delivered"}'::jsonb END
FROM t
ORDER BY at
"""

_PG_USERS = """
INSERT INTO users (id, unread_count, last_seq, count_version, created_at, updated_at)
SELECT id, 0, n, n, to_timestamp(first), to_timestamp(first)
FROM unnest($1::varchar[], $2::int[], $3::float8[]) AS u(id, n, first)
"""

# The counters from the rows, as the server's writes would have left them: one more version
# per publish and per read (each read one mark-read), created when the first row was, updated
# when the last one was published.
_COUNTERS = """
UPDATE users SET unread_count = a.unread, count_version = users.last_seq + a.reads,
                 created_at = a.first, updated_at = a.last
FROM (SELECT user_id, sum(CASE WHEN read THEN 0 ELSE 1 END) AS unread,
             sum(CASE WHEN read THEN 1 ELSE 0 END) AS reads,
             min(created_at) AS first, max(created_at) AS last
      FROM notifications GROUP BY user_id) AS a
WHERE users.id = a.user_id
"""


# SQLite keeps times as text, 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC), and a UUID as 32 hex digits;
# these are version 4, like uuid.uuid4()'s. It has no arrays: the type slots and the actors
# come as JSON arrays (:types, :actors).
_SQLITE_FILL = """
WITH RECURSIVE nums(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM nums WHERE k < :max_rows),
r AS MATERIALIZED (
    SELECT u.id AS user_id, nums.k AS seq, u.n, u.tail,
           u.first + (nums.k - 0.9 + 0.8 * ((random() & 1048575) / 1048576.0)) * u.span / u.n
               AS at,
           (random() & 1048575) / 1048576.0 AS r_read,
           (random() & 1048575) / 1048576.0 AS r_delay,
           (random() & 1048575) % 20 AS k_type, (random() & 1048575) % 40 AS k_actor,
           100000 + (random() & 1048575) % 900000 AS k_obj,
           (random() & 1048575) % 160 AS k_len, (random() & 1048575) % 240 AS k_off,
           lower(hex(randomblob(16))) AS h, random() & 3 AS variant
    FROM fill_users AS u JOIN nums ON nums.k <= u.n
), t AS (
    SELECT user_id, seq, at, k_obj,
           at + r_delay * min(172800, :end - at) AS read_time,
           substr(h, 1, 12) || '4' || substr(h, 14, 3) || substr('89ab', variant + 1, 1)
               || substr(h, 18, 15) AS id,
           json_extract(:types, '$[' || k_type || ']') AS kind,
           json_extract(:actors, '$[' || k_actor || ']') AS actor,
           substr(:lorem, k_off + 1, 20 + k_len) AS excerpt,
           (seq <= n - tail AND r_read < 0.95) OR (seq > n - tail AND r_read < 0.3) AS is_read
    FROM r
)
INSERT INTO notifications (id, user_id, seq, type, title, message, data, action_url, priority,
                           read, read_at, created_at, expires_at, publisher, quiet, status,
                           decisions, group_actors)
SELECT id, user_id, seq, kind,
       CASE kind WHEN 'comment' THEN actor || ' commented on your post'
                 WHEN 'like' THEN actor || ' liked your post'
                 WHEN 'mention' THEN actor || ' mentioned you'
                 WHEN 'follow' THEN actor || ' started following you'
                 WHEN 'message' THEN 'New message from ' || actor
                 WHEN 'system' THEN 'New sign-in to your account'
                 WHEN 'order' THEN 'Order ' || k_obj || ' shipped'
                 ELSE 'Payment received: €' || (k_obj % 500) || '.00' END,
       CASE WHEN kind IN ('comment', 'mention', 'message', 'system', 'order')
            THEN excerpt END,
       CASE kind WHEN 'comment' THEN json_object('actor', actor, 'post_id', k_obj,
                                       'comment_id', k_obj % 9973 + 1, 'excerpt', excerpt)
                 WHEN 'mention' THEN json_object('actor', actor, 'post_id', k_obj,
                                       'comment_id', k_obj % 9973 + 1, 'excerpt', excerpt)
                 WHEN 'like' THEN json_object('actor', actor, 'post_id', k_obj)
                 WHEN 'follow' THEN json_object('actor', actor, 'actor_id', 'u_' || k_obj)
                 WHEN 'message' THEN json_object('actor', actor, 'thread_id', k_obj,
                                                 'excerpt', excerpt)
                 WHEN 'system' THEN json_object('subject', 'New sign-in to your account',
                                       'body', excerpt, 'ip', '192.0.2.' || (k_obj % 250))
                 WHEN 'order' THEN json_object('order_id', k_obj, 'status', 'shipped',
                                               'details', excerpt)
                 ELSE json_object('amount', '€' || (k_obj % 500) || '.00',
                                  'status', 'received', 'invoice', 'INV-' || k_obj) END,
       CASE kind WHEN 'comment' THEN '/posts/' || k_obj || '#comment-' || (k_obj % 9973 + 1)
                 WHEN 'mention' THEN '/posts/' || k_obj || '#comment-' || (k_obj % 9973 + 1)
                 WHEN 'like' THEN '/posts/' || k_obj
                 WHEN 'follow' THEN '/users/u_' || k_obj
                 WHEN 'message' THEN '/messages/' || k_obj
                 WHEN 'order' THEN '/orders/' || k_obj
                 WHEN 'payment' THEN '/billing/invoices/INV-' || k_obj END,
       CASE WHEN kind IN ('system', 'payment') THEN 'high'
            WHEN kind = 'like' THEN 'low' ELSE 'normal' END,
       is_read,
       CASE WHEN is_read THEN
           strftime('%Y-%m-%d %H:%M:%S', CAST(read_time AS INTEGER), 'unixepoch')
           || printf('.%06d', CAST((read_time - CAST(read_time AS INTEGER)) * 1000000
                                   AS INTEGER)) END,
       strftime('%Y-%m-%d %H:%M:%S', CAST(at AS INTEGER), 'unixepoch')
           || printf('.%06d', CAST((at - CAST(at AS INTEGER)) * 1000000 AS INTEGER)),
       CASE WHEN kind = 'system' THEN
           strftime('%Y-%m-%d %H:%M:%S', CAST(at AS INTEGER) + 120 * 86400, 'unixepoch')
           || printf('.%06d', CAST((at - CAST(at AS INTEGER)) * 1000000 AS INTEGER)) END,
       :publisher, 0, 'created',
       CASE WHEN kind IN ('message', 'system', 'order', 'payment')
            THEN '{"email":"skipped:unavailable","web":"delivered"}'
            ELSE '{"web":"delivered"}' END,
       'null'
FROM t
ORDER BY at
"""
# (group_actors: SQLite's writer stores JSON null as the text 'null', PostgreSQL's SQL NULL.)

_SQLITE_USERS = """
INSERT INTO users (id, unread_count, last_seq, count_version, created_at, updated_at)
SELECT id, 0, n, n, strftime('%Y-%m-%d %H:%M:%S', CAST(first AS INTEGER), 'unixepoch'),
       strftime('%Y-%m-%d %H:%M:%S', CAST(first AS INTEGER), 'unixepoch')
FROM fill_users
"""

# The invariants, in one statement, on both backends: the row count; per user, seqs 1..n with
# n the users row's last_seq (with UNIQUE (user_id, seq), min 1, max n and n rows mean no gap
# and no duplicate), the unread counter equal to the unread rows, read_at set exactly on read
# rows, a version at least the seq; and no row without its user.
_VERIFY = """
SELECT
  (SELECT count(*) FROM notifications) AS total,
  (SELECT count(*) FROM users) AS users,
  (SELECT count(*) FROM notifications WHERE read) AS read_rows,
  (SELECT count(*) FROM notifications AS n
   WHERE NOT EXISTS (SELECT 1 FROM users AS u WHERE u.id = n.user_id)) AS orphans,
  (SELECT count(*) FROM users AS u LEFT JOIN (
       SELECT user_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi,
              sum(CASE WHEN read THEN 0 ELSE 1 END) AS unread,
              sum(CASE WHEN read = (read_at IS NULL) THEN 1 ELSE 0 END) AS bad_read
       FROM notifications WHERE seq IS NOT NULL GROUP BY user_id) AS a ON a.user_id = u.id
   WHERE coalesce(a.n, 0) <> u.last_seq OR coalesce(a.lo, 1) <> 1
      OR coalesce(a.hi, 0) <> u.last_seq OR coalesce(a.unread, 0) <> u.unread_count
      OR coalesce(a.bad_read, 0) <> 0 OR u.count_version < u.last_seq) AS bad_users,
  (SELECT min(created_at) FROM notifications) AS oldest,
  (SELECT max(created_at) FROM notifications) AS newest
"""


@dataclass(slots=True)
class Check:
    """What the invariant query found."""

    total: int
    users: int
    read_rows: int
    orphans: int
    bad_users: int
    oldest: str
    newest: str
    seconds: float

    def problems(self, expected_rows: int | None) -> list[str]:
        found = []
        if expected_rows is not None and self.total != expected_rows:
            found.append(f"{self.total:,} notification rows, {expected_rows:,} expected")
        if self.orphans:
            found.append(f"{self.orphans:,} notifications without their user")
        if self.bad_users:
            found.append(f"{self.bad_users:,} users whose seqs, counter or read times do not "
                         "agree with their rows")
        return found

    def describe(self) -> str:
        share = self.read_rows / self.total if self.total else 0.0
        return (f"{self.total:,} rows, {self.users:,} users, {share:.0%} read, created "
                f"{self.oldest[:10]} .. {self.newest[:10]}; "
                f"{'invariants hold' if not self.bad_users and not self.orphans else 'BROKEN'}"
                f" (checked in {self.seconds:.1f} s)")


@dataclass(slots=True)
class Fill:
    """How the full database was made, and how long each step took (seconds)."""

    plan: str
    insert: float
    counters: float
    vacuum_analyze: float | None  # PostgreSQL only
    checkpoint: float | None
    size: str
    check: Check


# -- the databases ----------------------------------------------------------------------------

async def _pg_connect(url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(url, timeout=10)


def _pg_size(n: int) -> str:
    return f"{n / 1024 / 1024:,.0f} MB"


async def fill_postgres(url: str, plan: FillPlan, publisher: str) -> Fill:
    conn = await _pg_connect(url)
    try:
        users = plan.users
        started = time.perf_counter()
        async with conn.transaction():
            # Bulk-load settings of this transaction only: the sort by created_at in memory,
            # and no per-row foreign-key trigger (the constraint stays; `verify` counts rows
            # without their user instead, once for the whole table).
            await conn.execute("SET LOCAL work_mem = '512MB'")
            await conn.execute("SET LOCAL jit = off")  # compiling it costs more than it saves
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(_PG_USERS, [u.id for u in users], [u.rows for u in users],
                               [u.first for u in users])
            await conn.execute(_PG_FILL, [u.id for u in users], [u.rows for u in users],
                               [u.first for u in users], [u.span for u in users],
                               [u.unread_tail for u in users], TYPE_SLOTS, ACTORS, LOREM,
                               plan.end, publisher)
        inserted = time.perf_counter()
        await conn.execute(_COUNTERS)
        counted = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        vacuumed = time.perf_counter()
        await conn.execute("CHECKPOINT")
        done = time.perf_counter()
        table, indexes = await conn.fetchrow(
            "SELECT pg_relation_size('notifications'), pg_indexes_size('notifications')")
    finally:
        await conn.close()
    return Fill(plan=plan.describe(), insert=inserted - started, counters=counted - inserted,
                vacuum_analyze=vacuumed - counted, checkpoint=done - vacuumed,
                size=f"table {_pg_size(table)}, its indexes {_pg_size(indexes)}",
                check=await verify(url, "postgres"))


def _fill_sqlite_sync(path: Path, plan: FillPlan, publisher: str
                      ) -> tuple[float, float, int]:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        # A throwaway file being filled: no rollback journal worth keeping, no fsync, a large
        # cache for the index inserts. The server turns WAL back on when it connects; so does
        # the end of this function, so the file is as the server left it.
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute("PRAGMA temp_store=MEMORY")
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("CREATE TEMP TABLE fill_users (id TEXT PRIMARY KEY, n INTEGER NOT NULL, "
                     "first REAL NOT NULL, span REAL NOT NULL, tail INTEGER NOT NULL)")
        conn.executemany("INSERT INTO fill_users VALUES (?, ?, ?, ?, ?)",
                         [(u.id, u.rows, u.first, u.span, u.unread_tail) for u in plan.users])
        conn.execute(_SQLITE_USERS)
        conn.execute(_SQLITE_FILL, {
            "max_rows": max(u.rows for u in plan.users), "lorem": LOREM, "end": plan.end,
            "publisher": publisher, "types": json.dumps(TYPE_SLOTS),
            "actors": json.dumps(ACTORS, ensure_ascii=False)})
        conn.execute("COMMIT")
        inserted = time.perf_counter()
        conn.execute(_COUNTERS)
        counted = time.perf_counter()
        conn.execute("DROP TABLE fill_users")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    return inserted - started, counted - inserted, path.stat().st_size


async def fill_sqlite(path: Path, plan: FillPlan, publisher: str) -> Fill:
    insert, counters, size = await asyncio.to_thread(_fill_sqlite_sync, path, plan, publisher)
    return Fill(plan=plan.describe(), insert=insert, counters=counters, vacuum_analyze=None,
                checkpoint=None, size=f"file {_pg_size(size)}",
                check=await verify(str(path), "sqlite"))


def _verify_sqlite_sync(path: str) -> tuple[Any, ...]:
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        return tuple(conn.execute(_VERIFY).fetchone())


async def verify(target: str, backend: str) -> Check:
    """The invariant query on a PostgreSQL URL or a SQLite path."""
    started = time.perf_counter()
    if backend == "postgres":
        conn = await _pg_connect(target)
        try:
            row = tuple(await conn.fetchrow(_VERIFY))
        finally:
            await conn.close()
    else:
        row = await asyncio.to_thread(_verify_sqlite_sync, target)
    total, users, read_rows, orphans, bad, oldest, newest = row
    return Check(total=int(total), users=int(users), read_rows=int(read_rows or 0),
                 orphans=int(orphans), bad_users=int(bad), oldest=str(oldest or "-"),
                 newest=str(newest or "-"), seconds=time.perf_counter() - started)


def _sqlite_path(database: Database) -> str:
    return database.url.removeprefix("sqlite:///")


def _where(database: Database) -> str:
    """What `verify` takes: a PostgreSQL URL or a SQLite path."""
    return database.url if database.backend == "postgres" else _sqlite_path(database)


async def fewest_rows(database: Database, user_ids: Sequence[str]) -> int:
    """The smallest last_seq among `user_ids` (0 if one has no row yet)."""
    if database.backend == "postgres":
        conn = await _pg_connect(database.url)
        try:
            rows = await conn.fetch("SELECT last_seq FROM users WHERE id = ANY($1::varchar[])",
                                    list(user_ids))
        finally:
            await conn.close()
        seqs = [int(row[0]) for row in rows]
    else:
        def read() -> list[int]:
            with contextlib.closing(sqlite3.connect(_sqlite_path(database), timeout=30)) as c:
                c.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY)")
                c.executemany("INSERT INTO wanted VALUES (?)", [(uid,) for uid in user_ids])
                return [int(r[0]) for r in c.execute(
                    "SELECT last_seq FROM users JOIN wanted USING (id)")]
        seqs = await asyncio.to_thread(read)
    return min(seqs) if len(seqs) == len(user_ids) else 0


async def sweeps(database: Database) -> list[tuple[float, float]]:
    """When each of the server's sweeps ran, (start, end) in epoch seconds, from its jobs: a
    sweep is due on its period's boundary (the first one, queued at start, on the boundary
    before it: then it starts when queued), the worker polls every 0.5 s, and the job is done
    (`updated_at`) when the sweep has finished; so the start is known to within half a
    second, and the durations are at most that much too long."""
    query = ("SELECT available_at, created_at, updated_at FROM jobs "
             "WHERE kind = 'sweep' AND status = 'done'")
    if database.backend == "postgres":
        conn = await _pg_connect(database.url)
        try:
            rows = await conn.fetch(query)
        finally:
            await conn.close()
        found = [(max(row[0], row[1]).timestamp(), row[2].timestamp()) for row in rows]
    else:
        def read() -> list[tuple[Any, Any, Any]]:
            with contextlib.closing(sqlite3.connect(_sqlite_path(database), timeout=30)) as c:
                return list(c.execute(query))

        def epoch(text: str) -> float:
            return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

        found = [(max(epoch(due), epoch(queued)), epoch(done))
                 for due, queued, done in await asyncio.to_thread(read)]
    return sorted(found)


async def migrate(database: Database, home: Path, api_key: str, jwt_secret: str) -> None:
    """`tocsin migrate` on the database: the server's own migrations, as an operator runs them."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tocsin", "migrate",
        env=server_env(database.url, home, api_key, jwt_secret), cwd=home,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), MIGRATE_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"tocsin migrate did not finish within {MIGRATE_TIMEOUT:.0f} s"
                           ) from None
    if process.returncode != 0:
        raise RuntimeError(f"tocsin migrate failed ({process.returncode}):\n"
                           f"{out.decode(errors='replace')}")


# -- query plans (--explain) ------------------------------------------------------------------

# The statements of store/inbox.py (Inbox.page, count_of) and store/expiry.py (the sweep's
# purge and expire scans), written out so that their plans can be shown; same predicates,
# same order, same limits.
_PAGE = ("SELECT users.unread_count, users.last_seq, users.count_version, page.* FROM users "
         "LEFT OUTER JOIN (SELECT * FROM notifications WHERE notifications.user_id = {u} "
         "AND notifications.seq IS NOT NULL ORDER BY notifications.seq DESC LIMIT {limit}) "
         "AS page ON true WHERE users.id = {u} ORDER BY page.seq DESC")
_COUNT = "SELECT unread_count, last_seq, count_version FROM users WHERE users.id = {u}"
_PURGE = ("SELECT notifications.id FROM notifications WHERE notifications.created_at < {before} "
          "AND (notifications.status IN ('expired', 'cancelled', 'suppressed') "
          "OR notifications.read = true) LIMIT 1000")
_EXPIRE = ("SELECT notifications.id, notifications.user_id, notifications.read "
           "FROM notifications WHERE notifications.expires_at <= {now} "
           "AND notifications.seq IS NOT NULL ORDER BY notifications.expires_at LIMIT 1000")


def _explained(user_id: str, limit: int, backend: str) -> list[tuple[str, str]]:
    now = datetime.now(UTC)
    before = now - timedelta(days=RETENTION_DAYS)
    if backend == "postgres":
        def when(moment: datetime) -> str:
            return f"'{moment.isoformat()}'::timestamptz"
    else:
        def when(moment: datetime) -> str:
            return f"'{moment.replace(tzinfo=None).isoformat(sep=' ')}'"
    user = f"'{user_id}'"  # our own ids: u_ and digits, nothing to escape
    purge = _PURGE.format(before=when(before))
    if backend == "sqlite":
        purge = purge.replace("= true", "= 1")
    return [("inbox page (Inbox.page)", _PAGE.format(u=user, limit=limit + 1)),
            ("unread count (count_of)", _COUNT.format(u=user)),
            ("sweep: purge scan (Expiry.purge)", purge),
            ("sweep: expire scan (Expiry.expire)", _EXPIRE.format(now=when(now)))]


async def explain(database: Database, user_id: str, limit: int) -> str:
    queries = _explained(user_id, limit, database.backend)
    lines: list[str] = []
    if database.backend == "postgres":
        conn = await _pg_connect(database.url)
        try:
            for title, sql in queries:
                plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                lines += [f"-- {title}", *(row[0] for row in plan), ""]
        finally:
            await conn.close()
        return "\n".join(lines)

    def run() -> str:
        with contextlib.closing(sqlite3.connect(_sqlite_path(database), timeout=30)) as conn:
            for title, sql in queries:
                plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                times = []
                for _ in range(5):  # bounded: the median of five runs
                    started = time.perf_counter()
                    conn.execute(sql).fetchall()
                    times.append((time.perf_counter() - started) * 1000)
                lines.extend([f"-- {title}: median of 5 runs {statistics.median(times):.2f} ms",
                              *(f"{row[3]}" for row in plan), ""])
        return "\n".join(lines)

    return await asyncio.to_thread(run)


# -- load -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """Requests sent in turn, each storing `stores` notifications when it succeeds."""

    name: str
    calls: Sequence[Call]
    expected_status: int
    stores: int = 0


def _comment(audience: dict[str, Any], n: int) -> bytes:
    """A publish as an application sends it: a built-in type, its data, a link."""
    actor = ACTORS[n % len(ACTORS)]
    return json.dumps({
        **audience, "type": "comment",
        "data": {"actor": actor, "post_id": 1000 + n, "comment_id": n,
                 "excerpt": LOREM[n % 200: n % 200 + 80]},
        "action_url": f"/posts/{1000 + n}#comment-{n}",
    }, separators=(",", ":"), ensure_ascii=False).encode()


def operations(server: Server, user_ids: Sequence[str], page_size: int
               ) -> dict[str, Operation]:
    publisher = {"Authorization": f"Bearer {server.api_key}",
                 "Content-Type": "application/json"}
    authority = TokenAuthority(server.jwt_secret)
    users = list(user_ids)
    random.Random(7).shuffle(users)  # neighbours in the loop are not neighbours in the index
    tokens = {uid: {"Authorization": f"Bearer {authority.mint(uid, 3600)[0]}"} for uid in users}
    return {
        "publish": Operation("publish", [
            Call("POST", PUBLISH_PATH, publisher, _comment({"user_id": uid}, n))
            for n, uid in enumerate(users)], 202, stores=1),
        "unread-count": Operation("unread-count", [
            Call("GET", COUNT_PATH, tokens[uid]) for uid in users], 200),
        "list": Operation("list", [
            Call("GET", f"{LIST_PATH}?limit={page_size}", tokens[uid]) for uid in users], 200),
    }


def _cpu(snapshots: list[CpuSnapshot], postgres: str | None) -> CpuUsage:
    if len(snapshots) == 2:
        return CpuUsage.between(snapshots[0], snapshots[1], with_postgres=postgres is not None)
    nan = float("nan")
    return CpuUsage(server=nan, loadgen=nan, postgres=None, machine=nan, other=nan)


async def _sample_cpu(moments: Sequence[float], into: list[CpuSnapshot], server_pid: int,
                      postgres: str | None, gc_path: Path | None,
                      gc_into: list[dict[str, Any] | None]) -> None:
    """CPU counters (and the server's GC totals, from bench/gcstats.py's file) at each of
    `moments`: the window's two ends."""
    for moment in moments:
        await asyncio.sleep(max(0.0, moment - time.perf_counter()))
        into.append(CpuSnapshot.take(time.perf_counter(), server_pid,
                                     postgres_database=postgres))
        gc_into.append(gcstats.read(gc_path) if gc_path is not None else None)


def _gc(readings: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    if len(readings) == 2 and readings[0] is not None and readings[1] is not None:
        return gcstats.between(readings[0], readings[1])
    return None


@dataclass(slots=True)
class _Tally:
    """What one run's requests came to; only those completed inside the window are timed."""

    window_start: float
    window_end: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ok: int = 0

    async def send(self, session: aiohttp.ClientSession, base_url: str, call: Call,
                   expected: int) -> None:
        sent = time.perf_counter()
        try:
            async with session.request(call.method, base_url + call.path, data=call.body,
                                       headers=call.headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors[type(exc).__name__] += 1
            return
        done = time.perf_counter()
        if status != expected:
            self.errors[str(status)] += 1
            return
        self.ok += 1
        if self.window_start <= done <= self.window_end:
            self.latencies.append((done - sent) * 1000)

    def outcome(self, name: str, concurrency: int, warmup: float, stores: int,
                cpu: CpuUsage, capped: bool = False) -> Outcome:
        window = max(min(time.perf_counter(), self.window_end) - self.window_start, 1e-9)
        return Outcome(scenario=name, concurrency=concurrency, warmup_seconds=warmup,
                       window_seconds=window, requests=len(self.latencies),
                       notifications=len(self.latencies) * stores, latencies_ms=self.latencies,
                       errors=self.errors, total_ok_requests=self.ok, cpu=cpu,
                       stopped_by_cap=capped)


def _session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    return aiohttp.ClientSession(connector=connector,
                                 timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))


@dataclass(slots=True)
class Window:
    outcome: Outcome
    lag_p99_ms: float | None = None  # paced: how late the scheduler handed requests over
    gc: dict[str, Any] | None = None  # the server's collections in the window (gcstats)


async def closed_loop(base_url: str, op: Operation, *, concurrency: int, warmup: float,
                      seconds: float, server_pid: int, postgres: str | None,
                      gc_path: Path | None = None) -> Window:
    """`concurrency` workers, each sending its next request when the last one is answered."""
    start = time.perf_counter()
    tally = _Tally(window_start=start + warmup, window_end=start + warmup + seconds)
    counter = itertools.count()
    capped = False
    snapshots: list[CpuSnapshot] = []
    collections: list[dict[str, Any] | None] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal capped
        while time.perf_counter() < tally.window_end:
            index = next(counter)
            if index >= MAX_REQUESTS:
                capped = True
                return
            await tally.send(session, base_url, op.calls[index % len(op.calls)],
                             op.expected_status)

    async with _session(concurrency) as session:
        sampler = asyncio.create_task(_sample_cpu(
            (tally.window_start, tally.window_end), snapshots, server_pid, postgres, gc_path,
            collections))
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        await sampler
    return Window(tally.outcome(op.name, concurrency, warmup, op.stores,
                                _cpu(snapshots, postgres), capped), gc=_gc(collections))


async def paced(base_url: str, op: Operation, *, rate: float, connections: int, warmup: float,
                seconds: float, server_pid: int, postgres: str | None,
                gc_path: Path | None = None) -> Window:
    """Requests at `rate` per second whatever the answers (an open loop), over at most
    `connections` connections; each one's latency runs from when it is handed to the pool."""
    start = time.perf_counter()
    tally = _Tally(window_start=start + warmup, window_end=start + warmup + seconds)
    total = int((warmup + seconds) * rate)  # the bound of the loop below
    lags: list[float] = []
    in_flight: set[asyncio.Task[None]] = set()
    snapshots: list[CpuSnapshot] = []
    collections: list[dict[str, Any] | None] = []

    async def one(session: aiohttp.ClientSession, call: Call, due: float) -> None:
        lags.append((time.perf_counter() - due) * 1000)
        await tally.send(session, base_url, call, op.expected_status)

    async with _session(connections) as session:
        sampler = asyncio.create_task(_sample_cpu(
            (tally.window_start, tally.window_end), snapshots, server_pid, postgres, gc_path,
            collections))
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= MAX_IN_FLIGHT:
                tally.errors["client backlog"] += 1  # the server fell far behind the rate
                continue
            task = asyncio.create_task(one(session, op.calls[i % len(op.calls)], due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)  # each bounded by the request timeout
        await sampler
    lags.sort()
    lag = lags[max(0, math.ceil(0.99 * len(lags)) - 1)] if lags else float("nan")
    return Window(tally.outcome(op.name, connections, warmup, op.stores,
                                _cpu(snapshots, postgres)), lag_p99_ms=lag, gc=_gc(collections))


async def top_up(server: Server, database: Database, user_ids: Sequence[str], wanted: int
                 ) -> tuple[int, list[str]]:
    """Publish to the users with fewer than `wanted` notifications until none has: batches of
    TOP_UP_BATCH users through the API. Returns the notifications acknowledged, and errors."""
    missing = wanted - await fewest_rows(database, user_ids)
    if missing <= 0:
        return 0, []
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    slices = [list(user_ids[i:i + TOP_UP_BATCH]) for i in range(0, len(user_ids), TOP_UP_BATCH)]
    acknowledged, problems = 0, []
    async with _session(8) as session:
        for round_ in range(missing):
            for users in slices:
                body = _comment({"user_ids": users}, round_)
                async with session.post(server.base_url + PUBLISH_PATH, data=body,
                                        headers=headers) as response:
                    await response.read()
                    if response.status == 202:
                        acknowledged += len(users)
                    else:
                        problems.append(f"top-up publish answered {response.status}")
    return acknowledged, problems


# -- one case ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Measured:
    backend: str
    case: str
    operation: str
    mode: str  # CLOSED or PACED
    outcome: Outcome
    rate: float | None = None  # PACED: the asked rate
    lag_p99_ms: float | None = None
    repeat: int = 1
    window: tuple[float, float] = (0.0, 0.0)  # epoch seconds: the measured window
    sweeps: list[float] = field(default_factory=list)  # seconds each overlapping sweep took
    other_sweeps: list[float] = field(default_factory=list)  # the other case's server's
    gc: dict[str, Any] | None = None  # gcstats.between() over the window
    queueing: bool = False  # paced: its p50 says requests waited behind others (measure())

    @property
    def full_collections(self) -> tuple[int, float]:
        """Gen-2 collections in the window, and their milliseconds in all."""
        if self.gc is None:
            return 0, 0.0
        return int(self.gc["runs"][2]), float(self.gc["ms"][2])

    @property
    def kept_up(self) -> bool:
        """A paced run whose server answered (nearly) all it was asked within the window, and
        whose requests did not mostly queue."""
        return self.rate is None or (
            self.outcome.requests_per_second >= KEPT_UP * self.rate and not self.queueing)


@dataclass(slots=True)
class CaseRun:
    backend: str
    case: str
    repeat: int
    repeats: int
    database: str  # its PostgreSQL name or SQLite path, to find it in the logs
    measured: list[Measured] = field(default_factory=list)
    superseded: list[Measured] = field(default_factory=list)  # paced runs measured again
    fill: Fill | None = None
    rows_at_reads: int = 0
    after: Check | None = None
    problems: list[str] = field(default_factory=list)
    plans: str = ""
    sweeps: list[tuple[float, float]] = field(default_factory=list)  # (start, end), epoch s

    @property
    def tag(self) -> str:
        return (f"[{self.backend} {self.case}"
                f"{f' run {self.repeat}/{self.repeats}' if self.repeats > 1 else ''}]")


@contextlib.asynccontextmanager
async def fresh_database(backend: str, args: argparse.Namespace, home: Path
                         ) -> AsyncIterator[Database]:
    if backend == "sqlite":
        async with sqlite_database(home) as database:
            yield database
    else:
        async with postgres_database(args.pg_dsn) as database:
            yield database


@dataclass(slots=True)
class Target:
    """One case's database and server while both cases run side by side."""

    run: CaseRun
    database: Database
    home: Path
    api_key: str
    jwt_secret: str
    server: Server | None = None
    acknowledged: int = 0  # notifications the server answered 202 for
    before: int = 0  # rows in the table when the server started

    @property
    def gc_path(self) -> Path:
        """Where the server's bench/gcstats.py writes its collections' totals."""
        return self.home / "gc-stats.json"

    @property
    def tag(self) -> str:
        return self.run.tag


async def run_pair(backend: str, args: argparse.Namespace, workdir: Path,
                   rates: dict[str, float], repeat: int) -> list[CaseRun]:
    """Both cases of one backend, side by side: a fresh database each (the full one filled
    first), a server each, started only once the fill is over; then every operation on the
    two in turn, alternating which goes first (ABBA), so that a neighbour's burst or a drift
    of the machine falls on both alike. `rates` holds each operation's paced rate: one that
    has none takes it from the empty case's closed loop, and keeps it for every later run.
    Once the servers have stopped, the invariants are checked again on what they wrote, and
    the databases are dropped last."""
    plan = plan_fill(args.rows, args.measured_users, args.fill_users, args.measured_share,
                     args.history_days, args.seed + repeat, time.time() - 120)
    async with contextlib.AsyncExitStack() as databases:
        targets: dict[str, Target] = {}
        for case in CASES:
            home = workdir / f"{backend}-{case}-{repeat}"
            home.mkdir()
            database = await databases.enter_async_context(fresh_database(backend, args, home))
            run = CaseRun(backend=backend, case=case, repeat=repeat, repeats=args.repeat,
                          database=database.postgres_name or _sqlite_path(database))
            targets[case] = Target(run=run, database=database, home=home,
                                   api_key=secrets.token_hex(16),
                                   jwt_secret=secrets.token_urlsafe(36))
        full = targets["full"]
        await fill(full, plan, args)
        if full.run.problems:
            # Measuring a database that is not what it should be is moot.
            return [target.run for target in targets.values()]
        async with contextlib.AsyncExitStack() as servers:
            for target in targets.values():
                target.server = await servers.enter_async_context(running_server(
                    target.database, target.home, api_key=target.api_key,
                    jwt_secret=target.jwt_secret, launcher=(str(GC_LAUNCHER),),
                    extra_env={"BENCH_GC_STATS": str(target.gc_path)}))
                # Counted once the server has migrated the empty database (it writes no
                # notification on its own).
                target.before = await target.database.count_notifications()
                print(f"{target.tag} server pid {target.server.pid} on "
                      f"{target.server.base_url}, database {target.run.database}",
                      file=sys.stderr)
            await measure(targets, plan.measured_ids, args, rates)
        for target in targets.values():
            target.run.sweeps = await sweeps(target.database)
        for target in targets.values():
            run = target.run
            stored = await target.database.count_notifications() - target.before
            if stored != target.acknowledged:
                run.problems.append(f"{target.tag} {stored:,} rows stored for "
                                    f"{target.acknowledged:,} acknowledged")
            # Both servers sweep on the same clock boundaries; the idle one's sweep competes
            # for the cores with the one being measured, so both are noted.
            other = next(t.run for t in targets.values() if t is not target)
            for m in run.measured + run.superseded:
                m.sweeps = _overlapping(run.sweeps, m.window)
                m.other_sweeps = _overlapping(other.sweeps, m.window)
            run.after = await verify(_where(target.database), backend)
            run.problems += [f"{target.tag} after the run: {p}"
                             for p in run.after.problems(None)]
            if args.explain:
                run.plans = await explain(target.database, plan.measured_ids[0],
                                          args.page_size)
    return [target.run for target in targets.values()]


def _overlapping(spans: Sequence[tuple[float, float]], window: tuple[float, float]
                 ) -> list[float]:
    """How long each of `spans` lasted, for those overlapping `window`."""
    return [end - start for start, end in spans if start < window[1] and end > window[0]]


async def fill(target: Target, plan: FillPlan, args: argparse.Namespace) -> None:
    """Migrate with `tocsin migrate`, fill, verify."""
    run, database = target.run, target.database
    print(f"{target.tag} migrating, then filling {plan.describe()}", file=sys.stderr)
    await migrate(database, target.home, target.api_key, target.jwt_secret)
    publisher = publisher_of(target.api_key)
    if database.backend == "postgres":
        run.fill = await fill_postgres(database.url, plan, publisher)
    else:
        run.fill = await fill_sqlite(Path(_sqlite_path(database)), plan, publisher)
    run.problems += [f"{target.tag} after the fill: {p}"
                     for p in run.fill.check.problems(args.rows)]
    print(f"{target.tag} filled in {run.fill.insert + run.fill.counters:.1f} s; "
          f"{run.fill.check.describe()}", file=sys.stderr)


async def measure(targets: Mapping[str, Target], measured_ids: list[str],
                  args: argparse.Namespace, rates: dict[str, float]) -> None:
    """Every operation on both servers: the closed loops, then the paced runs (whose rate may
    come from the empty case's closed loop), each pair in the other order than the last."""
    ops = {case: operations(t.server, measured_ids, args.page_size)
           for case, t in targets.items() if t.server is not None}
    turn = 0
    for name in OPERATIONS:
        if name == "unread-count":  # before the first read: a full first page everywhere
            for target in targets.values():
                await fill_first_page(target, measured_ids, args.page_size)
        for mode in (CLOSED, PACED):
            order = list(CASES) if turn % 2 == 0 else list(reversed(CASES))
            turn += 1
            if mode == PACED and name not in rates:
                empty = [m for m in targets["empty"].run.measured
                         if m.operation == name and m.mode == CLOSED]
                rates[name] = _round_rate(empty[-1].outcome.requests_per_second
                                          * args.paced_fraction)
            # A paced pair in which a server could not keep the rate measured queueing, not
            # a request's latency (under 32 connections group commit shares each commit among
            # many publishes, so half the closed loop's rate can still be too much): it is
            # measured again, once, at half the rate, which later runs keep.
            for attempt in range(2 if mode == PACED else 1):
                await wait_quiet(args.quiet_wait)
                pair = []
                for case in order:
                    target = targets[case]
                    assert target.server is not None
                    m = await measure_one(target.server, target.database, ops[case][name],
                                          mode, rates.get(name), args, target.gc_path)
                    m.backend, m.case, m.repeat = target.run.backend, case, target.run.repeat
                    if mode == PACED:
                        # In the closed loop a request waits behind the 31 others; a paced
                        # p50 over half the closed loop's is mostly waiting too. (Not less:
                        # group commit keeps the closed loop's publish p50 low, and a paced
                        # publish at ease takes a fifth of it here.)
                        closed = [c for c in target.run.measured
                                  if c.operation == name and c.mode == CLOSED]
                        m.queueing = bool(closed) and (
                            m.outcome.percentile(50)
                            > closed[-1].outcome.percentile(50) * QUEUEING_SHARE)
                    pair.append((target, m))
                    target.acknowledged += m.outcome.total_ok_requests * ops[case][name].stores
                    _progress(target.tag, m)
                if attempt == 0 and mode == PACED and not all(m.kept_up for _, m in pair):
                    rates[name] = max(1.0, _round_rate(rates[name] / 2))
                    for target, m in pair:
                        target.run.superseded.append(m)
                    print(f"(a server did not keep the paced rate: {name} again at "
                          f"{rates[name]:,.0f}/s)", file=sys.stderr)
                    continue
                for target, m in pair:
                    target.run.measured.append(m)
                break


async def wait_quiet(max_wait: float) -> None:
    """Before a pair of windows: wait, at most `max_wait` seconds, for a second in which the
    whole machine (our idle servers included) used less than QUIET_BUSY % of one core."""
    cores = os.cpu_count() or 1
    busy = float("nan")
    for _ in range(round(max_wait)):
        b0, t0 = machine_busy_seconds()
        await asyncio.sleep(1.0)
        b1, t1 = machine_busy_seconds()
        busy = 100 * cores * (b1 - b0) / max(t1 - t0, 1e-9)
        if busy < QUIET_BUSY:
            return
    if max_wait >= 1:
        print(f"(the machine is busy, {busy:.0f} % of a core, after {max_wait:g} s of waiting "
              "for quiet: measuring anyway)", file=sys.stderr)


async def measure_one(server: Server, database: Database, op: Operation, mode: str,
                      rate: float | None, args: argparse.Namespace, gc_path: Path | None
                      ) -> Measured:
    postgres = database.postgres_name
    began = time.time() + args.warmup
    window = (began, began + args.seconds)
    if mode == CLOSED:
        result = await closed_loop(server.base_url, op, concurrency=args.concurrency,
                                   warmup=args.warmup, seconds=args.seconds,
                                   server_pid=server.pid, postgres=postgres, gc_path=gc_path)
        return Measured("", "", op.name, CLOSED, result.outcome, window=window, gc=result.gc)
    assert rate is not None
    result = await paced(server.base_url, op, rate=rate, connections=args.concurrency,
                         warmup=args.warmup, seconds=args.seconds, server_pid=server.pid,
                         postgres=postgres, gc_path=gc_path)
    return Measured("", "", op.name, PACED, result.outcome, rate=rate,
                    lag_p99_ms=result.lag_p99_ms, window=window, gc=result.gc)


async def fill_first_page(target: Target, measured_ids: list[str], page_size: int) -> None:
    assert target.server is not None
    added, errors = await top_up(target.server, target.database, measured_ids, page_size + 1)
    target.acknowledged += added
    target.run.problems += [f"{target.tag} {e}" for e in errors]
    target.run.rows_at_reads = await target.database.count_notifications()


def _round_rate(rate: float) -> float:
    """Two significant figures: a rate that reads as chosen, not as measured."""
    if rate < 1 or not math.isfinite(rate):
        return 1.0
    return float(f"{rate:.2g}")


def _progress(tag: str, m: Measured) -> None:
    o = m.outcome
    load = (f"{o.concurrency} connections" if m.mode == CLOSED
            else f"paced at {m.rate:,.0f}/s (scheduler lag p99 {m.lag_p99_ms:.1f} ms)")
    print(f"{tag} {m.operation} {load}: {o.requests_per_second:,.0f} req/s, p50 "
          f"{o.percentile(50):.1f} ms, p99 {o.percentile(99):.1f} ms, errors "
          f"{sum(o.errors.values())}", file=sys.stderr)


# -- output -----------------------------------------------------------------------------------

def _median(values: Iterable[float | None]) -> float:
    found = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(found) if found else float("nan")


def _ratio(full: float | None, empty: float | None) -> float | None:
    if full is None or empty is None or not empty or not math.isfinite(full / empty):
        return None
    return full / empty


def _figures(o: Outcome) -> dict[str, float | None]:
    return {"req/s": o.requests_per_second, "p50 ms": o.percentile(50),
            "p90 ms": o.percentile(90), "p99 ms": o.percentile(99), "server CPU": o.cpu.server,
            "PostgreSQL CPU": o.cpu.postgres, "other CPU": o.cpu.other}


HEAD = ["case", "operation", "load", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors",
        "server CPU", "PostgreSQL CPU", "other CPU", "gen-2 GC", "sweep"]
RATIOS = ("req/s", "p50 ms", "p90 ms", "p99 ms", "server CPU")


def _fmt(column: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if column.endswith("CPU"):
        return f"{value:.0f} %"
    if column == "req/s":
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _collections(runs: Sequence[Measured]) -> str:
    """Gen-2 collections in the windows (totals over the repeats): `1 (412 ms)`."""
    if all(m.gc is None for m in runs):
        return "-"
    count = sum(m.full_collections[0] for m in runs)
    ms = sum(m.full_collections[1] for m in runs)
    return f"{count} ({ms:.0f} ms)" if count else "0"


def _load(runs: Sequence[Measured]) -> str:
    """The load of a row's runs: a paced row names every rate its runs had (a saturated pair
    is measured again at half the rate, which the later runs keep)."""
    first = runs[0]
    if first.mode == CLOSED:
        return f"closed, {first.outcome.concurrency} conns"
    return f"paced {_rates(runs)}/s"


def _rates(runs: Sequence[Measured]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in sorted({m.rate or 0.0 for m in runs}))


def _pairs(measured: Sequence[Measured], operation: str, mode: str
           ) -> tuple[list[Measured], list[Measured]]:
    empty = sorted((m for m in measured if m.operation == operation and m.mode == mode
                    and m.case == "empty"), key=lambda m: m.repeat)
    full = sorted((m for m in measured if m.operation == operation and m.mode == mode
                   and m.case == "full"), key=lambda m: m.repeat)
    return empty, full


def pair_ratios(empty: Sequence[Measured], full: Sequence[Measured], column: str
                ) -> list[float]:
    """full / empty of one figure for each repeat that has both."""
    by_repeat = {m.repeat: m for m in empty}
    found = []
    for m in full:
        base = by_repeat.get(m.repeat)
        if base is not None:
            r = _ratio(_figures(m.outcome)[column], _figures(base.outcome)[column])
            if r is not None:
                found.append(r)
    return found


def markdown_table(measured: Sequence[Measured]) -> str:
    """A row per case, operation and load (medians over repeats), then full / empty."""
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for operation in OPERATIONS:
        for mode in (CLOSED, PACED):
            empty, full = _pairs(measured, operation, mode)
            for case, runs in (("empty", empty), ("full", full)):
                if not runs:
                    continue
                figures = {c: _median(_figures(m.outcome)[c] for m in runs)
                           for c in _figures(runs[0].outcome)}
                errors: Counter[str] = sum((m.outcome.errors for m in runs), Counter())
                swept = [f"{d:.2f} s" for m in runs for d in m.sweeps] + [
                    f"other's {d:.2f} s" for m in runs for d in m.other_sweeps]
                cells = {"case": case, "operation": operation, "load": _load(runs),
                         "errors": ", ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
                         or "0", "sweep": ", ".join(swept),
                         "gen-2 GC": _collections(runs),
                         **{c: _fmt(c, v) for c, v in figures.items()}}
                lines.append("| " + " | ".join(cells[c] for c in HEAD) + " |")
            if empty and full:
                cells = {c: "" for c in HEAD}
                cells.update({"case": "**full / empty**", "operation": operation,
                              "load": _load(full)})
                for column in RATIOS:
                    value = _median(pair_ratios(empty, full, column))
                    cells[column] = "-" if not math.isfinite(value) else f"{value:.2f}"
                lines.append("| " + " | ".join(cells[c] for c in HEAD) + " |")
    return "\n".join(lines)


def disturbances(empty: Sequence[Measured], full: Sequence[Measured]) -> list[str]:
    """Why a pair's ratio may measure the machine rather than the table: gen-2 collections
    taking much longer in one window, the rest of the machine loading one window much more
    than the other, a paced server not keeping its rate, a sweep (its own or the other
    server's) in a window, or the paced scheduler running late (the load generator starved)."""
    found = []
    by_repeat = {m.repeat: m for m in empty}
    for f in full:
        e = by_repeat.get(f.repeat)
        if e is None:
            continue
        run = f" (run {f.repeat})" if len(full) > 1 else ""
        (e_runs, e_ms), (f_runs, f_ms) = e.full_collections, f.full_collections
        shortest = min(e.outcome.percentile(99), f.outcome.percentile(99))
        if math.isfinite(shortest) and abs(f_ms - e_ms) > 0.5 * shortest:
            found.append(f"the server's gen-2 collections took {e_ms:.0f} ms ({e_runs}) in the "
                         f"empty window, {f_ms:.0f} ms ({f_runs}) in the full one{run}")
        if abs(f.outcome.cpu.other - e.outcome.cpu.other) > OTHER_CPU_WARNING:
            found.append(f"the rest of the machine used {e.outcome.cpu.other:.0f} % of a core "
                         f"during the empty window, {f.outcome.cpu.other:.0f} % during the "
                         f"full one{run}")
        for m in (e, f):
            if not m.kept_up:
                found.append(f"the {m.case} server answered {m.outcome.requests_per_second:,.0f}"
                             f" of {m.rate:,.0f} req/s at a p50 of {m.outcome.percentile(50):.0f}"
                             f" ms{run}: saturated, its p99 is queueing")
            if m.sweeps or m.other_sweeps:
                took = [f"{d:.2f} s" for d in m.sweeps] + [
                    f"the other server's {d:.2f} s" for d in m.other_sweeps]
                found.append(f"a sweep ran during the {m.case} window{run} "
                             f"({', '.join(took)})")
            p99 = m.outcome.percentile(99)
            if m.lag_p99_ms is not None and math.isfinite(p99) and m.lag_p99_ms > 0.5 * p99:
                found.append(f"the scheduler ran {m.lag_p99_ms:.1f} ms late (p99) in the "
                             f"{m.case} window{run}, half its p99 or more")
    return found


def verdicts(measured: Sequence[Measured]) -> tuple[list[str], list[str]]:
    """A line per operation, from the paced p99 ratio; and the operations over the limit."""
    lines, over = [], []
    for operation in OPERATIONS:
        empty, full = _pairs(measured, operation, PACED)
        paced_ratio = _median(pair_ratios(empty, full, "p99 ms"))
        closed_empty, closed_full = _pairs(measured, operation, CLOSED)
        closed_p99 = _median(pair_ratios(closed_empty, closed_full, "p99 ms"))
        closed_rps = _median(pair_ratios(closed_empty, closed_full, "req/s"))
        if not math.isfinite(paced_ratio):
            lines.append(f"- {operation}: no verdict (a case is missing)")
            continue
        rate = _rates(full)
        context = (f"closed loop: p99 x{closed_p99:.2f}, req/s x{closed_rps:.2f}"
                   if math.isfinite(closed_p99) else "closed loop: -")
        noise = disturbances(empty, full)
        caveat = f" (but {'; '.join(noise)})" if noise else ""
        if paced_ratio <= LIMIT:
            lines.append(f"- {operation}: OK, p99 full / empty {paced_ratio:.3f} at "
                         f"{rate} req/s paced (limit {LIMIT:.2f}); {context}{caveat}")
        else:
            lines.append(f"- {operation}: **NOT OK: p99 full / empty {paced_ratio:.3f} at "
                         f"{rate} req/s paced, over the {LIMIT:.2f} limit**; "
                         f"{context}{caveat}")
            over.append(f"{operation}: p99 full / empty {paced_ratio:.3f} > {LIMIT:.2f}"
                        + (" (disturbed: see the verdict line)" if noise else ""))
    return lines, over


def _json_lines(runs: Sequence[CaseRun], args: argparse.Namespace, machine: dict[str, str],
                rates: Mapping[str, Mapping[str, float]]) -> list[str]:
    lines = []
    for run in runs:
        fill = None
        if run.fill is not None:
            f = run.fill
            fill = {"plan": f.plan, "insert_seconds": round(f.insert, 3),
                    "counters_seconds": round(f.counters, 3),
                    "vacuum_analyze_seconds": f.vacuum_analyze, "checkpoint_seconds":
                    f.checkpoint, "size": f.size, "check": {
                        "total": f.check.total, "users": f.check.users,
                        "read_rows": f.check.read_rows, "orphans": f.check.orphans,
                        "bad_users": f.check.bad_users, "oldest": f.check.oldest,
                        "newest": f.check.newest, "seconds": round(f.check.seconds, 3)}}
        for m in run.measured + run.superseded:
            o = m.outcome
            lines.append(json.dumps({
                "benchmark": "rows", "backend": m.backend, "case": m.case,
                "operation": m.operation, "mode": m.mode, "repeat": m.repeat,
                "superseded": any(m is x for x in run.superseded),
                "repeats": args.repeat, "rows": args.rows if m.case == "full" else 0,
                "rows_at_reads": run.rows_at_reads, "paced_rate": m.rate,
                "scheduler_lag_p99_ms": m.lag_p99_ms, "concurrency": o.concurrency,
                "warmup_seconds": o.warmup_seconds, "window_seconds": round(o.window_seconds, 4),
                "requests": o.requests, "requests_per_second": round(o.requests_per_second, 2),
                "latency_ms": {"p50": o.percentile(50), "p90": o.percentile(90),
                               "p99": o.percentile(99), "p99.9": o.percentile(99.9),
                               "max": max(o.latencies_ms, default=None)},
                "errors": dict(o.errors),
                "cpu_percent_of_one_core": {"server": o.cpu.server, "loadgen": o.cpu.loadgen,
                                            "postgres": o.cpu.postgres, "other": o.cpu.other},
                "window_epoch": [round(m.window[0], 3), round(m.window[1], 3)],
                "sweeps_in_window_seconds": [round(d, 3) for d in m.sweeps],
                "other_server_sweeps_in_window_seconds": [round(d, 3)
                                                          for d in m.other_sweeps],
                "gc_in_window": m.gc,
                "sweeps_of_the_run": [[round(a, 3), round(b, 3)] for a, b in run.sweeps],
                "fill": fill, "paced_rates": rates.get(m.backend), "machine": machine,
            }, ensure_ascii=False))
    return lines


def report(runs: Sequence[CaseRun], args: argparse.Namespace, machine: dict[str, str],
           rates: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Print the tables and verdicts; the operations over the limit."""
    print()
    print(machine_line(machine))
    print(f"Load: {args.measured_users:,} measured users; closed loops over {args.concurrency} "
          f"connections, paced runs at {args.paced_fraction:g} x the empty case's closed-loop "
          f"req/s; {args.warmup:g} s warm-up + {args.seconds:g} s measured each; first page "
          f"of {args.page_size}. CPU: % of one core over the window (200 % = both cores)."
          + (f" Medians of {args.repeat} runs; ratios: the median of each run's full / empty."
             if args.repeat > 1 else ""))
    over: list[str] = []
    for backend in dict.fromkeys(run.backend for run in runs):
        mine = [run for run in runs if run.backend == backend]
        print(f"\n### {backend}\n")
        for run in mine:
            if run.fill is not None:
                f = run.fill
                steps = f"inserted in {f.insert:.1f} s, counters {f.counters:.1f} s"
                if f.vacuum_analyze is not None:
                    steps += (f", VACUUM ANALYZE {f.vacuum_analyze:.1f} s, CHECKPOINT "
                              f"{f.checkpoint or 0:.1f} s")
                print(f"Fill{f' (run {run.repeat})' if args.repeat > 1 else ''}: {f.plan}; "
                      f"{steps}; {f.size}; {f.check.describe()}.")
        at_reads = {case: _median(run.rows_at_reads for run in mine if run.case == case)
                    for case in CASES}
        print("Rows in the table when the reads were measured: " + ", ".join(
            f"{case} {value:,.0f}" for case, value in at_reads.items() if math.isfinite(value))
            + ".\n")
        measured = [m for run in mine for m in run.measured]
        print(markdown_table(measured))
        lines, mine_over = verdicts(measured)
        print(f"\nVerdict ({backend}, paced p99 full / empty):")
        print("\n".join(lines))
        over += [f"{backend} {o}" for o in mine_over]
        disturbed = [m for m in measured if m.outcome.cpu.other > OTHER_CPU_WARNING]
        if disturbed:
            print(f"\nwarning: the rest of the machine used more than {OTHER_CPU_WARNING:.0f} % "
                  "of a core during " + ", ".join(
                      f"{m.case} {m.operation} {m.mode} ({m.outcome.cpu.other:.0f} %)"
                      for m in disturbed) + ": those figures are disturbed.")
        for run in mine:
            if run.after is not None:
                took = [end - start for start, end in run.sweeps]
                swept = ("" if not took else f"; its server's sweep took {took[0]:.2f} s"
                         if len(took) == 1 else f"; its server's {len(took)} sweeps took "
                         f"{min(took):.2f}-{max(took):.2f} s")
                print(f"After the {run.case} run{f' {run.repeat}' if args.repeat > 1 else ''}: "
                      f"{run.after.describe()}{swept}.")
        for run in mine:
            if run.plans:
                print(f"\nQuery plans, {run.case} database"
                      f"{f' (run {run.repeat})' if args.repeat > 1 else ''}, after the run:\n")
                print("```\n" + run.plans.rstrip() + "\n```")
    return over


# -- main -------------------------------------------------------------------------------------

def _loopback_dsn(dsn: str) -> str:
    host = urlsplit(dsn).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(
            f"the benchmark only talks to loopback hosts, got {host!r}")
    return dsn


def _backends(value: str) -> list[str]:
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(BACKENDS)}")
    return list(dict.fromkeys(chosen))


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    def parse(value: str) -> float:
        number = kind(value)
        if number <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
        return number

    return parse


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Publish and read latency with a full notifications table against an empty "
                    "one (SQLite and PostgreSQL).")
    parser.add_argument("--backends", type=_backends, default=list(BACKENDS),
                        help="comma list of postgres,sqlite (default: both)")
    parser.add_argument("--rows", type=_positive(int),
                        help="notifications in the full table (default 1,000,000; 100,000 "
                             "with --quick)")
    parser.add_argument("--fill-users", type=int, default=10_000,
                        help="users other than the measured ones owning rows (default 10,000)")
    parser.add_argument("--measured-users", type=_positive(int), default=1000,
                        help="users published to and read as (default 1,000)")
    parser.add_argument("--measured-share", type=_fraction, default=0.3,
                        help="share of --rows owned by the measured users (default 0.3)")
    parser.add_argument("--history-days", type=_positive(float), default=80.0,
                        help="the filled rows' created_at spread (default 80; keep it under "
                             f"the {RETENTION_DAYS}-day retention)")
    parser.add_argument("--page-size", type=_positive(int), default=20,
                        help="limit of the list request (default 20, the API's default)")
    parser.add_argument("--seconds", type=_positive(float),
                        help="measured seconds per run (default 10; 3 with --quick)")
    parser.add_argument("--warmup", type=_positive(float),
                        help="unmeasured warm-up seconds per run (default 2; 1 with --quick)")
    parser.add_argument("--concurrency", type=_positive(int), default=32,
                        help="connections of the closed loops, and most of the paced runs "
                             "(default 32)")
    parser.add_argument("--paced-fraction", type=_fraction, default=0.5,
                        help="paced rate as a share of the empty case's closed-loop req/s "
                             "(default 0.5)")
    parser.add_argument("--quiet-wait", type=float, default=15.0,
                        help="before each pair of windows, wait up to this many seconds for "
                             f"the machine to be quiet (under {QUIET_BUSY:g} %% of a core "
                             "busy; default 15)")
    parser.add_argument("--repeat", type=_positive(int), default=1, metavar="N",
                        help="run both cases N times on fresh databases; print medians")
    parser.add_argument("--quick", action="store_true",
                        help="100,000 rows, 1 s warm-up + 3 s windows, unless given")
    parser.add_argument("--explain", action="store_true",
                        help="print the plans of the inbox page, the count and the sweep's "
                             "scans on each database after its run")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also append the results to PATH as JSON lines")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of who owns how many rows (default 1)")
    parser.add_argument("--pg-dsn", type=_loopback_dsn,
                        default=os.environ.get("TOCSIN_BENCH_PG_DSN", DEFAULT_PG_ADMIN_DSN),
                        help="admin DSN used to create and drop the databases "
                             "[TOCSIN_BENCH_PG_DSN] (default %(default)s)")
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = 100_000 if args.quick else 1_000_000
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    if args.fill_users < 0:
        parser.error("--fill-users cannot be negative")
    if args.history_days >= RETENTION_DAYS:
        parser.error(f"--history-days must stay under the {RETENTION_DAYS}-day retention, or "
                     "the server's sweep deletes read rows while it is measured")
    try:
        plan_fill(args.rows, args.measured_users, args.fill_users, args.measured_share,
                  args.history_days, args.seed, time.time())
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def amain(args: argparse.Namespace) -> int:
    backends = list(args.backends)
    pg_version = None
    if "postgres" in backends:
        pg_version = await postgres_version(args.pg_dsn)
        if pg_version is None:
            print("PostgreSQL is unreachable: skipping it.", file=sys.stderr)
            backends.remove("postgres")
    if not backends:
        print("nothing to measure", file=sys.stderr)
        return 1
    machine = machine_info(pg_version)
    runs: list[CaseRun] = []
    rates: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tocsin-rows-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            for repeat in range(1, args.repeat + 1):
                pair = await run_pair(backend, args, workdir, rates.setdefault(backend, {}),
                                      repeat)
                runs += pair
                problems += [p for run in pair for p in run.problems]
                if any(run.fill is not None and run.fill.check.problems(args.rows)
                       for run in pair):
                    break  # the fill itself is wrong: another run would be wrong alike
    if args.json is not None:
        with args.json.open("a") as handle:
            for line in _json_lines(runs, args, machine, rates):
                handle.write(line + "\n")
    over = report(runs, args, machine, rates)
    for run in runs:
        for m in run.measured + run.superseded:
            if m.outcome.errors:
                problems.append(f"{run.tag} {m.operation} {m.mode}: errors "
                                f"{dict(m.outcome.errors)}")
            if m.outcome.stopped_by_cap:
                problems.append(f"{run.tag} {m.operation} {m.mode}: stopped by the "
                                "request cap")
    if over:
        # Loud, but not a failure: a timing on a shared 2-core machine is not a verdict alone.
        report_problems(f"OVER THE {LIMIT:.2f} LIMIT (p99 full / empty, paced)", over)
    return report_problems("BENCHMARK PROBLEMS — the figures above are not valid", problems)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
