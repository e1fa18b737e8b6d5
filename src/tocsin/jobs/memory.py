"""The Jobs port in process memory: for tests, and for applications testing their own code
against Tocsin's worker. It keeps every guarantee of the port except surviving the process."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from tocsin.domain.errors import NotFound
from tocsin.jobs.base import DEAD, DONE, PENDING, SKIPPED, DeadLetter, Job, JobDraft


@dataclass(slots=True)
class _Row:
    id: uuid.UUID
    draft: JobDraft
    due_at: datetime
    status: str = PENDING
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.min)


class MemoryJobs:
    def __init__(self) -> None:
        self._rows: dict[uuid.UUID, _Row] = {}
        self._keys: set[str] = set()

    async def enqueue(self, jobs: Sequence[JobDraft], now: datetime) -> int:
        # Every draft is checked before any is queued (all or nothing), and its payload is kept
        # as the SQL queue keeps it: a JSON copy, which the caller's later changes do not reach.
        stored = [replace(draft, payload=_json_copy(draft.payload)) for draft in jobs]
        for draft in stored:
            if draft.due_at.tzinfo is None:
                raise ValueError("naive datetime given to the jobs queue; use an aware UTC one")
        added = 0
        for draft in stored:
            if draft.key is not None:
                if draft.key in self._keys:
                    continue
                self._keys.add(draft.key)
            row = _Row(id=uuid.uuid4(), draft=draft, due_at=draft.due_at, updated_at=now)
            self._rows[row.id] = row
            added += 1
        return added

    async def claim(self, kinds: Collection[str], owner: str, now: datetime,
                    lease_seconds: float, limit: int) -> list[Job]:
        due = sorted((row for row in self._rows.values()
                      if row.status == PENDING and row.due_at <= now and row.draft.kind in kinds
                      and (row.lease_until is None or row.lease_until < now)),
                     key=lambda row: row.due_at)[:limit]
        for row in due:
            row.attempts += 1
            row.lease_owner = owner
            row.lease_until = now + timedelta(seconds=lease_seconds)
            row.updated_at = now
        return [_job(row) for row in due]

    async def renew(self, owner: str, job_ids: Collection[uuid.UUID], now: datetime,
                    lease_seconds: float) -> int:
        renewed = 0
        for job_id in job_ids:
            row = self._rows.get(job_id)
            if row is not None and row.lease_owner == owner and row.status == PENDING:
                row.lease_until = now + timedelta(seconds=lease_seconds)
                renewed += 1
        return renewed

    async def complete(self, job: Job, now: datetime, skipped: str | None = None) -> bool:
        return self._finish(job, now, SKIPPED if skipped is not None else DONE, skipped)

    async def retry(self, job: Job, now: datetime, error: str, due_at: datetime) -> bool:
        return self._finish(job, now, PENDING, error, due_at)

    async def bury(self, job: Job, now: datetime, error: str) -> bool:
        return self._finish(job, now, DEAD, error)

    def _finish(self, job: Job, now: datetime, status: str, error: str | None,
                due_at: datetime | None = None) -> bool:
        row = self._rows.get(job.id)
        if row is None or row.lease_owner != job.lease_owner or row.status != PENDING:
            return False
        row.status, row.last_error, row.updated_at = status, error, now
        row.lease_owner = row.lease_until = None
        if due_at is not None:
            row.due_at = due_at
        return True

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        dead = sorted((row for row in self._rows.values() if row.status == DEAD),
                      key=lambda row: row.updated_at, reverse=True)
        return [_dead(row) for row in dead[:limit]]

    async def replay(self, job_id: uuid.UUID, now: datetime) -> DeadLetter:
        row = self._rows.get(job_id)
        if row is None or row.status != DEAD:
            raise NotFound("no dead letter with this id")
        row.status, row.attempts, row.due_at, row.updated_at = PENDING, 0, now, now
        row.lease_owner = row.lease_until = None
        return _dead(row)

    async def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for row in self._rows.values():
            found[row.status] = found.get(row.status, 0) + 1
        return found


def _json_copy(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as the SQL queue gives it back; a payload it cannot store raises here too."""
    copied: dict[str, Any] = orjson.loads(orjson.dumps(payload))
    return copied


def _job(row: _Row) -> Job:
    assert row.lease_owner is not None
    d = row.draft
    return Job(id=row.id, kind=d.kind, attempts=row.attempts, lease_owner=row.lease_owner,
               due_at=row.due_at, payload=_json_copy(d.payload),
               notification_id=d.notification_id,
               user_id=d.user_id, channel=d.channel)


def _dead(row: _Row) -> DeadLetter:
    d = row.draft
    return DeadLetter(id=row.id, kind=d.kind, notification_id=d.notification_id,
                      user_id=d.user_id, channel=d.channel, attempts=row.attempts,
                      last_error=row.last_error, updated_at=row.updated_at)

