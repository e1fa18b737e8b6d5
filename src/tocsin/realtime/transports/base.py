"""The Codec port: how one transport puts what a connection sends on the wire.

A transport is an ASGI endpoint (the handshake, then a loop that moves bytes between the socket
and a `Connection`) and a codec, which knows the transport's framing and nothing else. Codecs
do no I/O and keep no state per connection: one instance serves every connection of its
transport on the node.

Guarantees every codec gives:

- An event is framed once per transport, through `Event.framed`: every connection on that
  transport writes the very same object, so a fan-out to a thousand connections frames once.
- Framing never changes what an event says. The name and the JSON object are the stream
  contract, the same on every transport; only the envelope around them differs.
- `frame` returns None for what the transport does not write itself (a heartbeat, where the
  server keeps the connection alive by other means).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from tocsin.domain.events import Event
from tocsin.realtime.session import Heartbeat

Out_co = TypeVar("Out_co", covariant=True)


class Codec(Protocol[Out_co]):
    """Frames a connection's output for one transport (`str` text frames, `bytes` of a body)."""

    def frame(self, item: Event | Heartbeat) -> Out_co | None:
        """What to write for `item`, or None to write nothing."""
