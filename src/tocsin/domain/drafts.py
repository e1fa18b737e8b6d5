"""A publish in flight: one draft per recipient, each carrying its own decisions, and what the
store reports once they are committed.

The pipeline's stages decide per recipient (a stage may suppress one user's notification, hold
another's email until their quiet hours end, group a third into an existing item), so every
decision lives on the recipient's draft, not on the request. The store carries the decisions
out in one transaction; the receipt says, per recipient and per channel, what was decided.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tocsin.domain.models import Notification, Priority, UnreadCount
from tocsin.domain.topics import FanoutStep

#: What became of a recipient's notification: stored and shown (`created`), folded into an
#: existing grouped item (`grouped`), kept out of the inbox by a policy (`suppressed`), or held
#: until its send time (`scheduled`).
Status = Literal["created", "grouped", "suppressed", "scheduled"]

#: The live channel: the inbox and its streams (WebSocket, SSE). Every other channel is
#: outbound and goes through the jobs queue.
LIVE_CHANNEL = "web"

#: The outcome of an outbound delivery a rate limit kept from being sent.
THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class ChannelDecision:
    """What happens on one channel for one recipient, and why.

    `outcome` is what the receipt shows: `delivered` (the inbox and its streams), `queued` (an
    outbound delivery, due at `due_at` or at once), `held:<why>` (queued, but due later, e.g.
    `held:quiet_hours`), or a reason nothing is sent: `suppressed:<why>`, `skipped:<why>`,
    `throttled`."""

    outcome: str
    due_at: datetime | None = None

    @classmethod
    def live(cls) -> ChannelDecision:
        return cls("delivered")

    @classmethod
    def queued(cls, due_at: datetime | None = None) -> ChannelDecision:
        return cls("queued", due_at)

    @classmethod
    def held(cls, why: str, until: datetime) -> ChannelDecision:
        return cls(f"held:{why}", until)

    @classmethod
    def dropped(cls, outcome: str) -> ChannelDecision:
        """Nothing is sent on this channel: `outcome` says why (`suppressed:preference`…)."""
        return cls(outcome)

    @property
    def is_held(self) -> bool:
        return self.outcome.startswith("held:")

    @property
    def enqueues(self) -> bool:
        """An outbound delivery is queued for this decision (now, or when it is due)."""
        return self.outcome == "queued" or self.outcome.startswith("held:")


@dataclass(slots=True)
class NotificationDraft:
    """One recipient's notification, before the store gives it an id and a seq.

    Mutable on purpose: each pipeline stage refines it (renders its text, decides its
    channels, its group, its status) before the store commits it."""

    user_id: str
    type: str
    data: dict[str, Any]
    title: str | None = None
    message: str | None = None
    action_url: str | None = None
    priority: Priority = "normal"
    expires_at: datetime | None = None
    send_at: datetime | None = None
    status: Status = "created"
    channels: dict[str, ChannelDecision] = field(default_factory=dict)
    group_key: str | None = None
    locale: str | None = None
    #: Sent during the recipient's quiet hours: its outbound deliveries wait, clients may stay
    #: silent.
    quiet: bool = False
    #: Grouping (with `group_key`): how long a group stays open from its first notification,
    #: this notification's actor, and the group's text given (count, actors, latest data).
    group_window: int | None = None
    actor: str | None = None
    group_text: Callable[[int, list[str], dict[str, Any]], tuple[str | None, str | None]] | None \
        = None

    @property
    def in_inbox(self) -> bool:
        """Listed, counted and streamed: the live channel delivers it."""
        return self.status == "created"

    def receipt_channels(self) -> dict[str, str]:
        return {name: decision.outcome for name, decision in sorted(self.channels.items())}


@dataclass(frozen=True, slots=True)
class PublishBatch:
    """One publish request: its drafts (one per user) are committed together or not at all.

    `idempotency_key` with `fingerprint` makes a retried request return the first response.
    `step`, for a batch of a topic's fan-out, is committed with it (or the batch is not).
    """

    publisher: str
    drafts: list[NotificationDraft]
    idempotency_key: str | None = None
    fingerprint: str | None = None
    step: FanoutStep | None = None


@dataclass(frozen=True, slots=True)
class Published:
    """A recipient's receipt, as the publisher sees it: the explain view in small."""

    id: uuid.UUID
    user_id: str
    seq: int | None
    status: str = "created"
    channels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "user_id": self.user_id, "seq": self.seq,
                "status": self.status, "channels": self.channels}


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """`notifications` is the publisher's response (receipts as JSON). `replayed` is true when
    an Idempotency-Key matched an earlier, committed request: then nothing was stored now, and
    the other fields are empty. Otherwise `stored` holds the notifications committed to the
    inbox, `unread` each of their users' counts after it, and `queued` how many outbound
    deliveries were queued, for what is announced after the commit."""

    notifications: list[dict[str, Any]]
    replayed: bool = False
    stored: list[Notification] = field(default_factory=list)
    unread: dict[str, UnreadCount] = field(default_factory=dict)
    queued: int = 0
