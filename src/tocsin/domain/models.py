"""Plain data that moves between the API, the pipeline and the store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Priority = Literal["low", "normal", "high"]


@dataclass(frozen=True, slots=True)
class NotificationDraft:
    """What a publisher asked for, for one user, before the store gives it an id and a seq."""

    user_id: str
    type: str
    data: dict[str, Any]
    title: str | None = None
    message: str | None = None
    action_url: str | None = None
    priority: Priority = "normal"
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PublishBatch:
    """One publish request: its drafts (one per user) are committed together or not at all.

    `idempotency_key` with `fingerprint` makes a retried request return the first response.
    """

    publisher: str
    drafts: list[NotificationDraft]
    idempotency_key: str | None = None
    fingerprint: str | None = None
    outbound: tuple[str, ...] = ()  # channels beyond the live streams, queued in the outbox


@dataclass(frozen=True, slots=True)
class Published:
    """A stored notification's receipt, as the publisher sees it."""

    id: uuid.UUID
    user_id: str
    seq: int
    status: str = "created"

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "user_id": self.user_id, "seq": self.seq,
                "status": self.status}


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """`notifications` is the publisher's response (receipts as JSON). `replayed` is true when
    an Idempotency-Key matched an earlier, committed request: then nothing was stored now, and
    `stored` and `unread` are empty. Otherwise `stored` holds what was committed and `unread`
    each user's count after it, for live delivery."""

    notifications: list[dict[str, Any]]
    replayed: bool = False
    stored: list[Notification] = field(default_factory=list)
    unread: dict[str, UnreadCount] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification:
    """A stored notification as its user sees it."""

    id: uuid.UUID
    user_id: str
    seq: int
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
            "read_at": _iso(self.read_at),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
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
class Delivery:
    """One outbound delivery (a notification on one channel), leased by one worker."""

    id: uuid.UUID
    channel: str
    attempts: int  # counting the attempt this lease is for
    notification: Notification
    user: UserProfile
    lease_owner: str

    @property
    def message_id(self) -> str:
        """Stable across retries, so a receiver can recognise a repeated send."""
        return f"<{self.id}@tocsin>"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: str
    channel: str
    attempts: int
    last_error: str | None
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "notification_id": str(self.notification_id),
                "user_id": self.user_id, "channel": self.channel, "attempts": self.attempts,
                "last_error": self.last_error, "updated_at": _iso(self.updated_at)}


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


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
