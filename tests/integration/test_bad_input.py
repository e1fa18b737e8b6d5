"""Bad requests get the exact status and error code, in the contract's shape, and write nothing.

The app here allows 3 users per batch, so "too many user_ids" is a small request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import Api
from tests.support.db import row_counts
from tocsin.api.schemas import MAX_DATA_DEPTH
from tocsin.store.sql import SqlStore

MAX_BATCH = 3
USER = "bad-input-user"
#: No request of this module creates it, so a publish to it is always to an unknown topic.
TOPIC = "bad-input-topic"
JSON = {"Content-Type": "application/json"}
DROP = object()


@dataclass(frozen=True)
class Bad:
    """One refused request: what is sent, and the status and code it must get."""

    method: str
    path: str
    status: int
    code: str
    json: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    as_user: bool = False


def publish(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": USER, "type": "comment", "title": "hello"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


def bad_publish(status: int = 422, code: str = "validation_error", **changes: Any) -> Bad:
    return Bad("POST", "/v1/notifications", status, code, json=publish(**changes))


def raw_publish(raw: bytes, status: int = 422, code: str = "validation_error",
                content_type: str = "application/json") -> Bad:
    return Bad("POST", "/v1/notifications", status, code, raw=raw,
               headers={"Content-Type": content_type})


def bad_list(**params: Any) -> Bad:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return Bad("GET", f"/v1/me/notifications?{query}", 422, "validation_error", as_user=True)


def bad_read_all(json: Any) -> Bad:
    return Bad("POST", "/v1/me/notifications/read-all", 422, "validation_error", json=json,
               as_user=True)


def bad_token(**body: Any) -> Bad:
    return Bad("POST", "/v1/tokens", 422, "validation_error", json=body)


def bad_profile(**body: Any) -> Bad:
    return Bad("PUT", f"/v1/users/{USER}", 422, "validation_error", json=body)


def bad_type(body: Any, name: str = "bad-input-type", code: str = "validation_error") -> Bad:
    return Bad("PUT", f"/v1/types/{name}", 422, code, json=body)


def bad_preference(type_: str, body: Any, status: int = 422,
                   code: str = "validation_error") -> Bad:
    return Bad("PUT", f"/v1/me/preferences/{type_}", status, code, json=body, as_user=True)


def bad_topic_publish(status: int = 422, code: str = "validation_error", **changes: Any) -> Bad:
    return bad_publish(status, code, user_id=DROP, **{"topic": TOPIC, **changes})


def bad_subscribers(body: Any, topic: str = TOPIC) -> Bad:
    return Bad("PUT", f"/v1/topics/{topic}/subscribers", 422, "validation_error", json=body)


def bad_quiet_hours(**body: Any) -> Bad:
    window: dict[str, Any] = {"start": "22:00", "end": "07:00", "timezone": "Europe/Paris"}
    window.update(body)
    return Bad("PUT", "/v1/me/quiet-hours", 422, "validation_error",
               json={k: v for k, v in window.items() if v is not DROP}, as_user=True)


def nested(depth: int) -> Any:
    """A list holding a list … `depth + 1` levels of arrays."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def nested_objects(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_too_deep_data_is_refused_naming_the_limit(small_api: Api, store: SqlStore) -> None:
    response = await small_api.client.post(
        "/v1/notifications", headers=small_api.publisher,
        json=publish(data=nested_objects(MAX_DATA_DEPTH + 1)))
    error = assert_error(response, 422, "validation_error")
    assert f"more than {MAX_DATA_DEPTH} levels deep" in error["message"]
    deepest = nested_objects(MAX_DATA_DEPTH)
    accepted = await small_api.client.post("/v1/notifications", headers=small_api.publisher,
                                           json=publish(data=deepest))
    assert accepted.status_code == 202, accepted.text
    listed = await small_api.me(USER, "notifications")
    assert listed["notifications"][0]["data"] == deepest


