"""Users' preferences: one row per user and type they changed, one row of switches per user
(mute, categories, quiet hours).

The publish path reads every recipient of a batch, profile and preferences for the type
being published, in one statement per 500 recipients (`users` joined to `user_settings` and
to `preferences` for that type), never one per user. A user with no rows gets the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.models import UserProfile
from tocsin.domain.preferences import Recipient, TypePreference, UserPreferences
from tocsin.domain.quiet_hours import QuietHours
from tocsin.store.database import SqlDatabase
from tocsin.store.mapping import PROFILE_FIELDS
from tocsin.store.schema import preferences, user_settings, users
from tocsin.store.users import ensure_users

_CHUNK = 500  # recipients per statement: far below every backend's limit on parameters


class Preferences:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db
        self._ensure_users = ensure_users(db)
        own = preferences.alias("own")
        self._recipients = (
            sa.select(users.c.id, *(users.c[name] for name in PROFILE_FIELDS),
                      user_settings.c.muted, user_settings.c.categories,
                      user_settings.c.quiet_hours,
                      own.c.enabled.label("type_enabled"), own.c.channels.label("type_channels"))
            .select_from(
                users.outerjoin(user_settings, user_settings.c.user_id == users.c.id)
                .outerjoin(own, sa.and_(own.c.user_id == users.c.id,
                                        own.c.type == sa.bindparam("type"))))
            .where(users.c.id.in_(sa.bindparam("ids", expanding=True)))
        )

    async def recipients(self, user_ids: Sequence[str], type_: str) -> dict[str, Recipient]:
        """Every recipient's profile and preferences for `type_`, defaults for strangers."""
        found: dict[str, Recipient] = {}
        async with self._db.reading() as conn:
            for start in range(0, len(user_ids), _CHUNK):
                rows = await conn.execute(self._recipients, {
                    "ids": list(user_ids[start:start + _CHUNK]), "type": type_})
                for row in rows:
                    own = {} if row.type_channels is None and row.type_enabled is None else {
                        type_: TypePreference(enabled=row.type_enabled,
                                              channels=dict(row.type_channels or {}))}
                    found[row.id] = Recipient(
                        profile=UserProfile(id=row.id, **{name: row._mapping[name]
                                                          for name in PROFILE_FIELDS}),
                        prefs=_settings(row, own))
        for user_id in user_ids:
            if user_id not in found:
                found[user_id] = Recipient(UserProfile(id=user_id), UserPreferences())
        return found

    async def of_user(self, user_id: str) -> UserPreferences:
        """Everything one user chose, every type at once."""
        async with self._db.reading() as conn:
            settings = (await conn.execute(sa.select(user_settings).where(
                user_settings.c.user_id == user_id))).first()
            rows = (await conn.execute(sa.select(preferences).where(
                preferences.c.user_id == user_id))).all()
        own = {row.type: TypePreference(enabled=row.enabled, channels=dict(row.channels or {}))
               for row in rows}
        return _settings(settings, own)

    async def put_type(self, user_id: str, type_: str, enabled: bool | None,
                       channels: dict[str, bool], now: datetime) -> None:
        """Change what is given of one type's row: `enabled` when not None, and each channel
        named (the others keep what they were)."""
        async def work(conn: AsyncConnection) -> None:
            await self._ensure_user(conn, user_id, now)
            row = (await conn.execute(sa.select(preferences).where(
                preferences.c.user_id == user_id, preferences.c.type == type_))).first()
            merged = {**(dict(row.channels or {}) if row else {}), **channels}
            keep = enabled if enabled is not None else (row.enabled if row else None)
            values = {"enabled": keep, "channels": merged, "updated_at": now}
            stmt = self._db.insert(preferences).values(user_id=user_id, type=type_, **values)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["user_id", "type"], set_=values))

        await self._db.transact(work)

    async def clear_type(self, user_id: str, type_: str) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(preferences.delete().where(preferences.c.user_id == user_id,
                                                          preferences.c.type == type_))

        await self._db.transact(work)

    async def put_settings(self, user_id: str, now: datetime, *, muted: bool | None = None,
                           categories: dict[str, bool] | None = None,
                           quiet_hours: QuietHours | None = None,
                           clear_quiet_hours: bool = False) -> None:
        """Change the switches given; `categories` are merged into the user's."""
        async def work(conn: AsyncConnection) -> None:
            await self._ensure_user(conn, user_id, now)
            row = (await conn.execute(sa.select(user_settings).where(
                user_settings.c.user_id == user_id))).first()
            values: dict[str, Any] = {
                "muted": muted if muted is not None else (row.muted if row else False),
                "categories": {**(dict(row.categories or {}) if row else {}),
                               **(categories or {})},
                "quiet_hours": (None if clear_quiet_hours else
                                quiet_hours.to_json() if quiet_hours is not None else
                                row.quiet_hours if row else None),
                "updated_at": now,
            }
            stmt = self._db.insert(user_settings).values(user_id=user_id, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["user_id"],
                                                          set_=values))

        await self._db.transact(work)

    async def _ensure_user(self, conn: AsyncConnection, user_id: str, now: datetime) -> None:
        """Preferences may come before the first notification: the user's row must exist."""
        await conn.execute(self._ensure_users, {"id": user_id, "now": now})


def _settings(row: Any, own: dict[str, TypePreference]) -> UserPreferences:
    if row is None or row.categories is None:
        return UserPreferences(types=own)
    window = row.quiet_hours
    return UserPreferences(
        muted=bool(row.muted), categories=dict(row.categories or {}),
        quiet_hours=QuietHours.parse(window["start"], window["end"], window["timezone"],
                                     window["days"]) if window else None,
        types=own)
