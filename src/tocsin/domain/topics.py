"""Topics and their fan-outs: a named audience, and one publish to it as the worker expands it.

A fan-out is recorded whole before it is acknowledged (the request, how many recipients it
has); the worker then expands it in batches of subscribers, in user-id order. Each batch is
one step: it is committed only if the fan-out's cursor is still where the step began, and it
moves the cursor in the same transaction as the batch's notifications, so every subscriber is
notified exactly once, whoever runs the batch and however often it is run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

#: The same rule as a type's name.
TOPIC_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
TOPIC_MAX_LENGTH = 128

FanoutStatus = Literal["running", "done"]


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    #: Users may subscribe and unsubscribe themselves.
    self_subscribe: bool


@dataclass(frozen=True, slots=True)
class Fanout:
    """A publish to a topic. `request` is the publish as recorded (see
    `pipeline.base.PublishRequest.to_json`); `cursor` the last subscriber expanded."""

    id: uuid.UUID
    topic: str
    publisher: str
    request: dict[str, Any]
    status: FanoutStatus
    recipients: int
    processed: int
    cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "status": self.status, "recipients": self.recipients,
                "processed": self.processed}


@dataclass(frozen=True, slots=True)
class FanoutStarted:
    """The answer to a publish to a topic. `replayed`: an Idempotency-Key matched an earlier
    publish, whose fan-out this is; nothing was recorded now."""

    fanout_id: uuid.UUID
    recipients: int
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"fanout_id": str(self.fanout_id), "recipients": self.recipients}


@dataclass(frozen=True, slots=True)
class FanoutStep:
    """One batch of a fan-out, carried by the batch's publish: the store commits the batch
    only if the fan-out's cursor is still `after`, and then moves it to `to` and adds `count`
    to `processed`, in the same transaction."""

    fanout_id: uuid.UUID
    after: str | None
    to: str
    count: int


class StaleFanout(Exception):
    """The fan-out's cursor moved past this step's start (another worker committed it first);
    the step's transaction was rolled back and wrote nothing."""