CASES: dict[str, Bad] = {
    # how the body is sent
    "malformed_json": raw_publish(b'{"user_id": "x", "type":', 400, "invalid_json"),
    "text_plain": raw_publish(b'{"user_id": "x", "type": "comment"}', 415,
                              "unsupported_media_type", content_type="text/plain"),
    "form_encoded": raw_publish(b"user_id=x&type=comment", 415, "unsupported_media_type",
                                content_type="application/x-www-form-urlencoded"),
    "body_is_a_list": Bad("POST", "/v1/notifications", 422, "validation_error",
                          json=[publish()]),
    "malformed_content_length": Bad("POST", "/v1/notifications", 400, "bad_request",
                                    raw=b"{}", headers={**JSON, "Content-Length": "many"}),
    # publish: audience
    "missing_type": bad_publish(type=DROP),
    "both_user_id_and_user_ids": bad_publish(user_ids=["a", "b"]),
    "neither_user_id_nor_user_ids": bad_publish(user_id=DROP),
    "empty_user_ids": bad_publish(user_id=DROP, user_ids=[]),
    "duplicate_user_ids": bad_publish(user_id=DROP, user_ids=["a", "b", "a"]),
    "too_many_user_ids": bad_publish(user_id=DROP,
                                     user_ids=[f"u{i}" for i in range(MAX_BATCH + 1)]),
    "user_id_with_newline": bad_publish(user_id="a\nb"),
    "user_id_too_long": bad_publish(user_id="u" * 256),
    # publish: to a topic
    "topic_and_user_id": bad_publish(topic=TOPIC),
    "topic_and_user_ids": bad_topic_publish(user_ids=["a"]),
    "exclude_without_topic": bad_publish(exclude_user_ids=["a"]),
    "exclude_with_user_ids": bad_publish(user_id=DROP, user_ids=["a"], exclude_user_ids=["b"]),
    "topic_bad_name": bad_topic_publish(topic="no spaces"),
    "topic_name_starts_with_dash": bad_topic_publish(topic="-x"),
    "topic_name_too_long": bad_topic_publish(topic="t" * 129),
    "topic_empty": bad_topic_publish(topic=""),
    "topic_too_many_excluded": bad_topic_publish(
        exclude_user_ids=[f"u{i}" for i in range(MAX_BATCH + 1)]),
    "topic_excluded_twice": bad_topic_publish(exclude_user_ids=["a", "a"]),
    "topic_excluded_bad_user": bad_topic_publish(exclude_user_ids=["a\nb"]),
    "topic_channel_not_available": bad_topic_publish(channels=["web", "email"]),
    "topic_past_expires_at": bad_topic_publish(expires_at="2001-01-01T00:00:00Z"),
    "topic_unknown_type_without_title": bad_topic_publish(type="nobody-defined-this",
                                                          title=DROP),
    "topic_unknown": bad_topic_publish(404, "not_found"),
    "topic_unknown_with_idempotency_key": Bad(
        "POST", "/v1/notifications", 404, "not_found", json=publish(user_id=DROP, topic=TOPIC),
        headers={"Idempotency-Key": "bad-input-topic-key"}),
    # topics: subscribers and options
    "subscribers_too_many": bad_subscribers({"user_ids": [f"u{i}"
                                                          for i in range(MAX_BATCH + 1)]}),
    "subscribers_empty": bad_subscribers({"user_ids": []}),
    "subscribers_missing": bad_subscribers({}),
    "subscribers_bad_user": bad_subscribers({"user_ids": ["a\nb"]}),
    "subscribers_not_a_list": bad_subscribers({"user_ids": "a"}),
    "subscribers_unknown_field": bad_subscribers({"user_ids": ["a"], "notify": True}),
    "subscribers_bad_topic": bad_subscribers({"user_ids": ["a"]}, topic="no%20spaces"),
    "subscribers_topic_too_long": bad_subscribers({"user_ids": ["a"]}, topic="t" * 129),
    "subscribers_list_unknown_topic": Bad("GET", f"/v1/topics/{TOPIC}/subscribers", 404,
                                          "not_found"),
    "subscribers_list_limit_zero": Bad("GET", f"/v1/topics/{TOPIC}/subscribers?limit=0", 422,
                                       "validation_error"),
    "subscribers_list_limit_over_max": Bad("GET", f"/v1/topics/{TOPIC}/subscribers?limit=1001",
                                           422, "validation_error"),
    "unsubscribe_bad_user": Bad("DELETE", f"/v1/topics/{TOPIC}/subscribers/a%0Ab", 422,
                                "validation_error"),
    "topic_options_not_boolean": Bad("PUT", f"/v1/topics/{TOPIC}", 422, "validation_error",
                                     json={"self_subscribe": "yes"}),
    "topic_options_empty": Bad("PUT", f"/v1/topics/{TOPIC}", 422, "validation_error", json={}),
    "topic_get_unknown": Bad("GET", f"/v1/topics/{TOPIC}", 404, "not_found"),
    "self_subscribe_unknown_topic": Bad("POST", f"/v1/me/topics/{TOPIC}", 404, "not_found",
                                        as_user=True),
    "self_unsubscribe_unknown_topic": Bad("DELETE", f"/v1/me/topics/{TOPIC}", 404, "not_found",
                                          as_user=True),
    "self_subscribe_bad_topic": Bad("POST", "/v1/me/topics/no%20spaces", 422,
                                    "validation_error", as_user=True),
    "self_subscribe_as_publisher": Bad("POST", f"/v1/me/topics/{TOPIC}", 401, "unauthorized"),
    "subscribers_as_user": Bad("PUT", f"/v1/topics/{TOPIC}/subscribers", 401, "unauthorized",
                               json={"user_ids": ["a"]}, as_user=True),
    "fanout_unknown": Bad("GET", f"/v1/fanouts/{uuid.UUID(int=7)}", 404, "not_found"),
    "fanout_bad_id": Bad("GET", "/v1/fanouts/not-a-uuid", 404, "not_found"),
    # publish: fields
    "unknown_field": bad_publish(colour="red"),
    "type_with_space": bad_publish(type="new comment"),
    "type_empty": bad_publish(type=""),
    "type_too_long": bad_publish(type="t" * 129),
    "title_too_long": bad_publish(title="t" * 501),
    "message_too_long": bad_publish(message="m" * 5001),
    "title_with_nul": bad_publish(title="a\x00b"),
    "javascript_action_url": bad_publish(action_url="javascript:alert(document.cookie)"),
    "data_action_url": bad_publish(action_url="data:text/html,<script>alert(1)</script>"),
    "protocol_relative_action_url": bad_publish(action_url="//evil.example/login"),
    "backslash_action_url": bad_publish(action_url="/\\evil.example/login"),
    "action_url_with_tab": bad_publish(action_url="/\t/evil.example/login"),
    "naive_expires_at": bad_publish(expires_at="2099-01-01T00:00:00"),
    "past_expires_at": bad_publish(expires_at="2001-01-01T00:00:00Z"),
    "expires_at_beyond_utc": bad_publish(expires_at="9999-12-31T23:59:59-01:00"),
    "channel_email_not_available": bad_publish(channels=["web", "email"]),
    "channel_unknown": bad_publish(channels=["pigeon"]),
    "channels_empty": bad_publish(channels=[]),
    "bad_priority": bad_publish(priority="urgent"),
    "data_not_an_object": bad_publish(data=[1, 2]),
    "data_int_beyond_64_bits": bad_publish(data={"n": 2**70}),
    "data_with_nul": bad_publish(data={"s": "a\x00b"}),
    "data_key_with_nul": bad_publish(data={"a\x00": 1}),
    "data_too_deep": bad_publish(data={"deep": nested(300)}),
    # the object is level 1, so this nests 33 levels, one more than MAX_DATA_DEPTH
    "data_33_levels": bad_publish(data={"deep": nested(MAX_DATA_DEPTH - 1)}),
    "data_33_levels_of_objects": bad_publish(data=nested_objects(MAX_DATA_DEPTH + 1)),
    "data_nan": raw_publish(b'{"user_id": "x", "type": "comment", "data": {"n": NaN}}'),
    "data_lone_surrogate": raw_publish(
        b'{"user_id": "x", "type": "comment", "data": {"s": "\\ud800"}}'),
    "idempotency_key_too_long": Bad("POST", "/v1/notifications", 422, "validation_error",
                                    json=publish(), headers={"Idempotency-Key": "k" * 256}),
    "idempotency_key_with_space": Bad("POST", "/v1/notifications", 422, "validation_error",
                                      json=publish(), headers={"Idempotency-Key": "a key"}),
    # publish: scheduling
    "send_at_in_the_past": bad_publish(send_at="2001-01-01T00:00:00Z"),
    "send_at_with_topic": bad_publish(user_id=DROP, topic="some-topic",
                                      send_at="2099-01-01T00:00:00Z"),
    "send_at_naive": bad_publish(send_at="2099-01-01T00:00:00"),
    "expires_before_send_at": bad_publish(send_at="2099-01-02T00:00:00Z",
                                          expires_at="2099-01-01T00:00:00Z"),
    "cancel_not_an_id": Bad("DELETE", "/v1/notifications/not-an-id", 404, "not_found"),
    "cancel_unknown": Bad("DELETE", "/v1/notifications/00000000-0000-4000-8000-000000000000",
                          404, "not_found"),
    # types: grouping
    "type_group_without_key": bad_type({"title": "t", "group": {"window_seconds": 60,
                                                                "title": "x"}}),
    "type_group_window_zero": bad_type({"title": "t", "group": {
        "key": "k", "window_seconds": 0, "title": "x"}}),
    "type_group_window_too_long": bad_type({"title": "t", "group": {
        "key": "k", "window_seconds": 31 * 24 * 3600, "title": "x"}}),
    "type_group_title_does_not_compile": bad_type({"title": "t", "group": {
        "key": "k", "window_seconds": 60, "title": "{{ count"}}, code="template_error"),
    # publish: types and templates
    "unknown_type_without_title": bad_publish(type="nobody-defined-this", title=DROP),
    "channel_push_not_available": bad_publish(channels=["push"]),
    # types
    "type_template_does_not_compile": bad_type({"title": "{{ oops"}, code="template_error"),
    "type_locale_template_does_not_compile": bad_type(
        {"title": "ok", "locales": {"fr": {"title": "{% if %}"}}}, code="template_error"),
    "type_template_too_long": bad_type({"title": "x" * 10_001}),
    "type_unknown_field": bad_type({"title": "t", "colour": "red"}),
    "type_unknown_channel": bad_type({"title": "t", "channels": {"pigeon": True}}),
    "type_channel_not_boolean": bad_type({"title": "t", "channels": {"email": "yes"}}),
    "type_critical_not_boolean": bad_type({"title": "t", "critical": "true"}),
    "type_bad_locale": bad_type({"title": "t", "locales": {"not a locale": {"title": "x"}}}),
    "type_bad_name": bad_type({"title": "t"}, name="bad%20name"),
    "type_name_too_long": bad_type({"title": "t"}, name="t" * 129),
    "type_rate_limit_zero": bad_type({"title": "t", "rate_limit": {"limit": 0, "per_seconds": 60}}),
    "type_rate_limit_not_integer": bad_type(
        {"title": "t", "rate_limit": {"limit": 1.5, "per_seconds": 60}}),
    "type_rate_limit_window_zero": bad_type(
        {"title": "t", "rate_limit": {"limit": 1, "per_seconds": 0}}),
    "type_rate_limit_window_over_30_days": bad_type(
        {"title": "t", "rate_limit": {"limit": 1, "per_seconds": 30 * 24 * 3600 + 1}}),
    "type_rate_limit_window_as_text": bad_type(
        {"title": "t", "rate_limit": {"limit": 1, "per_seconds": "3600"}}),
    "type_rate_limit_without_window": bad_type({"title": "t", "rate_limit": {"limit": 1}}),
    "type_rate_limit_unknown_field": bad_type(
        {"title": "t", "rate_limit": {"limit": 1, "per_seconds": 60, "burst": 5}}),
    "type_delete_unknown": Bad("DELETE", "/v1/types/nobody-defined-this", 404, "not_found"),
    "type_get_unknown": Bad("GET", "/v1/types/nobody-defined-this", 404, "not_found"),
    # preferences
    "preference_unknown_type": bad_preference("nobody-defined-this", {"enabled": False}, 404,
                                              "not_found"),
    "preference_unknown_channel": bad_preference("comment", {"channels": {"pigeon": True}}),
    "preference_channel_not_boolean": bad_preference("comment", {"channels": {"email": 1}}),
    "preference_empty": bad_preference("comment", {}),
    "preference_unknown_field": bad_preference("comment", {"enabled": True, "muted": True}),
    "preference_critical_off": bad_preference("payment", {"enabled": False}),
    "preference_critical_channel_off": bad_preference("payment", {"channels": {"email": False}}),
    "preference_reset_unknown_type": Bad("DELETE", "/v1/me/preferences/nobody-defined-this",
                                         404, "not_found", as_user=True),
    "settings_empty": Bad("PUT", "/v1/me/preferences", 422, "validation_error", json={},
                          as_user=True),
    "settings_muted_not_boolean": Bad("PUT", "/v1/me/preferences", 422, "validation_error",
                                      json={"muted": "yes"}, as_user=True),
    "settings_bad_category": Bad("PUT", "/v1/me/preferences", 422, "validation_error",
                                 json={"categories": {"not a category": False}}, as_user=True),
    "publisher_preference_bad_user": Bad("PUT", "/v1/users/a%0Ab/preferences/comment", 422,
                                         "validation_error", json={"enabled": False}),
    # quiet hours
    "quiet_hours_bad_start": bad_quiet_hours(start="25:00"),
    "quiet_hours_bad_end": bad_quiet_hours(end="7am"),
    "quiet_hours_same_times": bad_quiet_hours(end="22:00"),
    "quiet_hours_bad_zone": bad_quiet_hours(timezone="Mars/Olympus_Mons"),
    "quiet_hours_bad_day": bad_quiet_hours(days=["mon", "someday"]),
    "quiet_hours_no_days": bad_quiet_hours(days=[]),
    "quiet_hours_no_zone_anywhere": bad_quiet_hours(timezone=DROP),
    "quiet_hours_unknown_field": bad_quiet_hours(sound=False),
    "quiet_hours_clear_by_publisher_bad_user": Bad("DELETE", "/v1/users/a%0Ab/quiet-hours", 422,
                                                   "validation_error"),
    # tokens
    "token_ttl_over_max": bad_token(user_id=USER, ttl_seconds=30 * 24 * 3600 + 1),
    "token_ttl_under_min": bad_token(user_id=USER, ttl_seconds=59),
    "token_without_user": bad_token(ttl_seconds=600),
    # profiles
    "profile_bad_timezone": bad_profile(timezone="Mars/Olympus_Mons"),
    "profile_timezone_path": bad_profile(timezone="../../../etc/passwd"),
    "profile_bad_email": bad_profile(email="not-an-email"),
    "profile_email_with_nul": bad_profile(email="a\x00@example.com"),
    "profile_bad_locale": bad_profile(locale="english please"),
    "profile_name_with_nul": bad_profile(name="Ada\x00"),
    "profile_unknown_field": bad_profile(nickname="A"),
    # the user's list and read-all
    "list_limit_over_max": bad_list(limit=101),
    "list_limit_zero": bad_list(limit=0),
    "list_before_zero": bad_list(before=0),
    "list_before_beyond_64_bits": bad_list(before=2**63),
    "list_unread_not_boolean": bad_list(unread="maybe"),
    "list_bad_type": bad_list(type="no%20spaces"),
    "read_all_negative_seq": bad_read_all({"seq": -1}),
    "read_all_seq_beyond_64_bits": bad_read_all({"seq": 2**63}),
    "read_all_seq_not_a_number": bad_read_all({"seq": "all"}),
    "read_all_unknown_field": bad_read_all({"seq": 1, "ids": []}),
    "read_all_malformed_json": Bad("POST", "/v1/me/notifications/read-all", 400, "invalid_json",
                                   raw=b'{"seq":', headers=JSON, as_user=True),
    # routes
    "unknown_route": Bad("GET", "/v1/nothing-here", 404, "not_found"),
    "wrong_method": Bad("DELETE", "/v1/notifications", 405, "method_not_allowed"),
}


