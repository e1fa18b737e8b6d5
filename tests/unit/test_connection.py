"""`Connection` in process, over a real SQLite store and the in-process bus: what it hands the
transport to write, with no socket in between."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tocsin.bus.memory import MemoryBus
from tocsin.clock import SystemClock
from tocsin.domain.drafts import NotificationDraft, PublishBatch
from tocsin.domain.models import Notification
from tocsin.pipeline.reads import Reads
from tocsin.realtime.connection import Connection, LiveServices
from tocsin.realtime.events import Event
from tocsin.realtime.fanout import Fanout
from tocsin.realtime.hub import Hub
from tocsin.realtime.session import INTERNAL_ERROR, Close, Limits, Session
from tocsin.store.sql import SqlStore


class BrokenReplays(SqlStore):
    """A store whose replay fails with an error no one planned for."""

    async def notifications_after(self, user_id: str, after: int, limit: int
                                  ) -> list[Notification]:
        raise RuntimeError("replay exploded")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[BrokenReplays]:
    the_store = BrokenReplays(f"sqlite:///{tmp_path / 'c.db'}")
    await the_store.migrate()
    try:
        yield the_store
    finally:
        await the_store.close()


async def test_a_replay_that_fails_ends_the_stream_with_a_close_code(
        store: BrokenReplays, caplog: pytest.LogCaptureFixture) -> None:
    clock = SystemClock()
    await store.publish(PublishBatch(publisher="p", drafts=[
        NotificationDraft(user_id="ada", type="comment", data={})]), clock.now(), 60)
    bus = MemoryBus()
    services = LiveServices(store=store, hub=Hub(bus),
                            reads=Reads(store, clock, [Fanout(bus)]), clock=clock)
    session = Session(user_id="ada", since=0, limits=Limits(), now=0.0)
    connection = Connection(session, services)
    await connection.open()
    try:
        first = await connection.next()
        assert isinstance(first, Event) and first.name == "unread-count"
        ended = await connection.next()  # never hangs: the failed replay closes the stream
        assert isinstance(ended, Close) and ended.code == INTERNAL_ERROR
    finally:
        await connection.close()
    assert any(record.levelno == logging.ERROR and "replay for user ada failed" in
               record.getMessage() for record in caplog.records)
