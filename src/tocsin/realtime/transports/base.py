"""The Codec port: how one transport puts what a connection sends on the wire, and what its
client's frames mean.

A transport is an ASGI endpoint (the handshake, then a loop that moves bytes between the socket
and a `Connection`) and a codec, which knows the transport's framing and nothing else. Codecs
do no I/O and keep no state per connection: one instance serves every connection of its
transport on the node.

Guarantees every codec gives:

- An event is framed once per transport, through `Event.framed`: every connection on that
  transport writes the very same object, so a fan-out to a thousand connections frames once.
- Framing never changes what an event says. The name and the JSON object are the stream
  contract, the same on every transport; only the envelope around them differs.
- A reply (`ack`, `error`, `pong`) is framed so its client can tell which operation it answers:
  by the operation's `ref` where the transport has reply ids, else by what the reply says (an
  `ack` or `error` names its op and notification).
- `frame` returns None for what the transport does not write itself (a heartbeat, where the
  server keeps the connection alive by other means).
- `parse` (on transports whose clients send frames) never raises: every frame becomes exactly
  one operation, a malformed one an `Invalid` (answered; the stream goes on) or a `Violation`
  (the stream ends with its close code). It decides what a frame says, never whether the
  operation may run: that is the session's.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from tocsin.realtime.operations import Op
from tocsin.realtime.session import Writable

Out_co = TypeVar("Out_co", covariant=True)
In_contra = TypeVar("In_contra", contravariant=True)


class Codec(Protocol[Out_co]):
    """Frames a connection's output for one transport (`str` text frames, `bytes` of a body)."""

    def frame(self, item: Writable) -> Out_co | None:
        """What to write for `item`, or None to write nothing."""


class DuplexCodec(Codec[Out_co], Protocol[Out_co, In_contra]):
    """The codec of a transport whose clients send frames of their own."""

    def parse(self, frame: In_contra) -> Op:
        """The operation `frame` asks for."""
