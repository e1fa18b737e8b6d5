"""A stored row that cannot be encoded (written before the nesting limit existed, or by other
means) never turns its user's inbox into a 500: it is served without its data, and logged."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.support.client import Api, new_user
from tests.support.db import ENCODER_LIMIT_DEPTH, deep, poison
from tocsin.domain.encoding import DATA_ERROR
from tocsin.store.schema import notifications
from tocsin.store.sql import SqlStore


async def test_an_unencodable_row_is_listed_without_its_data(
        api: Api, store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    user = new_user()
    healthy = (await api.publish(user, title="healthy", data={"n": 1}))["notifications"][0]
    broken = (await api.publish(user, title="broken"))["notifications"][0]
    await poison(store, broken["id"])

    listed = await api.me(user, "notifications")
    by_title = {item["title"]: item for item in listed["notifications"]}
    assert by_title["healthy"]["data"] == {"n": 1} and "data_error" not in by_title["healthy"]
    assert by_title["broken"]["data"] == {}
    assert by_title["broken"]["data_error"] == DATA_ERROR
    assert by_title["broken"]["id"] == broken["id"] and by_title["broken"]["seq"] == 2
    assert listed["unread_count"] == 2

    one = await api.me(user, f"notifications/{broken['id']}")
    assert one["data_error"] == DATA_ERROR and one["title"] == "broken"
    assert (await api.me(user, f"notifications/{healthy['id']}"))["data"] == {"n": 1}
    # …and it can still be read like any other.
    read = await api.me(user, f"notifications/{broken['id']}/read", method="POST")
    assert read["unread_count"] == 1
    assert any(broken["id"] in record.getMessage() and "cannot be encoded" in
               record.getMessage() for record in caplog.records)

    # The row is still there, whole: it is served without its data, not altered.
    async with store.engine.connect() as conn:
        stored = (await conn.execute(sa.select(notifications.c.data).where(
            notifications.c.id == uuid.UUID(broken["id"])))).scalar_one()
    assert stored == deep(ENCODER_LIMIT_DEPTH)
