"""What a fan-out records of a publish, and the batches it makes of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tocsin.pipeline.base import PublishRequest


def test_a_recorded_request_comes_back_whole_and_each_batch_names_only_its_users() -> None:
    request = PublishRequest(
        user_ids=(), type="comment", data={"post": {"id": 7}}, title="Hi", message="m",
        action_url="/posts/7", channels=["web", "email"], priority="high",
        expires_at=datetime(2031, 5, 6, 7, 8, tzinfo=timezone(timedelta(hours=2))),
        topic="project-7", exclude_user_ids=("u_42",))
    back = PublishRequest.from_json(request.to_json())
    assert back == request
    assert back.expires_at is not None
    assert back.expires_at.astimezone(UTC) == datetime(2031, 5, 6, 5, 8, tzinfo=UTC)

    batch = back.addressed_to(["u_1", "u_2"])
    assert (list(batch.user_ids), batch.topic, tuple(batch.exclude_user_ids)) == \
        (["u_1", "u_2"], None, ())
    assert (batch.type, batch.data, batch.channels, batch.priority) == \
        ("comment", {"post": {"id": 7}}, ["web", "email"], "high")


def test_defaults_survive_the_round_trip() -> None:
    request = PublishRequest(user_ids=(), type="system", data={}, topic="all")
    back = PublishRequest.from_json(request.to_json())
    assert (back.title, back.channels, back.priority, back.expires_at, back.exclude_user_ids) \
        == (None, None, "normal", None, ())
