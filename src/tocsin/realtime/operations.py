"""Client operations: what one frame from a client amounts to, whatever the transport.

A transport's codec turns each client frame into exactly one of these; the session decides what
happens next (`Session.op`). The names are the stream contract's, the same on every transport.

Every operation that is answered carries `ref`, an opaque value the session never looks into
and hands back on its reply (`Reply.ref`): a transport whose clients match answers to requests
by an id (Socket.IO acknowledgements) puts that id there. The others leave it None; their
clients tell replies apart by what they say (an `ack` or `error` names its op, and the
notification's id). Replies need not come in the order asked: a ping or a malformed frame is
answered at once, read operations when the store has run them, one at a time, in order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar

#: Opaque to the session: set by a transport's codec, read back only by that codec.
Ref = object


@dataclass(frozen=True, slots=True)
class Ping:
    """Answered with `pong`, behind everything already queued for the connection: a client
    that has its pong has every event queued before it."""

    ref: Ref = None
    name: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class MarkRead:
    """Mark the user's notification `id` read."""

    id: uuid.UUID
    ref: Ref = None
    name: ClassVar[str] = "mark-as-read"


@dataclass(frozen=True, slots=True)
class MarkAllRead:
    """Mark every notification of the user with seq <= `seq` read (for None, every one
    committed when the store runs it)."""

    seq: int | None = None
    ref: Ref = None
    name: ClassVar[str] = "mark-all-as-read"


@dataclass(frozen=True, slots=True)
class Invalid:
    """A frame that is not a well-formed operation: answered with an `error` event (`code`,
    `message`, and `op`, the name the client gave, when it gave one); the stream goes on."""

    code: str
    message: str
    op: str | None = None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Violation:
    """A frame the transport refuses outright (too big, or of a kind it does not take): the
    stream ends with the close code `code`. Nothing is answered, so there is no `ref`."""

    code: int
    reason: str


#: The operations that change read state: carried out against the store, one at a time.
ReadOp = MarkRead | MarkAllRead
Op = Ping | MarkRead | MarkAllRead | Invalid | Violation

__all__ = ["Invalid", "MarkAllRead", "MarkRead", "Op", "Ping", "ReadOp", "Ref", "Violation"]
