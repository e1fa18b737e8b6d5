"""One body of tests for the Bus port, run against every implementation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.client import new_user
from tests.support.services import redis_bus
from tocsin.bus.base import Bus
from tocsin.bus.memory import MemoryBus
from tocsin.domain.events import Event


class Received:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int | None, bytes]] = []
        self.gaps: list[str | None] = []

    def __call__(self, user_id: str, event: Event) -> None:
        self.events.append((user_id, event.name, event.seq, event.data))

    def gap(self, user_id: str | None) -> None:
        self.gaps.append(user_id)

    async def wait_for(self, count: int, seconds: float = 5.0) -> None:
        """Delivery may be asynchronous (another process in between): wait, bounded."""
        for _ in range(int(seconds / 0.01)):
            if len(self.events) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} events, got {len(self.events)}")

    async def barrier(self, bus: Bus) -> None:
        """Publish a marker to a user of its own and wait for it: since one node's events
        arrive in the order it published them, anything published before the marker that was
        going to arrive has arrived by then. (Proves "nothing more came" without sleeping.)"""
        marker = new_user("marker")
        await bus.subscribe(marker)
        await bus.publish([(marker, Event.of("marker", {}))])
        for _ in range(500):
            if any(user == marker for user, *_ in self.events):
                self.events = [event for event in self.events if event[0] != marker]
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the marker never arrived")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, Received]]:
    implementation: Bus = MemoryBus() if request.param == "memory" else redis_bus()
    received = Received()
    implementation.set_handler(received, received.gap)
    await implementation.start()
    try:
        yield implementation, received
    finally:
        await implementation.close()


async def test_subscribed_user_receives_events_in_publish_order(bus: tuple[Bus, Received]
                                                                ) -> None:
    implementation, received = bus
    user = new_user()
    await implementation.subscribe(user)
    for seq in range(1, 6):
        await implementation.publish([(user, Event.of("notification", {"seq": seq}, seq))])
    await implementation.publish([(user, Event.of("unread-count", {"count": 5, "seq": 5}))])
    await received.wait_for(6)
    assert [(name, seq) for _, name, seq, _ in received.events] == [
        ("notification", 1), ("notification", 2), ("notification", 3), ("notification", 4),
        ("notification", 5), ("unread-count", None)]
    assert received.events[-1][3] == b'{"count":5,"seq":5}'


async def test_only_subscribed_users_are_delivered(bus: tuple[Bus, Received]) -> None:
    implementation, received = bus
    mine, other = new_user(), new_user()
    await implementation.subscribe(mine)
    await implementation.publish([(other, Event.of("read", {"ids": []}))])
    await implementation.publish([(mine, Event.of("read", {"ids": ["a"]}))])
    await received.wait_for(1)
    await received.barrier(implementation)
    assert [user for user, *_ in received.events] == [mine]


async def test_unsubscribe_stops_delivery_and_a_resubscribe_restarts_it(
        bus: tuple[Bus, Received]) -> None:
    implementation, received = bus
    user = new_user()
    await implementation.subscribe(user)
    await implementation.unsubscribe(user)
    await implementation.unsubscribe(user)  # a second unsubscribe changes nothing
    await implementation.publish([(user, Event.of("read", {"ids": ["gone"]}))])
    await implementation.publish([(new_user(), Event.of("read", {"ids": ["nobody"]}))])
    await received.barrier(implementation)
    assert received.events == []
    await implementation.subscribe(user)
    await implementation.publish([(user, Event.of("read", {"ids": ["back"]}))])
    await received.wait_for(1)
    assert received.events == [(user, "read", None, b'{"ids":["back"]}')]


async def test_events_of_one_node_arrive_in_publish_order_across_users(
        bus: tuple[Bus, Received]) -> None:
    implementation, received = bus
    users = [new_user() for _ in range(3)]
    for user in users:
        await implementation.subscribe(user)
    sent = [(users[i % 3], Event.of("read", {"n": i})) for i in range(30)]
    for start in range(0, 30, 7):  # in batches and one by one alike
        await implementation.publish(sent[start:start + 7])
    await received.wait_for(30)
    assert [(user, data) for user, _, _, data in received.events] == [
        (user, event.data) for user, event in sent]


async def test_a_signal_reaches_the_listeners_of_its_topic_only(bus: tuple[Bus, Received]
                                                                ) -> None:
    implementation, _ = bus
    heard: list[tuple[str, str | None]] = []
    implementation.listen("types", lambda subject: heard.append(("types", subject)))
    implementation.listen("other", lambda subject: heard.append(("other", subject)))
    await implementation.signal("types")
    for _ in range(500):
        if heard:
            break
        await asyncio.sleep(0.01)
    await implementation.signal("types", "user 7")
    for _ in range(500):
        if len(heard) >= 2:
            break
        await asyncio.sleep(0.01)
    assert heard == [("types", ""), ("types", "user 7")]


@pytest.mark.redis
async def test_a_signal_from_one_node_reaches_another() -> None:
    sender, receiver = redis_bus(), redis_bus()
    heard: list[str | None] = []
    for node in (sender, receiver):
        node.set_handler(Received(), Received().gap)
        await node.start()
    try:
        receiver.listen("recipients", heard.append)
        await sender.signal("recipients", "u-42")
        for _ in range(500):
            if heard:
                break
            await asyncio.sleep(0.01)
        assert heard == ["u-42"]
    finally:
        await sender.close()
        await receiver.close()
