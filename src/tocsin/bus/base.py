"""The Bus port."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from tocsin.domain.events import Event

#: Called by the bus, on the event loop, for each event of a user this node subscribed to.
Handler = Callable[[str, Event], None]
#: Called when events may have been lost: for one user, or for every user (None).
GapHandler = Callable[[str | None], None]
#: Called, on the event loop, when a topic was signalled (by any node, this one included),
#: with the signal's subject (what changed: a user id, or "" for the whole topic). After a
#: reconnect it is called with None: anything may have changed.
Listener = Callable[[str | None], None]


class Bus(Protocol):
    """Carries a user's events to every node where that user has a connection.

    Guarantees every implementation gives:

    - Events published by one node arrive at each subscribed node in the order that node
      published them, across users too. Events from different nodes may interleave in any
      order (clients reorder notifications by `seq`).
    - Delivery is at most once. The store is the truth: when events may have been lost, the
      bus calls `on_gap` on every node where they could be missing (with the user, or None for
      every user, after a reconnect), and those connections recover by `seq`. An event a
      publisher could not hand over is such a loss too: once the bus answers again, its user's
      subscribers are told of the gap.
    - `publish` never raises for a missing subscriber, and a failure to reach the bus is
      logged, not raised: a committed notification is never reported as failed because live
      push could not be attempted.
    - `publish` returns within its bound (`publish_timeout`, one second by default) whatever
      the state of the bus: a hung bus never holds back the acknowledgement of a commit.
    - A node receives only the users it subscribed to; `subscribe` returns once events
      published afterwards will be delivered.
    - Signals (`signal(topic, subject)`) reach the listeners of that topic on every node,
      this one included, at most once; a node that may have missed one (it reconnected) calls
      every listener of every topic with the subject None ("anything"), so a signal means
      "look again", never "here is the change". `signal` is bounded like `publish` and never
      raises.
    """

    def set_handler(self, handler: Handler, on_gap: GapHandler) -> None:
        """Where this node's events go, and what to call when events may have been lost."""

    async def start(self) -> None:
        """Connect; returns even if the bus is down (it keeps trying by itself)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise unless the bus is reachable now (for readiness checks)."""

    async def publish(self, events: Sequence[tuple[str, Event]]) -> None:
        """Send each (user id, event), in order; one round trip for the lot where possible."""

    async def subscribe(self, user_id: str) -> None: ...

    def listen(self, topic: str, listener: Listener) -> None:
        """Call `listener` whenever `topic` is signalled (see the guarantees above)."""

    async def signal(self, topic: str, subject: str = "") -> None:
        """Tell every node's listeners of `topic` to look again at `subject`."""

    async def unsubscribe(self, user_id: str) -> None: ...
