"""The Bus port."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from tocsin.realtime.events import Event

#: Called by the bus, on the event loop, for each event of a user this node subscribed to.
Handler = Callable[[str, Event], None]


class Bus(Protocol):
    """Carries a user's events to every node where that user has a connection.

    Guarantees every implementation gives:

    - Events published for one user by one publisher arrive at each subscribed node in the
      order they were published. Events from different publishers may interleave in any order
      (clients reorder notifications by `seq`).
    - Delivery is at most once. The store is the truth: a node that may have missed events
      (for instance after a reconnect) calls `on_gap`, and its connections recover by `seq`.
    - `publish` never raises for a missing subscriber, and a failure to reach the bus is
      logged, not raised: a committed notification is never reported as failed because live
      push could not be attempted.
    - A node receives only the users it subscribed to; `subscribe` returns once events
      published afterwards will be delivered.
    """

    def set_handler(self, handler: Handler, on_gap: Callable[[], None]) -> None:
        """Where this node's events go, and what to call when events may have been lost."""

    async def start(self) -> None:
        """Connect; returns even if the bus is down (it keeps trying by itself)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise unless the bus is reachable now (for readiness checks)."""

    async def publish(self, events: Sequence[tuple[str, Event]]) -> None:
        """Send each (user id, event), in order; one round trip for the lot where possible."""

    async def subscribe(self, user_id: str) -> None: ...

    async def unsubscribe(self, user_id: str) -> None: ...