@pytest.fixture
async def small_api(store: SqlStore) -> AsyncIterator[Api]:
    async with running_api(store, max_batch_users=MAX_BATCH) as api:
        yield api


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
async def test_bad_request_is_refused_and_writes_nothing(small_api: Api, store: SqlStore,
                                                         case: Bad) -> None:
    auth = small_api.user(USER) if case.as_user else small_api.publisher
    before = await row_counts(store)
    if case.raw is not None:
        response = await small_api.client.request(
            case.method, case.path, content=case.raw, headers={**auth, **case.headers})
    else:
        response = await small_api.client.request(
            case.method, case.path, json=case.json, headers={**auth, **case.headers})
    assert response.status_code < 500, response.text
    assert_error(response, case.status, case.code)
    assert await row_counts(store) == before


async def test_a_valid_request_passes_the_same_app(small_api: Api, store: SqlStore) -> None:
    """The matrix's baseline: without its one defect, each kind of request is accepted."""
    before = await row_counts(store)
    ok = await small_api.client.post(
        "/v1/notifications", headers=small_api.publisher,
        json=publish(user_id=DROP, user_ids=[f"{USER}-{i}" for i in range(MAX_BATCH)],
                     action_url="/posts/7#c3", expires_at="2099-01-01T00:00:00+02:00",
                     data={"deep": nested(MAX_DATA_DEPTH - 2), "n": 2**62}, priority="high"))
    assert ok.status_code == 202, ok.text
    assert (await row_counts(store))["notifications"] == before["notifications"] + MAX_BATCH
