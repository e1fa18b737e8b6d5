"""Many publishers writing to one user at once, over HTTP: seqs stay gap-free and unique."""

from __future__ import annotations

import asyncio

from tests.support.client import Api, counted, new_user
from tests.support.db import assert_counter_matches, seqs_of
from tocsin.store.sql import SqlStore

PUBLISHERS = 50


async def test_concurrent_http_publishers_get_seqs_one_to_n(api: Api, store: SqlStore) -> None:
    user = new_user()
    bodies = await asyncio.gather(*(api.publish(user, data={"i": i}) for i in range(PUBLISHERS)))
    receipts = [body["notifications"][0] for body in bodies]
    assert sorted(r["seq"] for r in receipts) == list(range(1, PUBLISHERS + 1))
    assert len({r["id"] for r in receipts}) == PUBLISHERS
    assert await seqs_of(store, user) == list(range(1, PUBLISHERS + 1))
    assert await assert_counter_matches(store, user) == PUBLISHERS
    count = await api.me(user, "unread-count")
    assert counted(count) == {"count": PUBLISHERS, "seq": PUBLISHERS}
