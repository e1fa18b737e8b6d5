"""The WebSocket codec: the exact text of every frame the server writes, and what every frame
a client may send is taken to mean."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from tocsin.domain.events import Event, notification_event
from tocsin.domain.models import Notification
from tocsin.realtime.operations import Invalid, MarkAllRead, MarkRead, Op, Ping, Violation
from tocsin.realtime.session import MESSAGE_TOO_BIG, UNSUPPORTED_DATA, Heartbeat, Reply
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


def test_a_reply_is_framed_as_the_event_it_carries_whatever_its_ref() -> None:
    assert codec.frame(Reply(Event.of("pong", {}), ref=3)) == '{"event":"pong","data":{}}'
    ack = Event.of("ack", {"op": "mark-all-as-read", "changed": 0})
    assert codec.frame(Reply(ack)) == (
        '{"event":"ack","data":{"op":"mark-all-as-read","changed":0}}')


NID = uuid.UUID("0b7e6b8c-3f59-4d56-9a4c-2f1d8e0c5a11")


@pytest.mark.parametrize(
    ("frame", "op"),
    [
        ('{"op": "ping"}', Ping()),
        ('{"op": "ping", "extra": [1]}', Ping()),  # unknown fields are ignored
        (f'{{"op": "mark-as-read", "id": "{NID}"}}', MarkRead(NID)),
        (f'{{"op": "mark-as-read", "id": "{str(NID).upper()}"}}', MarkRead(NID)),
        ('{"op": "mark-all-as-read"}', MarkAllRead(None)),
        ('{"op": "mark-all-as-read", "seq": null}', MarkAllRead(None)),
        ('{"op": "mark-all-as-read", "seq": 0}', MarkAllRead(0)),
        ('{"op": "mark-all-as-read", "seq": 42}', MarkAllRead(42)),
    ],
)
def test_every_operation_parses(frame: str, op: Op) -> None:
    assert codec.parse(frame) == op


NOT_JSON = Invalid("bad_frame", "frames must be JSON objects")
NO_OP = Invalid("bad_frame", 'frames must be objects with an "op"')
BAD_ID = Invalid("bad_frame", '"mark-as-read" needs the notification "id"', "mark-as-read")
BAD_SEQ = Invalid("bad_frame", '"seq" must be a non-negative integer', "mark-all-as-read")


@pytest.mark.parametrize(
    ("frame", "invalid"),
    [
        ("not json", NOT_JSON),
        ("", NOT_JSON),
        ('{"op": "ping"', NOT_JSON),
        ("\u00e9t\u00e9 \U0001f514", NOT_JSON),
        ("\ud800", NOT_JSON),  # a lone surrogate: not encodable, not JSON
        ('{"op": "ping"} {}', NOT_JSON),
        ("[1, 2]", NO_OP),
        ('"ping"', NO_OP),
        ("null", NO_OP),
        ("{}", NO_OP),
        ('{"op": 7}', NO_OP),
        ('{"op": null}', NO_OP),
        ('{"op": ["ping"]}', NO_OP),
        ('{"op": "subscribe", "user_id": "someone-else"}',
         Invalid("unknown_op", "unknown op 'subscribe'; expected ping, mark-as-read or "
                 "mark-all-as-read", "subscribe")),
        ('{"op": "PING"}', Invalid("unknown_op", "unknown op 'PING'; expected ping, "
                                   "mark-as-read or mark-all-as-read", "PING")),
        ('{"op": "mark-as-read"}', BAD_ID),
        ('{"op": "mark-as-read", "id": null}', BAD_ID),
        ('{"op": "mark-as-read", "id": 5}', BAD_ID),
        ('{"op": "mark-as-read", "id": "not-a-uuid"}', BAD_ID),
        ('{"op": "mark-as-read", "id": ""}', BAD_ID),
        ('{"op": "mark-all-as-read", "seq": -1}', BAD_SEQ),
        ('{"op": "mark-all-as-read", "seq": "3"}', BAD_SEQ),
        ('{"op": "mark-all-as-read", "seq": true}', BAD_SEQ),
        ('{"op": "mark-all-as-read", "seq": 1.5}', BAD_SEQ),
        ('{"op": "mark-all-as-read", "seq": [3]}', BAD_SEQ),
    ],
)
def test_every_bad_frame_is_an_invalid_operation_with_the_error_to_answer(
        frame: str, invalid: Invalid) -> None:
    assert codec.parse(frame) == invalid


def test_frames_over_the_limit_end_the_stream_with_1009() -> None:
    small = WebSocketCodec(max_frame=16)
    assert small.parse('{"op": "ping"}  ') == Ping()  # 16 characters: at the limit
    assert small.parse('{"op": "ping"}   ') == Violation(MESSAGE_TOO_BIG,
                                                         "frames are limited to 16")
    # Too big is too big, well-formed or not: it is not even parsed.
    assert small.parse("x" * 10_000) == Violation(MESSAGE_TOO_BIG, "frames are limited to 16")


def test_binary_frames_end_the_stream_with_1003() -> None:
    assert codec.parse(b'{"op": "ping"}') == Violation(UNSUPPORTED_DATA,
                                                       "frames must be text (JSON)")
    assert codec.parse(b"") == Violation(UNSUPPORTED_DATA, "frames must be text (JSON)")
