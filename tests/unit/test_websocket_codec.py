"""The WebSocket codec: the exact text of every frame the server writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from tocsin.domain.events import Event, notification_event
from tocsin.domain.models import Notification
from tocsin.realtime.session import Heartbeat
from tocsin.realtime.transports.websocket import WebSocketCodec

codec = WebSocketCodec()


def note(seq: int) -> Notification:
    return Notification(id=uuid.UUID(int=seq), user_id="u", seq=seq, type="t", title="hé",
                        message=None, data={"k": [1]}, action_url=None, priority="normal",
                        read=False, read_at=None, created_at=datetime(2030, 1, 1, tzinfo=UTC),
                        expires_at=None)


def test_an_event_is_one_text_frame_of_its_name_and_data() -> None:
    event = Event.of("unread-count", {"count": 1, "seq": 2, "version": 3})
    assert codec.frame(event) == '{"event":"unread-count","data":{"count":1,"seq":2,"version":3}}'
    notification = notification_event(note(3))
    text = codec.frame(notification)
    assert text is not None
    assert orjson.loads(text) == {"event": "notification", "data": note(3).to_json()}
    assert text == '{"event":"notification","data":' + notification.data.decode() + "}"


def test_an_event_is_framed_once_for_every_connection() -> None:
    event = notification_event(note(3))
    assert codec.frame(event) is codec.frame(event)
    assert WebSocketCodec().frame(event) is codec.frame(event)  # another instance, same frame


def test_heartbeats_are_not_frames() -> None:
    assert codec.frame(Heartbeat()) is None  # the server's WebSocket pings keep it alive
