"""Group commit: publishes that arrive while one transaction is in flight share the next one.

A publish on its own pays a BEGIN, a COMMIT and the commit's write-ahead-log flush for a
statement or two of work. Here one writer per store takes every publish waiting when its
transaction ends and runs them, one after another and in arrival order, in one transaction:
one BEGIN, one COMMIT and one flush for all of them. Nothing waits on a timer: an idle store
starts a publish's transaction at once, and a group is simply what queued up behind the one
before it.

A few writers run side by side on PostgreSQL (`writers`): one would leave the database waiting
for Python and Python for the database, and batches of a hundred users, which gain nothing from
sharing a transaction, would queue behind each other. On SQLite, whose writes are serial, one.
A group holds at most `max_group` publishes and `max_rows` notifications; a publish of
`max_rows` or more has nothing to gain from company and runs in a transaction of its own at
once, beside the writers (the connection pool bounds those).

Each publish keeps its own outcome (its receipts, seqs, counts). They are only visible once the
group has committed, so a 202 still means committed. A publish that fails (an idempotency key
reused with another body, say) must not take the others down: the group is rolled back and
every publish in it runs again in a transaction of its own, so only the failing one fails. A
database that cannot serve fails the whole group at once with `StoreUnavailable` (running each
again would only wait for it once per publish). A deadlock or serialisation failure retries the
whole group, as `SqlDatabase.transact` retries any transaction.

Merging: what most publishes are (to users, no Idempotency-Key, nothing outbound) can be
written for the whole group at once rather than one after another: the store passes such a
publish as `merged` beside its `work`, and the group hands all of them to the store's `merge`,
which writes them in a few statements and answers each with its own outcome, exactly as if
they had run in turn. A group of nothing else goes to `merge_alone` when the store has one
(PostgreSQL: one statement, no transaction around it). When its group failed, a publish runs
its `work` instead.

Lock order: a publish locks its users' rows in sorted id order, so two transactions can never
wait on each other. A group of publishes, run one after another, would lock in no such order
(one publish's `u5` before the next one's `u2`), and two groups on two nodes could deadlock. So
on PostgreSQL a group first locks the rows of every user it will touch, sorted, in one
statement, and what runs after finds them locked already. (A user's very first row, not there
yet to be locked, is the one exception: two groups creating the same two new users in opposite
orders can still deadlock; PostgreSQL detects it and the group is retried.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import StoreUnavailable
from tocsin.store.database import SqlDatabase
from tocsin.store.schema import users as users_table

Work = Callable[[AsyncConnection], Awaitable[Any]]
#: Writes every `merged` item of a group in one go; answers with one result per item, in order.
Merge = Callable[[AsyncConnection, list[Any]], Awaitable[list[Any]]]
#: The same for a group of nothing but merged items, outside any transaction (atomic on its
#: own: one statement).
MergeAlone = Callable[[list[Any]], Awaitable[list[Any]]]

#: At most this many publishes share a transaction, and at most this many notifications: the
#: group's row locks and its statements stay bounded, and so does the wait of its last publish.
MAX_GROUP = 64
MAX_ROWS = 100


@dataclass(slots=True)
class _Waiting:
    work: Work
    users: tuple[str, ...]
    merged: Any
    answer: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit:
    def __init__(self, db: SqlDatabase, *, writers: int = 1, max_group: int = MAX_GROUP,
                 max_rows: int = MAX_ROWS, merge: Merge | None = None,
                 merge_alone: MergeAlone | None = None) -> None:
        self._db = db
        self._merge = merge
        self._merge_alone = merge_alone
        self._writers_allowed = writers
        self._max_group = max_group
        self._max_rows = max_rows
        self._waiting: list[_Waiting] = []
        self._writers: dict[asyncio.Task[None], list[_Waiting]] = {}
        self._lock_users = sa.select(users_table.c.id).where(
            users_table.c.id == sa.func.any(
                sa.bindparam("ids", type_=postgresql.ARRAY(sa.String)))
        ).order_by(users_table.c.id).with_for_update()

    async def run(self, work: Work, users: Sequence[str], merged: Any = None) -> Any:
        """`work(conn)`'s result once the transaction it ran in has committed; its exception
        if it failed on its own. `users`: every user whose row `work` may lock. `work` must
        write nothing outside `conn` (it may run twice: once in a group that was rolled back,
        then on its own). `merged`: the same publish for the store's `merge`, when it can be
        written together with others (then `merge` gives its result, not `work`)."""
        waiting = _Waiting(work, tuple(users), merged if self._merge is not None else None)
        waiting.answer.add_done_callback(_retrieved)
        if len(users) >= self._max_rows:  # a group by itself: written at once, in this task
            await self._commit([waiting])
            return await waiting.answer
        self._waiting.append(waiting)
        if len(self._writers) < self._writers_allowed:
            # A task of its own: a caller that goes away must not stop the others' commit.
            writer = asyncio.create_task(self._write())
            self._writers[writer] = []
        # The work commits whether or not this caller is still there to hear it (as a
        # request whose client has gone would); shield it from the caller's cancellation.
        return await asyncio.shield(waiting.answer)

    async def _write(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        try:
            while self._waiting:
                group = self._writers[me] = self._next_group()
                await self._commit(group)
        finally:
            # Ended by cancellation (the app is stopping): nobody may be left waiting for
            # ever, neither its own group nor, if no writer is left, those queued.
            closing = StoreUnavailable("the store is closing")
            for each in self._writers.pop(me):
                _settle(each, exc=closing)
            if not self._writers:
                for each in self._waiting:
                    _settle(each, exc=closing)
                self._waiting = []

    def _next_group(self) -> list[_Waiting]:
        """The longest run of the oldest waiting publishes within the group's bounds (the
        oldest alone if it is over them by itself)."""
        taken = rows = 0
        for each in self._waiting:
            if taken == self._max_group or (taken and rows + len(each.users) > self._max_rows):
                break
            taken += 1
            rows += len(each.users)
        group = self._waiting[:taken]
        del self._waiting[:taken]
        return group

    async def _commit(self, group: list[_Waiting]) -> None:
        merge_alone = self._merge_alone
        if merge_alone is not None and all(each.merged is not None for each in group):
            await self._settle_group(group, merge_alone([each.merged for each in group]))
        elif len(group) == 1:
            await self._alone(group[0])
        else:
            await self._settle_group(group, self._db.transact(self._together(group)))

    def _together(self, group: list[_Waiting]) -> Work:
        """The group's work in one transaction: its merged publishes, then the others."""

        async def together(conn: AsyncConnection) -> list[Any]:
            merging = [i for i, each in enumerate(group) if each.merged is not None]
            alone = [i for i, each in enumerate(group) if each.merged is None]
            # One merged write locks its users in sorted order by itself; anything more must
            # take the group's locks first (see the module's note).
            if self._db.is_postgres and len(alone) + (1 if merging else 0) > 1:
                ids = sorted({user for each in group for user in each.users})
                await conn.execute(self._lock_users, {"ids": ids})
            results: list[Any] = [None] * len(group)
            if merging:
                assert self._merge is not None
                written = await self._merge(conn, [group[i].merged for i in merging])
                for i, result in zip(merging, written, strict=True):
                    results[i] = result
            for i in alone:
                results[i] = await group[i].work(conn)
            return results

        return together

    async def _settle_group(self, group: list[_Waiting], writing: Awaitable[list[Any]]
                            ) -> None:
        """Await the group's write and give each its result; if it failed, an unavailable
        store fails them all, and anything else has each run again on its own."""
        try:
            results = await writing
        except StoreUnavailable as exc:
            for each in group:
                _settle(each, exc=exc)
            return
        except Exception:
            # One of them failed; which one, and whether the others would have, only a
            # transaction of each can tell.
            for each in group:
                await self._alone(each)
            return
        for each, result in zip(group, results, strict=True):
            _settle(each, result=result)

    async def _alone(self, waiting: _Waiting) -> None:
        try:
            result = await self._db.transact(waiting.work)
        except Exception as exc:
            _settle(waiting, exc=exc)
        else:
            _settle(waiting, result=result)


def _retrieved(answer: asyncio.Future[Any]) -> None:
    # A caller that was cancelled never reads its answer; reading it here keeps asyncio from
    # logging "exception was never retrieved" for it.
    if not answer.cancelled():
        answer.exception()


def _settle(waiting: _Waiting, *, result: Any = None, exc: BaseException | None = None
            ) -> None:
    if waiting.answer.done():
        return
    if exc is not None:
        waiting.answer.set_exception(exc)
    else:
        waiting.answer.set_result(result)
