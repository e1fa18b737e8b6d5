"""The hub: one bus subscription per user on this node, every local connection fed."""

from __future__ import annotations

import asyncio

from tocsin.bus.base import GapHandler, Handler
from tocsin.bus.memory import MemoryBus
from tocsin.domain.events import Event
from tocsin.realtime.hub import Hub


class Tab:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.events: list[Event] = []
        self.resumed = 0

    def deliver(self, event: Event) -> None:
        self.events.append(event)

    def resume(self) -> None:
        self.resumed += 1


class CountingBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.on_gap: GapHandler | None = None

    def set_handler(self, handler: Handler, on_gap: GapHandler) -> None:
        self.on_gap = on_gap
        super().set_handler(handler, on_gap)

    async def subscribe(self, user_id: str) -> None:
        self.calls.append(("subscribe", user_id))
        await asyncio.sleep(0)  # let a racing attach run meanwhile
        await super().subscribe(user_id)

    async def unsubscribe(self, user_id: str) -> None:
        self.calls.append(("unsubscribe", user_id))
        await super().unsubscribe(user_id)


async def test_every_tab_of_a_user_receives_the_same_event_object() -> None:
    bus = CountingBus()
    hub = Hub(bus)
    a1, a2, b = Tab("a"), Tab("a"), Tab("b")
    await asyncio.gather(hub.attach(a1), hub.attach(a2), hub.attach(b))
    assert bus.calls.count(("subscribe", "a")) == 1
    event = Event.of("read", {"ids": []})
    await bus.publish([("a", event)])
    assert a1.events == [event] and a2.events == [event] and b.events == []
    assert a1.events[0] is a2.events[0]  # serialised once, shared
    assert (hub.connections, hub.users) == (3, 2)


async def test_last_detach_unsubscribes_and_nothing_more_arrives() -> None:
    bus = CountingBus()
    hub = Hub(bus)
    first, second = Tab("a"), Tab("a")
    await hub.attach(first)
    await hub.attach(second)
    await hub.detach(first)
    assert ("unsubscribe", "a") not in bus.calls
    await hub.detach(second)
    assert bus.calls[-1] == ("unsubscribe", "a")
    await bus.publish([("a", Event.of("read", {"ids": []}))])
    assert first.events == [] and second.events == [] and hub.connections == 0
    calls = list(bus.calls)
    await hub.detach(second)  # detaching twice changes nothing
    assert bus.calls == calls and hub.connections == 0 and hub.users == 0


async def test_a_gap_upstream_resumes_every_connection() -> None:
    bus = CountingBus()
    hub = Hub(bus)
    tabs = [Tab("a"), Tab("b")]
    for tab in tabs:
        await hub.attach(tab)
    assert bus.on_gap is not None
    bus.on_gap(None)
    assert [tab.resumed for tab in tabs] == [1, 1]


async def test_a_gap_of_one_user_resumes_only_that_users_connections() -> None:
    bus = CountingBus()
    hub = Hub(bus)
    tabs = [Tab("a"), Tab("a"), Tab("b")]
    for tab in tabs:
        await hub.attach(tab)
    assert bus.on_gap is not None
    bus.on_gap("a")
    bus.on_gap("nobody-here")
    assert [tab.resumed for tab in tabs] == [1, 1, 0]
