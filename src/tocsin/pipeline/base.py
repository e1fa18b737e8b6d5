"""What the pipeline is made of: a publish in flight, the stages that shape it before the
commit, and the announcers that act on it after.

A stage is one async callable taking the publish in flight; it may refuse the whole request
(raise `InvalidInput`, nothing is stored) or decide per recipient by changing that recipient's
draft (its text, its channels and when each is due, its group, its status). Stages run in
order, each seeing what the earlier ones decided. They do not write: the store commits once,
after the last stage.

An announcer runs only after the commit, with what was committed: live fan-out, waking the
worker, metrics, analytics. Its failure is logged, never reported to the publisher: the
commit is the acknowledgement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, cast

from tocsin.domain.drafts import NotificationDraft, PublishOutcome
from tocsin.domain.models import Priority, ReadChange
from tocsin.domain.preferences import Recipient
from tocsin.domain.types import NotificationType


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """What a publisher sent, already shape-checked by the API layer. `channels` None means
    the type's defaults (and each user's preferences); named channels are used as named,
    except where a user turned one off for the type.

    A publish to a topic names it in `topic` (with no `user_ids`, and maybe users to leave
    out): the pipeline only checks it (`PublishPipeline.check`), and the fan-out publishes it
    later, batch by batch, as requests with the subscribers' `user_ids`."""

    user_ids: Sequence[str]
    type: str
    data: dict[str, Any]
    title: str | None = None
    message: str | None = None
    action_url: str | None = None
    channels: Sequence[str] | None = None
    priority: Priority = "normal"
    expires_at: datetime | None = None
    send_at: datetime | None = None
    topic: str | None = None
    exclude_user_ids: Sequence[str] = ()

    def to_json(self) -> dict[str, Any]:
        """What a fan-out records of the request it expands (everything but the audience)."""
        return {"type": self.type, "data": self.data, "title": self.title,
                "message": self.message, "action_url": self.action_url,
                "channels": None if self.channels is None else list(self.channels),
                "priority": self.priority,
                "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
                "send_at": None if self.send_at is None else self.send_at.isoformat(),
                "topic": self.topic, "exclude_user_ids": list(self.exclude_user_ids)}

    @classmethod
    def from_json(cls, recorded: dict[str, Any]) -> PublishRequest:
        """The request as a fan-out recorded it (`to_json`)."""
        expires, send_at = recorded.get("expires_at"), recorded.get("send_at")
        return cls(user_ids=(), type=recorded["type"], data=recorded["data"],
                   title=recorded.get("title"), message=recorded.get("message"),
                   action_url=recorded.get("action_url"), channels=recorded.get("channels"),
                   priority=cast(Priority, recorded.get("priority", "normal")),
                   expires_at=None if expires is None else datetime.fromisoformat(expires),
                   send_at=None if send_at is None else datetime.fromisoformat(send_at),
                   topic=recorded.get("topic"),
                   exclude_user_ids=tuple(recorded.get("exclude_user_ids") or ()))

    def addressed_to(self, user_ids: Sequence[str]) -> PublishRequest:
        """This request to these users: one batch of a fan-out."""
        return replace(self, user_ids=list(user_ids), topic=None, exclude_user_ids=())


@dataclass(slots=True)
class Publish:
    """A publish in flight: the request, who sent it, when, and one draft per recipient;
    what the stages found out on the way: the type (None for one nobody defined) and each
    recipient's profile and preferences."""

    request: PublishRequest
    publisher: str
    now: datetime
    drafts: list[NotificationDraft]
    kind: NotificationType | None = None
    recipients: dict[str, Recipient] = field(default_factory=dict)

    @property
    def sends_at(self) -> datetime:
        """When the notification goes out: now, or its `send_at`."""
        return self.request.send_at or self.now


class Stage(Protocol):
    async def __call__(self, publish: Publish) -> None:
        """Refine the drafts, or raise a `TocsinError` to refuse the request."""


class PublishAnnouncer(Protocol):
    async def published(self, outcome: PublishOutcome) -> None:
        """Act on committed notifications; never called for a replayed request."""


class ReadAnnouncer(Protocol):
    async def read_changed(self, user_id: str, change: ReadChange) -> None:
        """Act on a committed read change."""
