"""A user's notifications over HTTP: publish, list, read one, read all, count.

After every step the stored counter must equal the unread rows, and every place the API reports
the count (the list, the read result, /unread-count) must say the same number at the same seq.
"""

from __future__ import annotations

from typing import Any

from tests.support.client import Api, new_user
from tests.support.db import assert_counter_matches, seqs_of
from tocsin.store.sql import SqlStore


async def counts_agree(api: Api, store: SqlStore, user: str) -> tuple[int, int]:
    """(count, seq) once the counter, the list and /unread-count are seen to agree."""
    counter = await assert_counter_matches(store, user)
    listed = await api.me(user, "notifications")
    count = await api.me(user, "unread-count")
    assert listed["unread_count"] == count["count"] == counter, (listed, count, counter)
    assert listed["seq"] == count["seq"]
    assert sum(not item["read"] for item in listed["notifications"]) == counter
    return counter, count["seq"]


def seqs(page: dict[str, Any]) -> list[int]:
    return [item["seq"] for item in page["notifications"]]


async def test_publish_list_read_one_read_all_keep_every_count_exact(api: Api, store: SqlStore
                                                                     ) -> None:
    user = new_user()
    ids = []
    for n in range(1, 4):
        receipt = (await api.publish(user, data={"n": n}))["notifications"]
        assert [(r["user_id"], r["seq"], r["status"]) for r in receipt] == [(user, n, "created")]
        ids.append(receipt[0]["id"])
        assert await counts_agree(api, store, user) == (n, n)

    page = await api.me(user, "notifications")
    assert [item["id"] for item in page["notifications"]] == ids[::-1]
    assert [item["data"] for item in page["notifications"]] == [{"n": 3}, {"n": 2}, {"n": 1}]
    assert not any(item["read"] for item in page["notifications"])

    read = await api.me(user, f"notifications/{ids[0]}/read", method="POST")
    assert read == {"ids": [ids[0]], "unread_count": 2, "seq": 3, "version": 4}
    assert await counts_agree(api, store, user) == (2, 3)

    again = await api.me(user, f"notifications/{ids[0]}/read", method="POST")
    assert again == {"ids": [], "unread_count": 2, "seq": 3, "version": 4}  # no change
    assert await counts_agree(api, store, user) == (2, 3)

    read_all = await api.me(user, "notifications/read-all", method="POST")
    assert sorted(read_all["ids"]) == sorted(ids[1:])
    assert (read_all["unread_count"], read_all["seq"]) == (0, 3)
    assert await counts_agree(api, store, user) == (0, 3)

    one = await api.me(user, f"notifications/{ids[0]}")
    assert one["read"] and one["read_at"] is not None and one["seq"] == 1

    await api.publish(user)
    assert await counts_agree(api, store, user) == (1, 4)


async def test_batch_gives_each_user_their_own_next_seq(api: Api, store: SqlStore) -> None:
    a, b, c = new_user(), new_user(), new_user()
    await api.publish(a)
    body = await api.publish([c, a, b], title="v2 is out")
    receipts = body["notifications"]
    assert [r["user_id"] for r in receipts] == [c, a, b]
    assert {r["user_id"]: r["seq"] for r in receipts} == {a: 2, b: 1, c: 1}
    assert len({r["id"] for r in receipts}) == 3
    for receipt in receipts:
        user = receipt["user_id"]
        (newest,) = (await api.me(user, "notifications", params={"limit": 1}))["notifications"]
        assert (newest["id"], newest["title"]) == (receipt["id"], "v2 is out")
        assert await seqs_of(store, user) == list(range(1, receipt["seq"] + 1))
        await counts_agree(api, store, user)


async def test_list_pages_with_before_and_next(api: Api) -> None:
    user = new_user()
    for _ in range(7):
        await api.publish(user)
    first = await api.me(user, "notifications", params={"limit": 3})
    assert (seqs(first), first["next"]) == ([7, 6, 5], 5)
    second = await api.me(user, "notifications", params={"limit": 3, "before": first["next"]})
    assert (seqs(second), second["next"]) == ([4, 3, 2], 2)
    last = await api.me(user, "notifications", params={"limit": 3, "before": second["next"]})
    assert (seqs(last), last["next"]) == ([1], None)
    exact = await api.me(user, "notifications", params={"limit": 7})
    assert (seqs(exact), exact["next"]) == ([7, 6, 5, 4, 3, 2, 1], None)
    for page in (first, second, last):
        assert (page["unread_count"], page["seq"]) == (7, 7)


async def test_list_filters_by_unread_and_type(api: Api, store: SqlStore) -> None:
    user = new_user()
    for kind in ("like", "comment", "like", "comment", "like"):
        await api.publish(user, type=kind)
    likes = await api.me(user, "notifications", params={"type": "like"})
    assert seqs(likes) == [5, 3, 1]
    assert {item["type"] for item in likes["notifications"]} == {"like"}
    await api.me(user, f"notifications/{likes['notifications'][0]['id']}/read", method="POST")

    unread = await api.me(user, "notifications", params={"unread": "true"})
    assert seqs(unread) == [4, 3, 2, 1]
    unread_likes = await api.me(user, "notifications", params={"unread": "true", "type": "like"})
    assert seqs(unread_likes) == [3, 1]
    paged = await api.me(user, "notifications",
                         params={"unread": "true", "type": "like", "limit": 1})
    assert (seqs(paged), paged["next"]) == ([3], 3)
    rest = await api.me(user, "notifications", params={"unread": "true", "type": "like",
                                                        "limit": 1, "before": paged["next"]})
    assert (seqs(rest), rest["next"]) == ([1], None)
    none = await api.me(user, "notifications", params={"type": "release"})
    assert none["notifications"] == [] and none["next"] is None
    assert await counts_agree(api, store, user) == (4, 5)


async def test_read_all_bounded_by_seq_leaves_newer_unread(api: Api, store: SqlStore) -> None:
    user = new_user()
    for _ in range(5):
        await api.publish(user)
    change = await api.me(user, "notifications/read-all", method="POST", json={"seq": 3})
    assert len(change["ids"]) == 3
    assert (change["unread_count"], change["seq"]) == (2, 5)
    read = await api.me(user, "notifications", params={"limit": 10})
    assert {item["id"] for item in read["notifications"] if item["read"]} == set(change["ids"])
    unread = await api.me(user, "notifications", params={"unread": "true"})
    assert seqs(unread) == [5, 4]
    assert await counts_agree(api, store, user) == (2, 5)

    nothing = await api.me(user, "notifications/read-all", method="POST", json={"seq": 3})
    assert (nothing["ids"], nothing["unread_count"]) == ([], 2)
    rest = await api.me(user, "notifications/read-all", method="POST", json={})
    assert (len(rest["ids"]), rest["unread_count"]) == (2, 0)
    assert await counts_agree(api, store, user) == (0, 5)
