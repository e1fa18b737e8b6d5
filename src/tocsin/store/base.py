"""The Store port: the source of truth. Live push and every channel are built on top of it."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

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


class Store(Protocol):
    """Durable state of users, notifications and keys.

    Guarantees every implementation gives:

    - `publish` is atomic: every draft of the batch is committed, with its seq, its user's
      counter, the outbound deliveries its decisions ask for, and the idempotency record, or
      nothing is. It returns only after the commit.
    - Each user's `seq` starts at 1 and rises by exactly 1 per notification, with no gap and no
      duplicate, however many publishers write to that user at once.
    - A user's `unread_count` always equals the number of their unread notifications: it changes in
      the same transaction as each insert and each read change. Every count returned carries the
      seq it is valid at.
    - Reads and read changes are scoped to one user: another user's notification id is reported as
      not found, never as forbidden.
    - A publish to a topic (`start_fanout`) records the fan-out and queues its job together,
      or neither. A batch of its expansion (`publish` with `batch.step`) commits with the
      fan-out's cursor moved past it, and only if the cursor was where the step began (else
      `StaleFanout` and nothing is written): each subscriber is expanded once.
    - A failure to reach the database raises `StoreUnavailable`, never a driver error.
    """

    async def migrate(self) -> None:
        """Bring the schema to the newest version. Safe when several processes call it at once."""

    async def warm(self) -> None:
        """Open now the connections the store keeps to its database, so that the first burst
        of load (every stream of a restarted node reconnecting at once) does not open them
        all under it. Best effort: a database that cannot be reached now is no error here."""

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers."""

    async def close(self) -> None:
        """Release connections."""

    async def publish(self, batch: PublishBatch, now: datetime, ttl_seconds: int) -> PublishOutcome:
        """Store the batch; creates users on first publish.

        With an idempotency key: a key seen before (within `ttl_seconds`) with the same
        fingerprint returns the first outcome with `replayed=True` and writes nothing; with
        another fingerprint raises `IdempotencyMismatch`; while the first request is still in
        flight a racer either waits for its outcome or gets `IdempotencyInFlight`.
        """

    async def list_notifications(
        self,
        user_id: str,
        *,
        limit: int,
        before: int | None = None,
        unread_only: bool = False,
        type: str | None = None,
    ) -> Page:
        """Newest first (by seq). `before` is an exclusive seq cursor. The page and its count
        are one snapshot: the count is the one valid when the page was read."""

    async def notifications_after(self, user_id: str, after: int, limit: int
                                  ) -> list[Notification]:
        """Oldest first: the user's notifications with seq > `after`, at most `limit`. Since
        seqs are committed in order, the result never skips a seq that a later read would show.
        """

    async def get_notification(self, user_id: str, notification_id: uuid.UUID) -> Notification:
        """One notification of this user, or `NotFound`."""

    async def notifications_with_profiles(
            self, notification_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[Notification, UserProfile]]:
        """These notifications (of any users) with their users' profiles, by id; ids that are
        not stored are left out. What an outbound delivery needs to be sent."""

    async def mark_read(self, user_id: str, notification_id: uuid.UUID, now: datetime
                        ) -> ReadChange:
        """Mark one notification read. Already read: no change, `ids` empty. Unknown: `NotFound`."""

    async def mark_all_read(self, user_id: str, now: datetime, up_to_seq: int | None = None
                            ) -> ReadChange:
        """Mark read every unread notification with seq <= `up_to_seq` (default: the newest
        committed when the call starts), so one that arrives meanwhile stays unread."""

    async def unread_count(self, user_id: str) -> UnreadCount:
        """The counter and the seq it is valid at; (0, 0) for a user never published to."""

    async def put_user(self, profile: UserProfile, now: datetime) -> UserProfile:
        """Create or update a user's profile; the counter and seq are untouched."""

    async def get_user(self, user_id: str) -> UserProfile:
        """The profile, or `NotFound`."""

    async def create_api_key(self, key_id: str, name: str, secret_hash: str, now: datetime
                             ) -> ApiKey:
        """Store a publisher key by the hash of its secret."""

    async def find_api_key(self, secret_hash: str) -> ApiKey | None:
        """The active or revoked key with this hash, or None."""

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, newest first."""

    async def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        """Revoke a key (idempotent), or `NotFound`."""

    async def purge_idempotency_keys(self, now: datetime) -> int:
        """Delete expired idempotency records; returns how many."""

    # -- preferences and types -----------------------------------------------------------------

    async def recipients(self, user_ids: Sequence[str], type_: str) -> dict[str, Recipient]:
        """Each user's profile and preferences (their row for `type_` only), defaults for a
        user never seen; a bounded number of statements whatever the number of users."""

    async def preferences_of(self, user_id: str) -> UserPreferences:
        """Everything one user chose, for every type."""

    async def put_type_preference(self, user_id: str, type_: str, enabled: bool | None,
                                  channels: dict[str, bool], now: datetime) -> None:
        """Change one type's row: `enabled` unless None, and the channels named (merged)."""

    async def clear_type_preference(self, user_id: str, type_: str) -> None:
        """Back to the type's defaults (idempotent)."""

    async def put_user_settings(self, user_id: str, now: datetime, *, muted: bool | None = None,
                                categories: dict[str, bool] | None = None,
                                quiet_hours: QuietHours | None = None,
                                clear_quiet_hours: bool = False) -> None:
        """Change the switches given (categories merged); the others keep their values."""

    async def type_rows(self) -> dict[str, dict[str, Any] | None]:
        """Types defined through the API by name; None marks a removed type."""

    async def put_type_row(self, name: str, definition: dict[str, Any] | None, now: datetime
                           ) -> None:
        """Define, replace or (None) remove a type."""

    # -- scheduling, expiry, retention ---------------------------------------------------------

    async def release_scheduled(self, notification_id: uuid.UUID, now: datetime
                                ) -> PublishOutcome | None:
        """Give a scheduled notification its seq and put it in the inbox, once; None when it
        is not scheduled (released already, or cancelled)."""

    async def cancel_scheduled(self, publisher: str, notification_id: uuid.UUID,
                               now: datetime) -> None:
        """Cancel a scheduled notification and its pending jobs (idempotent); `NotFound` if
        it is not this publisher's, `Conflict` once released."""

    async def expire_notifications(self, now: datetime, limit: int = 1000
                                   ) -> tuple[int, dict[str, UnreadCount]]:
        """Take up to `limit` expired notifications out of the inbox, their unread ones off
        the counters in the same transaction; how many, and the changed counts by user."""

    async def purge_notifications(self, before: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` read or out-of-inbox notifications (and finished jobs) older
        than `before`."""

    # -- topics and fan-outs -------------------------------------------------------------------

    async def get_topic(self, name: str) -> Topic:
        """The topic, or `NotFound`."""

    async def put_topic(self, name: str, self_subscribe: bool, now: datetime) -> Topic:
        """Create the topic or change its options."""

    async def subscribe(self, topic: str, user_ids: Sequence[str], now: datetime) -> int:
        """Subscribe the users (idempotent), creating the topic if needed; returns how many
        were new."""

    async def subscribe_self(self, topic: str, user_id: str, now: datetime) -> bool:
        """A user subscribes: `NotFound` for an unknown topic, `Forbidden` unless it allows
        self-subscription; True if they were not subscribed yet."""

    async def unsubscribe(self, topic: str, user_id: str) -> bool:
        """Remove a subscriber (idempotent); True if they were subscribed."""

    async def unsubscribe_self(self, topic: str, user_id: str) -> bool:
        """A user unsubscribes, under the same rules as `subscribe_self`."""

    async def subscribers(self, topic: str, *, after: str | None, limit: int) -> list[str]:
        """A page of subscribers in user-id order after `after`; `NotFound` for no topic."""

    async def start_fanout(self, topic: str, publisher: str, request: dict[str, Any],
                           exclude: Sequence[str], now: datetime, ttl_seconds: int, *,
                           idempotency_key: str | None = None, fingerprint: str | None = None
                           ) -> FanoutStarted:
        """Record a publish to `topic` (its recipients: the subscribers but `exclude`) and
        queue its fan-out job; `NotFound` for no topic. Idempotency as for `publish`."""

    async def fanout(self, fanout_id: uuid.UUID) -> Fanout:
        """A fan-out, or `NotFound`."""

    async def next_recipients(self, topic: str, *, after: str | None, exclude: Sequence[str],
                              limit: int) -> list[str]:
        """The next subscribers to expand, in user-id order, but the excluded."""

    async def finish_fanout(self, fanout_id: uuid.UUID, cursor: str | None, now: datetime
                            ) -> bool:
        """Mark the fan-out done if its cursor is still `cursor`."""
