"""The Store on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

Each concept has its module (`publishing`, `inbox`, `read_state`, `users`, `keys`,
`idempotency`, `topics`, `fanouts`, …), all written against one `SqlDatabase`; this class puts
them behind the `Store` port. How each guarantee of the port is kept is said where it is kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tocsin.domain.drafts import PublishBatch, PublishOutcome
from tocsin.domain.models import (
    ApiKey,
    Notification,
    Page,
    ReadChange,
    UnreadCount,
    UserProfile,
)
from tocsin.domain.preferences import Recipient, UserPreferences
from tocsin.domain.quiet_hours import QuietHours
from tocsin.domain.topics import Fanout, FanoutStarted, Topic
from tocsin.store.database import SqlDatabase
from tocsin.store.expiry import Expiry
from tocsin.store.fanouts import FanoutRecords
from tocsin.store.idempotency import IdempotencyKeys
from tocsin.store.inbox import Inbox
from tocsin.store.keys import ApiKeys
from tocsin.store.preferences import Preferences
from tocsin.store.publishing import Publishing
from tocsin.store.read_state import ReadState
from tocsin.store.schedule import Schedule
from tocsin.store.topics import Topics
from tocsin.store.types import TypeRows
from tocsin.store.users import Profiles


class SqlStore:
    def __init__(self, url: str, *, engine: AsyncEngine | None = None, pool_size: int = 10,
                 connect_timeout: float = 5.0, busy_timeout_ms: int = 10_000) -> None:
        self.db = SqlDatabase(url, engine=engine, pool_size=pool_size,
                              connect_timeout=connect_timeout, busy_timeout_ms=busy_timeout_ms)
        self._idempotency = IdempotencyKeys(self.db)
        self._fanouts = FanoutRecords(self.db, self._idempotency)
        self._publishing = Publishing(self.db, self._idempotency, self._fanouts)
        self._topics = Topics(self.db)
        self._inbox = Inbox(self.db)
        self._reads = ReadState(self.db)
        self._profiles = Profiles(self.db)
        self._keys = ApiKeys(self.db)
        self._preferences = Preferences(self.db)
        self._types = TypeRows(self.db)
        self._schedule = Schedule(self.db)
        self._expiry = Expiry(self.db)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def engine(self) -> AsyncEngine:
        return self.db.engine

    async def migrate(self) -> None:
        await self.db.migrate()

    async def warm(self) -> None:
        await self.db.warm()

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()

    # -- publishing and reading ----------------------------------------------------------------

    async def publish(self, batch: PublishBatch, now: datetime, ttl_seconds: int
                      ) -> PublishOutcome:
        return await self._publishing.publish(batch, now, ttl_seconds)

    async def list_notifications(self, user_id: str, *, limit: int, before: int | None = None,
                                 unread_only: bool = False, type: str | None = None) -> Page:
        return await self._inbox.page(user_id, limit=limit, before=before,
                                      unread_only=unread_only, type=type)

    async def notifications_after(self, user_id: str, after: int, limit: int
                                  ) -> list[Notification]:
        return await self._inbox.after(user_id, after, limit)

    async def get_notification(self, user_id: str, notification_id: uuid.UUID) -> Notification:
        return await self._inbox.one(user_id, notification_id)

    async def unread_count(self, user_id: str) -> UnreadCount:
        return await self._inbox.count(user_id)

    async def notifications_with_profiles(
            self, notification_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[Notification, UserProfile]]:
        return await self._inbox.with_profiles(notification_ids)

    async def mark_read(self, user_id: str, notification_id: uuid.UUID, now: datetime
                        ) -> ReadChange:
        return await self._reads.mark_read(user_id, notification_id, now)

    async def mark_all_read(self, user_id: str, now: datetime, up_to_seq: int | None = None
                            ) -> ReadChange:
        return await self._reads.mark_all_read(user_id, now, up_to_seq)

    # -- users and keys ------------------------------------------------------------------------

    async def put_user(self, profile: UserProfile, now: datetime) -> UserProfile:
        return await self._profiles.put(profile, now)

    async def get_user(self, user_id: str) -> UserProfile:
        return await self._profiles.get(user_id)

    async def create_api_key(self, key_id: str, name: str, secret_hash: str, now: datetime
                             ) -> ApiKey:
        return await self._keys.create(key_id, name, secret_hash, now)

    async def find_api_key(self, secret_hash: str) -> ApiKey | None:
        return await self._keys.find(secret_hash)

    async def list_api_keys(self) -> list[ApiKey]:
        return await self._keys.all()

    async def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        return await self._keys.revoke(key_id, now)

    async def purge_idempotency_keys(self, now: datetime) -> int:
        return await self._idempotency.purge(now)

    # -- preferences and types -----------------------------------------------------------------

    async def recipients(self, user_ids: Sequence[str], type_: str) -> dict[str, Recipient]:
        return await self._preferences.recipients(user_ids, type_)

    async def preferences_of(self, user_id: str) -> UserPreferences:
        return await self._preferences.of_user(user_id)

    async def put_type_preference(self, user_id: str, type_: str, enabled: bool | None,
                                  channels: dict[str, bool], now: datetime) -> None:
        await self._preferences.put_type(user_id, type_, enabled, channels, now)

    async def clear_type_preference(self, user_id: str, type_: str) -> None:
        await self._preferences.clear_type(user_id, type_)

    async def put_user_settings(self, user_id: str, now: datetime, *, muted: bool | None = None,
                                categories: dict[str, bool] | None = None,
                                quiet_hours: QuietHours | None = None,
                                clear_quiet_hours: bool = False) -> None:
        await self._preferences.put_settings(user_id, now, muted=muted, categories=categories,
                                             quiet_hours=quiet_hours,
                                             clear_quiet_hours=clear_quiet_hours)

    async def type_rows(self) -> dict[str, dict[str, Any] | None]:
        return await self._types.all()

    async def put_type_row(self, name: str, definition: dict[str, Any] | None, now: datetime
                           ) -> None:
        await self._types.put(name, definition, now)

    # -- scheduling, expiry, retention ---------------------------------------------------------

    async def release_scheduled(self, notification_id: uuid.UUID, now: datetime
                                ) -> PublishOutcome | None:
        return await self._schedule.release(notification_id, now)

    async def cancel_scheduled(self, publisher: str, notification_id: uuid.UUID,
                               now: datetime) -> None:
        await self._schedule.cancel(publisher, notification_id, now)

    async def expire_notifications(self, now: datetime, limit: int = 1000
                                   ) -> tuple[int, dict[str, UnreadCount]]:
        return await self._expiry.expire(now, limit)

    async def purge_notifications(self, before: datetime, limit: int = 1000) -> int:
        return await self._expiry.purge(before, limit)

    # -- topics and fan-outs -------------------------------------------------------------------

    async def get_topic(self, name: str) -> Topic:
        return await self._topics.get(name)

    async def put_topic(self, name: str, self_subscribe: bool, now: datetime) -> Topic:
        return await self._topics.put(name, self_subscribe, now)

    async def subscribe(self, topic: str, user_ids: Sequence[str], now: datetime) -> int:
        return await self._topics.subscribe(topic, user_ids, now)

    async def subscribe_self(self, topic: str, user_id: str, now: datetime) -> bool:
        return await self._topics.subscribe_self(topic, user_id, now)

    async def unsubscribe(self, topic: str, user_id: str) -> bool:
        return await self._topics.unsubscribe(topic, user_id)

    async def unsubscribe_self(self, topic: str, user_id: str) -> bool:
        return await self._topics.unsubscribe_self(topic, user_id)

    async def subscribers(self, topic: str, *, after: str | None, limit: int) -> list[str]:
        return await self._topics.subscribers(topic, after=after, limit=limit)

    async def start_fanout(self, topic: str, publisher: str, request: dict[str, Any],
                           exclude: Sequence[str], now: datetime, ttl_seconds: int, *,
                           idempotency_key: str | None = None, fingerprint: str | None = None
                           ) -> FanoutStarted:
        return await self._fanouts.start(topic, publisher, request, exclude, now, ttl_seconds,
                                         idempotency_key=idempotency_key,
                                         fingerprint=fingerprint)

    async def fanout(self, fanout_id: uuid.UUID) -> Fanout:
        return await self._fanouts.get(fanout_id)

    async def next_recipients(self, topic: str, *, after: str | None, exclude: Sequence[str],
                              limit: int) -> list[str]:
        return await self._fanouts.next_recipients(topic, after=after, exclude=exclude,
                                                   limit=limit)

    async def finish_fanout(self, fanout_id: uuid.UUID, cursor: str | None, now: datetime
                            ) -> bool:
        return await self._fanouts.finish(fanout_id, cursor, now)
