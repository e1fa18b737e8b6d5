"""The Store on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

How the guarantees of `Store` are kept:

- seq and counter: one upsert on the users row (`INSERT … ON CONFLICT DO UPDATE SET
  last_seq = last_seq + 1 … RETURNING`) takes the row lock on PostgreSQL and hands out the seq;
  concurrent publishers to one user queue on that lock, so seqs are gap-free. Batches lock users
  in sorted id order, so two batches can never deadlock on each other. On SQLite every write
  transaction is `BEGIN IMMEDIATE` and writes from this process queue on an asyncio lock, so
  there is one writer at a time and the same statements are trivially serial.
- read changes lock the notification rows first and the users row second; publishes lock only
  the users row (new notification rows conflict with nothing), so no lock cycle exists. A
  deadlock or serialisation failure PostgreSQL still reports is retried.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tocsin.domain.errors import (
    IdempotencyInFlight,
    IdempotencyMismatch,
    NotFound,
    StoreUnavailable,
)
from tocsin.domain.models import (
    ApiKey,
    Notification,
    Page,
    PublishBatch,
    Published,
    PublishOutcome,
    ReadChange,
    UnreadCount,
    UserProfile,
)
from tocsin.store import migrate as migrations
from tocsin.store.deliveries import enqueue
from tocsin.store.engine import WRITE_OPTION, create_engine
from tocsin.store.schema import api_keys, idempotency_keys, notifications, users

_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_ATTEMPTS = 5


class SqlStore:
    """`Store` on a SQLAlchemy async engine; see the module docstring for how it keeps its word."""

    def __init__(self, url: str, *, engine: AsyncEngine | None = None, pool_size: int = 10,
                 connect_timeout: float = 5.0, busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self.engine = engine or create_engine(
            url, pool_size=pool_size, connect_timeout=connect_timeout,
            busy_timeout_ms=busy_timeout_ms,
        )
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._is_sqlite = self.engine.dialect.name == "sqlite"
        self.insert = sqlite.insert if self._is_sqlite else postgresql.insert
        upsert = self.insert(users).values(
            id=sa.bindparam("id"), unread_count=1, last_seq=1, count_version=1,
            created_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))
        # Creates the user on first publish; else bumps the seq and the counter under the row
        # lock. Executed with one parameter set per user, in sorted id order.
        self._bump_users = upsert.on_conflict_do_update(
            index_elements=["id"],
            set_={"last_seq": users.c.last_seq + 1, "unread_count": users.c.unread_count + 1,
                  "count_version": users.c.count_version + 1,
                  "updated_at": upsert.excluded.updated_at},
        ).returning(users.c.id, users.c.last_seq, users.c.unread_count, users.c.count_version,
                    sort_by_parameter_order=True)
        # SQLite has one writer; queueing here keeps this process's writers off the busy loop.
        self._write_lock = asyncio.Lock() if self._is_sqlite else None

    # -- plumbing ------------------------------------------------------------------------------

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except Exception as exc:
            _reraise(exc)

    @asynccontextmanager
    async def _write_once(self) -> AsyncIterator[AsyncConnection]:
        try:
            if self._write_lock is not None:
                async with self._write_lock, self._writer.begin() as conn:
                    yield conn
            else:
                async with self._writer.begin() as conn:
                    yield conn
        except Exception as exc:
            _reraise(exc)

    async def transact(self, work: Any) -> Any:
        """Run `work(conn)` in a write transaction, retrying deadlocks and serialisation errors."""
        for attempt in range(_ATTEMPTS):
            try:
                async with self._write_once() as conn:
                    return await work(conn)
            except _Retry:
                if attempt == _ATTEMPTS - 1:
                    raise StoreUnavailable("the database kept aborting the transaction") from None
                await asyncio.sleep(0.005 * 2**attempt)
        raise AssertionError("unreachable")

    async def migrate(self) -> None:
        try:
            await migrations.upgrade(self.engine, self.url)
        except Exception as exc:
            _reraise(exc)

    async def ping(self) -> None:
        async with self.reading() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()

    # -- publish -------------------------------------------------------------------------------

    async def publish(self, batch: PublishBatch, now: datetime, ttl_seconds: int) -> PublishOutcome:
        async def work(conn: AsyncConnection) -> PublishOutcome:
            if batch.idempotency_key is not None:
                earlier = await self._claim_idempotency(conn, batch, now, ttl_seconds)
                if earlier is not None:
                    return earlier
            stored, unread = await self._insert_notifications(conn, batch, now)
            if batch.outbound:
                await enqueue(conn, stored, batch.outbound, now)
            response = [
                Published(id=item.id, user_id=item.user_id, seq=item.seq).to_json()
                for item in stored
            ]
            if batch.idempotency_key is not None:
                await conn.execute(
                    idempotency_keys.update()
                    .where(idempotency_keys.c.publisher == batch.publisher,
                           idempotency_keys.c.key == batch.idempotency_key)
                    .values(response=response)
                )
            return PublishOutcome(notifications=response, stored=stored, unread=unread)

        outcome: PublishOutcome = await self.transact(work)
        return outcome

    async def _claim_idempotency(self, conn: AsyncConnection, batch: PublishBatch,
                                 now: datetime, ttl_seconds: int) -> PublishOutcome | None:
        """Claim the key for this request, or return the committed outcome it already has.

        On PostgreSQL a racer's INSERT waits on the first request's uncommitted row, then sees
        the conflict and reads the committed response: all racers get the same answer.
        """
        key_filter = sa.and_(idempotency_keys.c.publisher == batch.publisher,
                             idempotency_keys.c.key == batch.idempotency_key)
        await conn.execute(
            idempotency_keys.delete().where(key_filter, idempotency_keys.c.expires_at <= now)
        )
        claim = (
            self.insert(idempotency_keys)
            .values(publisher=batch.publisher, key=batch.idempotency_key,
                    fingerprint=batch.fingerprint, created_at=now,
                    expires_at=now + timedelta(seconds=ttl_seconds))
            .on_conflict_do_nothing(index_elements=["publisher", "key"])
            .returning(idempotency_keys.c.key)
        )
        if (await conn.execute(claim)).first() is not None:
            return None
        row = (await conn.execute(
            sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.response)
            .where(key_filter)
        )).first()
        if row is None:  # the holder rolled back between our insert and select; let caller retry
            raise _Retry
        if row.fingerprint != batch.fingerprint:
            raise IdempotencyMismatch(
                "this Idempotency-Key was used with a different request body",
                details={"idempotency_key": batch.idempotency_key},
            )
        if row.response is None:
            raise IdempotencyInFlight("a request with this Idempotency-Key is still in flight")
        return PublishOutcome(notifications=row.response, replayed=True)

    async def _insert_notifications(
        self, conn: AsyncConnection, batch: PublishBatch, now: datetime
    ) -> tuple[list[Notification], dict[str, UnreadCount]]:
        user_ids = sorted({draft.user_id for draft in batch.drafts})
        if len(user_ids) != len(batch.drafts):
            raise ValueError("a batch holds at most one draft per user")
        unread: dict[str, UnreadCount] = {}
        # One cached statement, executed with a list of parameter sets: SQLAlchemy compiles it
        # once per process (rows written into the statement itself would be compiled every time).
        bumped = await conn.execute(self._bump_users, [{"id": uid, "now": now} for uid in user_ids])
        for uid, seq, count, version in bumped.all():
            unread[uid] = UnreadCount(count=count, seq=seq, version=version)
        stored = [
            Notification(
                id=uuid.uuid4(), user_id=draft.user_id, seq=unread[draft.user_id].seq,
                type=draft.type, title=draft.title, message=draft.message, data=draft.data,
                action_url=draft.action_url, priority=draft.priority, read=False, read_at=None,
                created_at=now, expires_at=draft.expires_at,
            )
            for draft in batch.drafts
        ]
        rows = [
            {"id": item.id, "user_id": item.user_id, "seq": item.seq, "type": item.type,
             "title": item.title, "message": item.message, "data": item.data,
             "action_url": item.action_url, "priority": item.priority, "read": False,
             "read_at": None, "created_at": now, "expires_at": item.expires_at,
             "idempotency_key": batch.idempotency_key, "publisher": batch.publisher}
            for item in stored
        ]
        await conn.execute(notifications.insert(), rows)
        return stored, unread

    # -- reading -------------------------------------------------------------------------------

    async def list_notifications(self, user_id: str, *, limit: int, before: int | None = None,
                                 unread_only: bool = False, type: str | None = None) -> Page:
        query = sa.select(notifications).where(notifications.c.user_id == user_id)
        if before is not None:
            query = query.where(notifications.c.seq < before)
        if unread_only:
            query = query.where(notifications.c.read == sa.false())
        if type is not None:
            query = query.where(notifications.c.type == type)
        query = query.order_by(notifications.c.seq.desc()).limit(limit + 1)
        async with self.reading() as conn, conn.begin():
            rows = (await conn.execute(query)).all()
            count = await self._count(conn, user_id)
        items = [_notification(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(notifications=items, next=items[-1].seq if more and items else None,
                    unread=count)

    async def notifications_after(self, user_id: str, after: int, limit: int
                                  ) -> list[Notification]:
        query = (sa.select(notifications)
                 .where(notifications.c.user_id == user_id, notifications.c.seq > after)
                 .order_by(notifications.c.seq).limit(limit))
        async with self.reading() as conn:
            return [_notification(row) for row in (await conn.execute(query)).all()]

    async def get_notification(self, user_id: str, notification_id: uuid.UUID) -> Notification:
        async with self.reading() as conn:
            row = (await conn.execute(
                sa.select(notifications).where(notifications.c.id == notification_id,
                                               notifications.c.user_id == user_id)
            )).first()
        if row is None:
            raise NotFound("no such notification")
        return _notification(row)

    async def unread_count(self, user_id: str) -> UnreadCount:
        async with self.reading() as conn:
            return await self._count(conn, user_id)

    @staticmethod
    async def _count(conn: AsyncConnection, user_id: str) -> UnreadCount:
        row = (await conn.execute(
            sa.select(users.c.unread_count, users.c.last_seq, users.c.count_version)
            .where(users.c.id == user_id)
        )).first()
        return UnreadCount(0, 0) if row is None else UnreadCount(row[0], row[1], row[2])

    # -- read changes --------------------------------------------------------------------------

    async def mark_read(self, user_id: str, notification_id: uuid.UUID, now: datetime
                        ) -> ReadChange:
        async def work(conn: AsyncConnection) -> ReadChange:
            changed = (await conn.execute(
                notifications.update()
                .where(notifications.c.id == notification_id,
                       notifications.c.user_id == user_id,
                       notifications.c.read == sa.false())
                .values(read=True, read_at=now)
                .returning(notifications.c.id)
            )).scalars().all()
            if not changed:
                exists = (await conn.execute(
                    sa.select(notifications.c.id).where(notifications.c.id == notification_id,
                                                        notifications.c.user_id == user_id)
                )).first()
                if exists is None:
                    raise NotFound("no such notification")
                return ReadChange(ids=[], unread=await self._count(conn, user_id))
            return ReadChange(ids=list(changed),
                              unread=await self._decrement(conn, user_id, len(changed)))

        result: ReadChange = await self.transact(work)
        return result

    async def mark_all_read(self, user_id: str, now: datetime, up_to_seq: int | None = None
                            ) -> ReadChange:
        async def work(conn: AsyncConnection) -> ReadChange:
            newest = (await self._count(conn, user_id)).seq
            # The bound is fixed before the update, so the event can name it exactly, and a
            # notification committed after this point stays unread.
            bound = newest if up_to_seq is None else min(up_to_seq, newest)
            changed = (await conn.execute(
                notifications.update()
                .where(notifications.c.user_id == user_id,
                       notifications.c.read == sa.false(),
                       notifications.c.seq <= bound)
                .values(read=True, read_at=now)
                .returning(notifications.c.id)
            )).scalars().all()
            if not changed:
                return ReadChange(ids=[], unread=await self._count(conn, user_id), up_to=bound)
            return ReadChange(ids=list(changed), up_to=bound,
                              unread=await self._decrement(conn, user_id, len(changed)))

        result: ReadChange = await self.transact(work)
        return result

    @staticmethod
    async def _decrement(conn: AsyncConnection, user_id: str, by: int) -> UnreadCount:
        row = (await conn.execute(
            users.update().where(users.c.id == user_id)
            .values(unread_count=users.c.unread_count - by,
                    count_version=users.c.count_version + 1)
            .returning(users.c.unread_count, users.c.last_seq, users.c.count_version)
        )).one()
        return UnreadCount(row[0], row[1], row[2])

    # -- users ---------------------------------------------------------------------------------

    async def put_user(self, profile: UserProfile, now: datetime) -> UserProfile:
        fields = {"email": profile.email, "name": profile.name, "locale": profile.locale,
                  "timezone": profile.timezone}

        async def work(conn: AsyncConnection) -> None:
            stmt = self.insert(users).values(id=profile.id, created_at=now, updated_at=now,
                                              **fields)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["id"], set_={**fields, "updated_at": now}))

        await self.transact(work)
        return profile

    async def get_user(self, user_id: str) -> UserProfile:
        async with self.reading() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise NotFound("no such user")
        return UserProfile(id=row.id, email=row.email, name=row.name, locale=row.locale,
                           timezone=row.timezone)

    # -- API keys ------------------------------------------------------------------------------

    async def create_api_key(self, key_id: str, name: str, secret_hash: str, now: datetime
                             ) -> ApiKey:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(api_keys.insert().values(
                id=key_id, name=name, secret_hash=secret_hash, created_at=now))

        await self.transact(work)
        return ApiKey(id=key_id, name=name, created_at=now)

    async def find_api_key(self, secret_hash: str) -> ApiKey | None:
        async with self.reading() as conn:
            row = (await conn.execute(
                sa.select(api_keys).where(api_keys.c.secret_hash == secret_hash))).first()
        return None if row is None else _api_key(row)

    async def list_api_keys(self) -> list[ApiKey]:
        async with self.reading() as conn:
            rows = (await conn.execute(
                sa.select(api_keys).order_by(api_keys.c.created_at.desc()))).all()
        return [_api_key(row) for row in rows]

    async def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        async def work(conn: AsyncConnection) -> ApiKey:
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now))
            row = (await conn.execute(
                sa.select(api_keys).where(api_keys.c.id == key_id))).first()
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            return _api_key(row)

        key: ApiKey = await self.transact(work)
        return key

    async def purge_idempotency_keys(self, now: datetime) -> int:
        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.expires_at <= now))
            return int(result.rowcount or 0)

        purged: int = await self.transact(work)
        return purged


def _reraise(exc: Exception) -> NoReturn:
    translated = _translate(exc)
    if translated is exc:
        raise exc
    raise translated from exc


class _Retry(Exception):
    """The transaction lost a race the database reports as retryable."""


def _translate(exc: BaseException) -> BaseException:
    """Driver and pool errors → `StoreUnavailable` or `_Retry`; anything else is kept.

    "The database cannot serve now" is decided by SQLSTATE class, not by exception type: the
    drivers map the same condition to different classes (asyncpg's "the database system is
    starting up" arrives as a bare DBAPI `Error`), and a 500 for it would tell a caller that
    retrying is pointless when it is exactly what to do."""
    if isinstance(exc, (_Retry, StoreUnavailable)):
        return exc
    sqlstate = _sqlstate(exc)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return _Retry()
    if sqlstate is not None and sqlstate[:2] in _UNAVAILABLE_CLASSES:
        return StoreUnavailable(f"the database is unavailable: {_first_line(_origin(exc))}")
    if isinstance(exc, sa_exc.DBAPIError):
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or \
                exc.connection_invalidated:
            return StoreUnavailable(f"the database is unavailable: {_first_line(exc.orig)}")
        return exc
    if isinstance(exc, (OSError, TimeoutError, sa_exc.TimeoutError, ConnectionError)):
        return StoreUnavailable(f"the database is unreachable: {_first_line(exc)}")
    name = type(exc).__name__
    if type(exc).__module__.startswith("asyncpg") and (
        "Connection" in name or "CannotConnectNow" in name or "TooManyConnections" in name
        or name == "InterfaceError"
    ):
        return StoreUnavailable(f"the database is unavailable: {_first_line(exc)}")
    return exc


#: SQLSTATE classes meaning "cannot serve now, try later": 08 connection exception,
#: 53 insufficient resources (too many connections, disk full, out of memory),
#: 57 operator intervention (shutting down, starting up, in recovery), 58 system error (I/O).
#: And 28 / 3D: the role or the database is missing or refused; a deployment mistake, but
#: still "nothing was stored, the database cannot take it", never a 500.
_UNAVAILABLE_CLASSES = {"08", "53", "57", "58", "28", "3D"}


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, wrapped or not; None for anything else."""
    seen: BaseException | None = exc
    for _ in range(4):  # SQLAlchemy wraps the driver's error, which may wrap another
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def _origin(exc: BaseException) -> BaseException:
    """The driver's own error, for a message that says what the database said."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _notification(row: Any) -> Notification:
    return Notification(
        id=row.id, user_id=row.user_id, seq=row.seq, type=row.type, title=row.title,
        message=row.message, data=row.data, action_url=row.action_url, priority=row.priority,
        read=row.read, read_at=row.read_at, created_at=row.created_at, expires_at=row.expires_at,
    )


def _api_key(row: Any) -> ApiKey:
    return ApiKey(id=row.id, name=row.name, created_at=row.created_at,
                  revoked_at=row.revoked_at, last_used_at=row.last_used_at)
