"""Plain data that moves between the API, the pipeline and the store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Priority = Literal["low", "normal", "high"]


@dataclass(frozen=True, slots=True)
class Notification:
    """A stored notification as its user sees it. `seq` is None only for one kept out of
    the inbox by its user's preferences (it exists for its outbound deliveries); `quiet` says
    it arrived during the user's quiet hours, for a client that stays silent then."""

    id: uuid.UUID
    user_id: str
    seq: int | None
    type: str
    title: str | None
    message: str | None
    data: dict[str, Any]
    action_url: str | None
    priority: str
    read: bool
    read_at: datetime | None
    created_at: datetime
    expires_at: datetime | None
    quiet: bool = False
    #: A grouped item: its key, how many notifications it stands for, their distinct actors
    #: (newest first), and when it last changed.
    group_key: str | None = None
    group_count: int | None = None
    group_actors: list[str] | None = None
    updated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "seq": self.seq,
            "type": self.type,
            "title": self.title,
            "message": self.message,
            "data": self.data,
            "action_url": self.action_url,
            "priority": self.priority,
            "read": self.read,
            "read_at": iso(self.read_at),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "quiet": self.quiet,
            "group": None if self.group_key is None else {
                "key": self.group_key, "count": self.group_count,
                "actors": self.group_actors or []},
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class UnreadCount:
    """The unread count of a user, valid as of the user's `seq` (their newest notification).

    `version` rises with every change of the count, reads included: of two counts, the one with
    the higher version is the newer, even when their seqs are equal."""

    count: int
    seq: int
    version: int = 0

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "seq": self.seq, "version": self.version}


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a user's notifications, newest first; `next` is the `before` cursor or None."""

    notifications: list[Notification]
    next: int | None
    unread: UnreadCount


@dataclass(frozen=True, slots=True)
class ReadChange:
    """The result of a read operation: which ids changed and the count afterwards.

    `up_to` is set by mark-all-read: every notification with seq <= it is now read."""

    ids: list[uuid.UUID]
    unread: UnreadCount
    up_to: int | None = None


@dataclass(frozen=True, slots=True)
class UserProfile:
    id: str
    email: str | None = None
    name: str | None = None
    locale: str | None = None
    timezone: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "name": self.name, "locale": self.locale,
                "timezone": self.timezone}


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored publisher key; only a hash of its secret is kept."""

    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, as every time in the API is written."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")
