"""The SSE codec: the exact bytes of the event stream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tocsin.domain.events import RESYNC, Event, notification_event
from tocsin.domain.models import Notification
from tocsin.realtime.session import Heartbeat, Reply
from tocsin.realtime.transports.sse import SseCodec

codec = SseCodec()


def note(seq: int) -> Notification:
    return Notification(id=uuid.UUID(int=seq), user_id="u", seq=seq, type="t", title=None,
                        message=None, data={}, action_url=None, priority="normal", read=False,
                        read_at=None, created_at=datetime(2030, 1, 1, tzinfo=UTC),
                        expires_at=None)


def test_a_notification_carries_its_seq_as_the_event_id() -> None:
    event = notification_event(note(3))
    assert codec.frame(event) == b"id: 3\nevent: notification\ndata: " + event.data + b"\n\n"


def test_other_events_carry_no_id() -> None:
    count = Event.of("unread-count", {"count": 1, "seq": 2, "version": 3})
    assert codec.frame(count) == (
        b'event: unread-count\ndata: {"count":1,"seq":2,"version":3}\n\n')
    assert codec.frame(RESYNC) == b'event: resync\ndata: {"recovered":false}\n\n'


def test_an_event_is_framed_once_for_every_connection() -> None:
    event = notification_event(note(3))
    assert codec.frame(event) is codec.frame(event)
    assert SseCodec().frame(event) is codec.frame(event)


def test_the_stream_opens_with_a_retry_delay_and_idles_with_comment_lines() -> None:
    assert codec.opening == b"retry: 1000\n\n"
    assert codec.frame(Heartbeat()) == b": ping\n\n"


def test_a_reply_would_be_framed_as_its_event() -> None:
    # SSE clients send no frames, so nothing is ever answered; still, nothing is left unframed.
    assert codec.frame(Reply(Event.of("pong", {}), ref=1)) == b"event: pong\ndata: {}\n\n"
