"""A group of plain publishes written as one: the plan both backends share, and PostgreSQL's
single statement.

A plain publish (to users' inboxes, no Idempotency-Key, nothing grouped, scheduled or outbound;
see `store/publishing.py: mergeable`) needs its users' rows bumped and its notifications
inserted, nothing else. For a whole group of them, `MergePlan` counts each user's notifications
(`n`), and each notification's place among its user's (`later`: how many of that user's come
after it in the group). One upsert bumps each user by `n`; a user's notification then takes
`last_seq - later`, and its count and version the same way, which is exactly what it would
have had if the publishes had been written one after another in arrival order.

On PostgreSQL (`write_on_postgres`) that is ONE statement, the upsert and the insert as two
data-modifying CTEs over `unnest`ed arrays, run on an autocommit connection: one round trip
for the group, no BEGIN and no COMMIT (a statement is atomic on its own), and one SQL text
whatever the group's size, prepared once per connection by asyncpg. Elsewhere (SQLite, or a
group that also holds other publishes) the same plan runs as two statements in the group's
transaction (`Publishing._merge`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from tocsin.domain.drafts import NotificationDraft, PublishBatch, Published, PublishOutcome
from tocsin.domain.models import Notification, UnreadCount

#: (last_seq, unread_count, count_version) of a user after the group.
Final = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Planned:
    batch: int
    draft: NotificationDraft
    id: uuid.UUID
    now: datetime
    later: int


class MergePlan:
    def __init__(self, items: list[tuple[PublishBatch, datetime]]) -> None:
        self.items = items
        self.counts: dict[str, int] = {}
        self.latest: dict[str, datetime] = {}
        for batch, now in items:
            for draft in batch.drafts:
                self.counts[draft.user_id] = self.counts.get(draft.user_id, 0) + 1
                self.latest[draft.user_id] = max(now, self.latest.get(draft.user_id, now))
        remaining = dict(self.counts)
        self.planned: list[Planned] = []
        for index, (batch, now) in enumerate(items):
            for draft in batch.drafts:
                remaining[draft.user_id] -= 1
                self.planned.append(Planned(index, draft, uuid.uuid4(), now,
                                            remaining[draft.user_id]))

    @property
    def users(self) -> list[str]:
        """Every user of the group, sorted: the order their rows are locked in."""
        return sorted(self.counts)

    def notifications(self, final: dict[str, Final]) -> list[Notification]:
        """Every notification of the group, in order, with its seq."""
        return [notification_of(each.draft, each.id, final[each.draft.user_id][0] - each.later,
                                each.now)
                for each in self.planned]

    def outcomes(self, final: dict[str, Final], stored: list[Notification]
                 ) -> list[PublishOutcome]:
        """Each publish's outcome: its receipts, its notifications, its users' counts at its
        own notifications."""
        results = [PublishOutcome(notifications=[]) for _ in self.items]
        for each, item in zip(self.planned, stored, strict=True):
            seq, count, version = (value - each.later for value in final[item.user_id])
            outcome = results[each.batch]
            outcome.stored.append(item)
            outcome.unread[item.user_id] = UnreadCount(count=count, seq=seq, version=version)
            outcome.notifications.append(
                Published(id=item.id, user_id=item.user_id, seq=item.seq,
                          status=each.draft.status,
                          channels=each.draft.receipt_channels()).to_json())
        return results


def notification_of(draft: NotificationDraft, the_id: uuid.UUID, seq: int | None,
                    now: datetime) -> Notification:
    """The notification a draft becomes when it is stored with `seq` at `now`."""
    return Notification(
        id=the_id, user_id=draft.user_id, seq=seq, type=draft.type, title=draft.title,
        message=draft.message, data=draft.data, action_url=draft.action_url,
        priority=draft.priority, read=False, read_at=None, created_at=now,
        expires_at=draft.expires_at, quiet=draft.quiet,
    )


_STATEMENT = """
WITH bumped AS (
    INSERT INTO users AS u (id, unread_count, last_seq, count_version, created_at, updated_at)
    SELECT b.id, b.n, b.n, b.n, b.now, b.now
    FROM unnest($1::varchar[], $2::bigint[], $3::timestamptz[]) AS b(id, n, now)
    ORDER BY b.id
    ON CONFLICT (id) DO UPDATE SET
        last_seq = u.last_seq + excluded.last_seq,
        unread_count = u.unread_count + excluded.unread_count,
        count_version = u.count_version + excluded.count_version,
        updated_at = excluded.updated_at
    RETURNING u.id, u.last_seq, u.unread_count, u.count_version
), inserted AS (
    INSERT INTO notifications (id, user_id, seq, type, title, message, data, action_url,
                               priority, read, created_at, expires_at, publisher, quiet,
                               status, decisions)
    SELECT n.id, n.user_id, bumped.last_seq - n.later, n.type, n.title, n.message,
           n.data::jsonb, n.action_url, n.priority, false, n.created_at, n.expires_at,
           n.publisher, n.quiet, n.status, n.decisions::jsonb
    FROM unnest($4::uuid[], $5::varchar[], $6::bigint[], $7::varchar[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::varchar[], $13::timestamptz[],
                $14::timestamptz[], $15::varchar[], $16::boolean[], $17::varchar[],
                $18::text[])
        AS n(id, user_id, later, type, title, message, data, action_url, priority,
             created_at, expires_at, publisher, quiet, status, decisions)
    JOIN bumped ON bumped.id = n.user_id
)
SELECT id, last_seq, unread_count, count_version FROM bumped
"""


async def write_on_postgres(pg: Any, plan: MergePlan) -> list[PublishOutcome]:
    """The group in one autocommitted statement on `pg`, an asyncpg connection outside any
    transaction. The notifications' columns the statement leaves out are NULL, as
    `Publishing._merge` leaves them for a plain publish."""
    users = plan.users
    planned = plan.planned
    batches = [batch for batch, _ in plan.items]
    rows = await pg.fetch(
        _STATEMENT,
        users, [plan.counts[user] for user in users], [plan.latest[user] for user in users],
        [each.id for each in planned],
        [each.draft.user_id for each in planned],
        [each.later for each in planned],
        [each.draft.type for each in planned],
        [each.draft.title for each in planned],
        [each.draft.message for each in planned],
        [orjson.dumps(each.draft.data).decode() for each in planned],
        [each.draft.action_url for each in planned],
        [each.draft.priority for each in planned],
        [each.now for each in planned],
        [each.draft.expires_at for each in planned],
        [batches[each.batch].publisher for each in planned],
        [each.draft.quiet for each in planned],
        [each.draft.status for each in planned],
        [orjson.dumps(each.draft.receipt_channels()).decode() for each in planned],
    )
    final = {row[0]: (row[1], row[2], row[3]) for row in rows}
    return plan.outcomes(final, plan.notifications(final))
