"""Stream events: encoded once, framed once per transport, carried between nodes unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from tocsin.domain.events import RESYNC, Event, notification_event, read_events
from tocsin.domain.models import Notification, ReadChange, UnreadCount


def note(seq: int) -> Notification:
    return Notification(id=uuid.uuid4(), user_id="u", seq=seq, type="t", title=None,
                        message=None, data={}, action_url=None, priority="normal", read=False,
                        read_at=None, created_at=datetime(2030, 1, 1, tzinfo=UTC),
                        expires_at=None)


def test_an_event_crosses_the_bus_unchanged() -> None:
    event = notification_event(note(3))
    decoded = Event.decode(event.encode())
    assert (decoded.name, decoded.seq, decoded.data) == ("notification", 3, event.data)
    other = Event.decode(RESYNC.encode())
    assert (other.name, other.seq, orjson.loads(other.data)) == (
        "resync", None, {"recovered": False})


calls: list[Event] = []


def counting(event: Event) -> bytes:
    calls.append(event)
    return b"framed " + event.name.encode()


def other(event: Event) -> str:
    return event.name.upper()


def test_a_framing_runs_once_per_event_and_its_result_is_shared() -> None:
    calls.clear()
    event = Event.of("read", {"ids": []})
    first = event.framed(counting)
    assert first == b"framed read"
    assert event.framed(counting) is first
    assert calls == [event]
    assert event.framed(other) == "READ"  # each framing has its own entry
    assert event.framed(counting) is first and calls == [event]


def test_a_read_change_announces_the_items_then_the_count() -> None:
    count = UnreadCount(count=1, seq=4, version=7)
    one = uuid.uuid4()
    read, unread = read_events(ReadChange(ids=[one], unread=count))
    assert (read.name, orjson.loads(read.data)) == ("read", {"ids": [str(one)]})
    assert (unread.name, orjson.loads(unread.data)) == (
        "unread-count", {"count": 1, "seq": 4, "version": 7})
    read_all, _ = read_events(ReadChange(ids=[one], unread=count, up_to=4))
    assert (read_all.name, orjson.loads(read_all.data)) == ("read-all", {"seq": 4})
