"""The Redis bus survives its Redis restarting: it reconnects by itself and reports the gap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.client import settings_for
from tests.support.services import private_redis
from tocsin.app import create_app
from tocsin.bus.redis import RedisBus
from tocsin.domain.events import Event

pytestmark = pytest.mark.redis


async def _until(predicate: object, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_restart_reconnects_resubscribes_and_reports_a_gap() -> None:
    with private_redis() as server:
        bus = RedisBus(server.url)
        received: list[tuple[str, int | None]] = []
        gaps: list[str | None] = []
        bus.set_handler(lambda user, event: received.append((user, event.seq)),
                        gaps.append)
        await bus.start()
        try:
            assert bus.connected
            await bus.subscribe("alice")
            await bus.publish([("alice", Event.of("notification", {}, 1))])
            await _until(lambda: received == [("alice", 1)])
            gaps_before = len(gaps)

            server.kill()
            await _until(lambda: not bus.connected)
            # Publishing while Redis is down neither raises nor blocks for long.
            await asyncio.wait_for(bus.publish([("alice", Event.of("notification", {}, 2))]), 15)
            server.start()
            await _until(lambda: bus.connected)
            assert None in gaps[gaps_before:]  # every stream is told to catch up from the store
            assert bus.reconnects >= 1

            # The event Redis could not take is not sent late (the store has it); the gap report
            # after the reconnect covers it, and a gap marker for alice follows once the sender
            # gets through (it may arrive before the subscription is back, and be moot).
            await _until(lambda: not bus.degraded)
            await bus.publish([("alice", Event.of("notification", {}, 3))])
            await _until(lambda: ("alice", 3) in received)
            assert ("alice", 2) not in received
        finally:
            await bus.close()


async def test_events_a_publisher_could_not_send_become_a_gap_for_their_users() -> None:
    """Only the publishing connection fails: the subscribers never noticed anything, and would
    wait for the lost event forever. The bus tells them, once it can, to catch up."""
    with private_redis() as server:
        bus = RedisBus(server.url)
        received: list[tuple[str, int | None]] = []
        gaps: list[str | None] = []
        bus.set_handler(lambda user, event: received.append((user, event.seq)), gaps.append)
        await bus.start()
        try:
            await bus.subscribe("alice")
            await bus.subscribe("bob")
            await bus.publish([("alice", Event.of("notification", {}, 1))])
            await _until(lambda: received == [("alice", 1)])
            gaps.clear()

            admin = Redis.from_url(server.url)
            try:
                publishers = [client["id"] for client in await admin.client_list()
                              if client["name"] == "tocsin-publisher"]
                assert publishers
                for client_id in publishers:
                    await admin.client_kill_filter(_id=client_id)
            finally:
                await admin.aclose()
            await bus.publish([("alice", Event.of("notification", {}, 2))])
            await _until(lambda: gaps == ["alice"])
            assert not bus.degraded and bus.reconnects == 0
            await bus.publish([("alice", Event.of("notification", {}, 3)),
                               ("bob", Event.of("notification", {}, 1))])
            await _until(lambda: ("bob", 1) in received)
            assert received == [("alice", 1), ("alice", 3), ("bob", 1)]
            assert gaps == ["alice"]  # bob lost nothing and is told nothing
        finally:
            await bus.close()


async def test_readyz_names_the_bus_while_redis_is_down(tmp_path: Path) -> None:
    """What docs/api.md promises: 503 `bus_unavailable` with Retry-After, then ready again."""
    with private_redis() as server:
        app = create_app(settings_for(f"sqlite:///{tmp_path / 'tocsin.db'}"),
                         bus=RedisBus(server.url))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test"
        ) as client:
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
            server.kill()
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "bus_unavailable"
            assert down.headers["retry-after"] == "5"
            server.start()
            for _ in range(400):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert (await client.get("/readyz")).status_code == 200
