"""The sans-I/O session: ordering, recovery, client operations and time, without a socket."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from tests.support.client import counted
from tocsin.domain.events import Event, notification_event
from tocsin.domain.models import Notification, UnreadCount
from tocsin.realtime.operations import Invalid, MarkAllRead, MarkRead, Ping, Violation
from tocsin.realtime.session import (
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    Action,
    Close,
    Fetch,
    Heartbeat,
    Limits,
    Mark,
    Reply,
    Send,
    Session,
)
from tocsin.realtime.transports.websocket import WebSocketCodec

WHEN = datetime(2030, 1, 1, tzinfo=UTC)


def note(seq: int) -> Notification:
    return Notification(id=uuid.uuid4(), user_id="u", seq=seq, type="t", title=None,
                        message=None, data={}, action_url=None, priority="normal", read=False,
                        read_at=None, created_at=WHEN, expires_at=None)


def live(seq: int) -> Event:
    return notification_event(note(seq))


def session(since: int | None = None, **limits: float) -> Session:
    return Session(user_id="u", since=since, limits=Limits(**limits),  # type: ignore[arg-type]
                   now=0.0, expires_at=None)


def sent(actions: list[Action]) -> list[tuple[str, int | None]]:
    return [(a.event.name, a.event.seq) for a in actions if isinstance(a, Send)]


def seqs(actions: list[Action]) -> list[int]:
    return [seq for name, seq in sent(actions) if name == "notification" and seq is not None]


def test_open_without_cursor_sends_the_count_and_then_only_live_events() -> None:
    s = session()
    actions = s.open(UnreadCount(count=3, seq=7))
    assert sent(actions) == [("unread-count", None)]
    assert isinstance(actions[0], Send)
    assert counted(orjson.loads(actions[0].event.data)) == {"count": 3, "seq": 7}
    assert seqs(s.event(live(7))) == []  # already counted in what the client fetched
    assert seqs(s.event(live(8))) == [8]


def test_events_arriving_before_open_are_buffered_then_released_in_order() -> None:
    s = session()
    assert s.event(live(8)) == []
    assert s.event(live(9)) == []
    assert seqs(s.open(UnreadCount(count=1, seq=7))) == [8, 9]


def test_cursor_replays_from_the_store_then_releases_the_buffer_without_duplicates() -> None:
    s = session(since=2)
    opened = s.open(UnreadCount(count=5, seq=5))
    fetch = [a for a in opened if isinstance(a, Fetch)]
    assert fetch == [Fetch(after=2, limit=3)]
    # publishes race with the replay: 5 and 6 arrive live while the store is read
    assert s.event(live(5)) == [] and s.event(live(6)) == []
    assert seqs(s.fetched([note(3), note(4), note(5)])) == [3, 4, 5, 6]
    assert seqs(s.event(live(6))) == []
    assert seqs(s.event(live(7))) == [7]


def test_cursor_at_the_newest_seq_goes_live_at_once() -> None:
    s = session(since=5)
    assert not [a for a in s.open(UnreadCount(0, 5)) if isinstance(a, Fetch)]
    assert seqs(s.event(live(6))) == [6]


@pytest.mark.parametrize(("since", "newest"), [(0, 1001), (50, 10)])
def test_unrecoverable_cursor_sends_resync_and_continues_live(since: int, newest: int) -> None:
    s = session(since=since)
    actions = s.open(UnreadCount(count=0, seq=newest))
    assert ("resync", None) in sent(actions)
    assert not [a for a in actions if isinstance(a, Fetch)]
    assert seqs(s.event(live(newest + 1))) == [newest + 1]


def test_late_committed_lower_seq_is_delivered_in_order() -> None:
    s = session()
    s.open(UnreadCount(0, 10))
    assert seqs(s.event(live(12))) == []  # 11 is still on its way
    assert seqs(s.event(live(13))) == []
    assert seqs(s.event(live(11))) == [11, 12, 13]
    assert s.deadline() == pytest.approx(Limits().heartbeat)  # no gap timer left running


def test_a_gap_that_does_not_fill_is_fetched_from_the_store() -> None:
    s = session(gap_timeout=0.5)
    s.open(UnreadCount(0, 10))
    s.event(live(13), now=1.0)
    assert s.deadline() == pytest.approx(1.5)
    assert s.tick(1.2) == []
    actions = s.tick(1.6)
    assert actions == [Fetch(after=10, limit=3)]
    assert s.tick(2.5) == []  # one fetch at a time
    assert seqs(s.fetched([note(11), note(12), note(13)])) == [11, 12, 13]
    assert seqs(s.event(live(13))) == []


def test_seqs_the_store_no_longer_has_are_skipped_not_awaited() -> None:
    """A grouped item moved to a newer seq, an expired one left the inbox: the store's answer
    has holes, and the session takes them as final instead of waiting for them again."""
    s = session(since=3, gap_timeout=0.5)
    assert Fetch(after=3, limit=6) in s.open(UnreadCount(0, 9))
    actions = s.fetched([note(4), note(6), note(9)])
    assert seqs(actions) == [4, 6, 9]
    assert [a for a in s.tick(10.0) if isinstance(a, Fetch)] == []  # nothing awaited
    assert seqs(s.event(live(10))) == [10]  # live goes on from the newest, no gap wait
    assert seqs(s.event(live(9))) == []


def test_duplicates_are_dropped() -> None:
    s = session()
    s.open(UnreadCount(0, 0))
    assert seqs(s.event(live(1))) == [1]
    assert seqs(s.event(live(1))) == []
    s.event(live(3))
    assert seqs(s.event(live(3))) == []


def test_other_events_pass_straight_through_once_live() -> None:
    s = session()
    s.open(UnreadCount(0, 0))
    event = Event.of("read", {"ids": ["x"]})
    assert s.event(event) == [Send(event)]


def test_resume_fetches_everything_after_the_last_delivered_seq_and_the_count() -> None:
    s = session()
    s.open(UnreadCount(0, 4))
    assert s.resume() == [Fetch(after=4, limit=Limits().max_replay, recount=True)]
    assert s.resume() == []  # already fetching
    actions = s.fetched([note(5), note(6)], UnreadCount(2, 6, 9))
    assert seqs(actions) == [5, 6]
    assert [a.event.name for a in actions if isinstance(a, Send)] == [
        "notification", "notification", "unread-count"]
    last = actions[-1]
    assert isinstance(last, Send)
    assert orjson.loads(last.event.data) == {"count": 2, "seq": 6, "version": 9}


def test_resume_past_what_one_replay_holds_is_a_resync() -> None:
    s = session(max_replay=2)
    s.open(UnreadCount(0, 4))
    (fetch,) = s.resume()
    assert fetch == Fetch(after=4, limit=2, recount=True)
    actions = s.fetched([note(5), note(6)], UnreadCount(5, 9))
    assert [a.event.name for a in actions if isinstance(a, Send)] == [
        "notification", "notification", "resync", "unread-count"]
    assert s.last == 9
    assert seqs(s.event(live(10))) == [10]


def test_too_many_buffered_events_close_the_stream_as_too_slow() -> None:
    s = session(since=0, max_buffer=2)
    s.open(UnreadCount(0, 5))
    s.event(live(6))
    s.event(live(7))
    assert s.event(live(8)) == [Close(TRY_AGAIN_LATER, "too many events while catching up")]
    assert s.closed and s.event(live(9)) == []


def test_heartbeat_and_token_expiry() -> None:
    s = Session(user_id="u", since=None, limits=Limits(heartbeat=10), now=0.0, expires_at=25.0)
    s.open(UnreadCount(0, 0))
    assert s.deadline() == 10
    assert s.tick(10.0) == [Heartbeat()]
    assert s.deadline() == 20
    assert s.tick(20.0) == [Heartbeat()]
    assert s.deadline() == 25
    assert s.tick(25.0) == [Close(POLICY_VIOLATION, "token expired")]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"op": "ping"}', "pong"),
        ("not json", "error"),
        ("[1, 2]", "error"),
        ('{"op": 5}', "error"),
        ('{"op": "launch"}', "error"),
        ('{"op": "mark-as-read"}', "error"),
        ('{"op": "mark-as-read", "id": "nope"}', "error"),
        ('{"op": "mark-all-as-read", "seq": -1}', "error"),
        ('{"op": "mark-all-as-read", "seq": true}', "error"),
    ],
)
def test_client_frames_are_answered(frame: str, expected: str) -> None:
    s = session()
    s.open(UnreadCount(0, 0))
    (action,) = s.op(WebSocketCodec().parse(frame))
    assert isinstance(action, Reply) and action.event.name == expected
    assert not s.closed


def test_mark_operations_become_actions_and_acks() -> None:
    s = session()
    s.open(UnreadCount(1, 1))
    nid = uuid.uuid4()
    (mark,) = s.op(WebSocketCodec().parse(
        orjson.dumps({"op": "mark-as-read", "id": str(nid)}).decode()))
    assert mark == Mark(MarkRead(nid))
    assert isinstance(mark, Mark)
    (ack,) = s.operation_done(mark.op, UnreadCount(0, 1, version=2), changed=1)
    assert isinstance(ack, Reply) and ack.event.name == "ack"
    assert orjson.loads(ack.event.data) == {"op": "mark-as-read", "id": str(nid), "changed": 1,
                                            "unread_count": 0, "seq": 1, "version": 2}
    assert s.op(WebSocketCodec().parse('{"op": "mark-all-as-read", "seq": 4}')) == [
        Mark(MarkAllRead(4))]
    (failed,) = s.operation_failed(mark.op, "not_found", "no such notification")
    assert isinstance(failed, Reply) and failed.event.name == "error"


def test_oversized_frame_closes_with_1009() -> None:
    s = session()
    s.open(UnreadCount(0, 0))
    assert s.op(WebSocketCodec(max_frame=10).parse('{"op": "ping", "pad": "xxxxxxxx"}')) == [
        Close(MESSAGE_TOO_BIG, "frames are limited to 10")]
    assert s.closed


def test_every_reply_carries_the_ref_of_the_operation_it_answers() -> None:
    s = session()
    s.open(UnreadCount(2, 2))
    (pong,) = s.op(Ping(ref=7))
    assert isinstance(pong, Reply) and pong.ref == 7
    assert (pong.event.name, orjson.loads(pong.event.data)) == ("pong", {})
    (error,) = s.op(Invalid("bad_frame", "no", op="mark-as-read", ref="a"))
    assert isinstance(error, Reply) and error.ref == "a"
    assert orjson.loads(error.event.data) == {"code": "bad_frame", "message": "no",
                                              "op": "mark-as-read"}
    nid = uuid.uuid4()
    read, read_all = MarkRead(nid, ref=1), MarkAllRead(ref=2)
    assert s.op(read) == [Mark(read)] and s.op(read_all) == [Mark(read_all)]
    (ack,) = s.operation_done(read_all, UnreadCount(0, 2, version=5), changed=2)
    assert isinstance(ack, Reply) and ack.ref == 2
    assert orjson.loads(ack.event.data) == {"op": "mark-all-as-read", "changed": 2,
                                            "unread_count": 0, "seq": 2, "version": 5}
    (failed,) = s.operation_failed(read, "not_found", "no such notification")
    assert isinstance(failed, Reply) and failed.ref == 1
    assert orjson.loads(failed.event.data) == {"code": "not_found",
                                               "message": "no such notification",
                                               "op": "mark-as-read"}


def test_a_violation_ends_the_stream_and_nothing_after_it_is_acted_upon() -> None:
    s = session()
    s.open(UnreadCount(0, 0))
    assert s.op(Violation(1003, "frames must be text (JSON)")) == [
        Close(1003, "frames must be text (JSON)")]
    assert s.op(Ping()) == [] and s.op(MarkAllRead()) == []
    assert s.event(live(1)) == []
