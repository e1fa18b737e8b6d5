"""The recipients' cache of one process: hits read nothing, every change is forgotten here and
signalled to the other nodes, a read that raced a change is not kept, entries age out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tocsin.bus.memory import MemoryBus
from tocsin.clock import FrozenClock
from tocsin.domain.models import UserProfile
from tocsin.domain.preferences import Recipient
from tocsin.pipeline.recipients import TOPIC, RecipientDirectory
from tocsin.store.sql import SqlStore

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class CountingStore(SqlStore):
    """A real SQLite store that counts the recipient reads, and can run code in the middle
    of one (a change racing the read)."""

    reads: int = 0
    during_read: list[object] = []

    async def recipients(self, user_ids: Sequence[str], type_: str) -> dict[str, Recipient]:
        self.reads += 1
        found = await super().recipients(user_ids, type_)
        for hook in self.during_read:
            await hook()  # type: ignore[operator]
        return found


@pytest.fixture
async def counting(tmp_path: Path) -> CountingStore:
    the_store = CountingStore(f"sqlite:///{tmp_path}/dir.db")
    await the_store.migrate()
    the_store.during_read = []
    return the_store


async def test_hits_read_nothing_and_a_change_is_read_again(counting: CountingStore) -> None:
    clock, bus = FrozenClock(NOW), MemoryBus()
    directory = RecipientDirectory(counting, bus, clock)
    await counting.put_user(UserProfile(id="ada", locale="fr"), NOW)
    first = await directory.get_many(["ada", "bob"], "comment")
    assert first["ada"].profile.locale == "fr" and counting.reads == 1
    await directory.get_many(["ada", "bob"], "comment")
    assert counting.reads == 1
    await counting.put_user(UserProfile(id="ada", locale="de"), NOW)
    await directory.changed("ada")
    again = await directory.get_many(["ada", "bob"], "comment")
    assert again["ada"].profile.locale == "de"
    assert counting.reads == 2
    await counting.close()


async def test_another_node_s_change_arrives_as_a_signal(counting: CountingStore) -> None:
    bus = MemoryBus()
    directory = RecipientDirectory(counting, bus, FrozenClock(NOW))
    await directory.get_many(["ada"], "comment")
    await bus.signal(TOPIC, "ada")  # what another node's `changed` sends
    await directory.get_many(["ada"], "comment")
    assert counting.reads == 2
    await bus.signal(TOPIC, "someone-else")
    await directory.get_many(["ada"], "comment")
    assert counting.reads == 2
    await counting.close()


async def test_a_read_that_raced_a_change_is_not_kept(counting: CountingStore) -> None:
    directory = RecipientDirectory(counting, MemoryBus(), FrozenClock(NOW))

    async def change() -> None:
        counting.during_read.clear()
        await directory.changed("ada")

    counting.during_read.append(change)
    await directory.get_many(["ada"], "comment")
    await directory.get_many(["ada"], "comment")
    assert counting.reads == 2
    await counting.close()


async def test_entries_age_out_and_a_lost_signal_forgets_everything(counting: CountingStore
                                                                    ) -> None:
    clock, bus = FrozenClock(NOW), MemoryBus()
    directory = RecipientDirectory(counting, bus, clock, ttl_seconds=30)
    await directory.get_many(["ada"], "comment")
    clock.advance(29)
    await directory.get_many(["ada"], "comment")
    assert counting.reads == 1
    clock.advance(1)
    await directory.get_many(["ada"], "comment")
    assert counting.reads == 2
    for listener in bus._listeners[TOPIC]:
        listener(None)  # what a reconnected Redis bus does
    await directory.get_many(["ada"], "comment")
    assert counting.reads == 3
    await counting.close()


async def test_the_directory_is_bounded(counting: CountingStore) -> None:
    directory = RecipientDirectory(counting, MemoryBus(), FrozenClock(NOW), max_entries=10)
    await directory.get_many([f"u{i}" for i in range(25)], "comment")
    assert len(directory._entries) <= 10
    await counting.close()
