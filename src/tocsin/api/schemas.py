"""Request and response bodies of the public API (v1), with the examples shown at /docs."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from tocsin.domain.identifiers import USER_ID_MAX_LENGTH, USER_ID_PATTERN
from tocsin.domain.topics import TOPIC_MAX_LENGTH, TOPIC_PATTERN
from tocsin.domain.urls import safe_link

Channel = Literal["web", "email", "push"]
UserIdStr = Annotated[
    str, StringConstraints(min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=USER_ID_PATTERN)
]
TypeStr = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
TopicStr = Annotated[
    str, StringConstraints(min_length=1, max_length=TOPIC_MAX_LENGTH, pattern=TOPIC_PATTERN)
]
#: The largest seq a client may name: the store keeps seqs as signed 64-bit integers.
MAX_SEQ = 2**63 - 1
#: How deeply `data` may nest objects and arrays (`{"a": 1}` is 1 level, `{"a": [1]}` 2).
#: Far below what any JSON encoder or database refuses, so whatever is accepted can always be
#: stored, listed and streamed back, wrapped in the envelopes around it.
MAX_DATA_DEPTH = 32


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it on every backend alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value



def _safe_url(value: str) -> str:
    return safe_link(value)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone, e.g. 2030-01-01T00:00:00Z")
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None
    return value


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse what the store cannot keep and serve back as sent: nesting deeper than
    `MAX_DATA_DEPTH`, integers beyond 64 bits, NaN and Infinity, lone surrogates, NUL."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth > MAX_DATA_DEPTH:
            raise ValueError(f"nests objects and arrays more than {MAX_DATA_DEPTH} levels deep "
                             f"(the limit is {MAX_DATA_DEPTH})")
        if isinstance(item, dict):
            for key, inner in item.items():
                _no_nul(key)
                pending.append((inner, depth + 1))
        elif isinstance(item, list):
            pending.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("must not contain NaN or Infinity (they are not JSON)")
    try:
        orjson.dumps(value)  # what is left: integers beyond 64 bits, lone surrogates
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"is not storable JSON: {exc}") from None
    return value


#: The shape of an IANA zone name (`UTC`, `Europe/Paris`, `America/Argentina/Buenos_Aires`,
#: `Etc/GMT+5`); the name must also be a zone this server knows.
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublishBody(_Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "u_42",
                    "type": "comment",
                    "title": "Alice commented on your post",
                    "message": "Nice work!",
                    "data": {"post_id": 7},
                    "action_url": "https://example.com/posts/7#c3",
                },
                {"user_ids": ["u_1", "u_2"], "type": "release", "title": "v2 is out",
                 "data": {}},
                {"topic": "project-7", "exclude_user_ids": ["u_42"], "type": "comment",
                 "title": "Alice commented on project 7", "data": {"project": 7}},
            ]
        },
    )

    user_id: UserIdStr | None = None
    user_ids: list[UserIdStr] | None = None
    topic: TopicStr | None = Field(
        default=None, description="Notify every subscriber of this topic (instead of user_id "
        "or user_ids): the 202 comes once the fan-out is recorded; GET /v1/fanouts/{id} "
        "tells its progress")
    exclude_user_ids: list[UserIdStr] | None = Field(
        default=None, description="With topic only: subscribers left out (the actor, say)")
    type: TypeStr
    data: Annotated[dict[str, Any], AfterValidator(_storable_json)] = Field(
        default_factory=dict)
    title: Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_nul)] | None = None
    message: Annotated[str, StringConstraints(max_length=5000),
                       AfterValidator(_no_nul)] | None = None
    action_url: Annotated[str, StringConstraints(max_length=2048),
                          AfterValidator(_safe_url)] | None = None
    channels: list[Channel] | None = Field(
        default=None, min_length=1,
        description="Channels to use; left out, the type's defaults and each user's "
        "preferences decide. The inbox (web) is always among them unless the user turned it "
        "off.")
    priority: Literal["low", "normal", "high"] = "normal"
    expires_at: Annotated[datetime, AfterValidator(_aware)] | None = None
    send_at: Annotated[datetime, AfterValidator(_aware)] | None = Field(
        default=None, description="Deliver then, not now: until then the notification is "
        "scheduled (not listed, not counted, no seq) and can be cancelled with "
        "DELETE /v1/notifications/{id}")

    @model_validator(mode="after")
    def _one_audience(self) -> PublishBody:
        given = [self.user_id is not None, self.user_ids is not None, self.topic is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of user_id, user_ids and topic")
        if self.user_ids is not None and not self.user_ids:
            raise ValueError("user_ids must not be empty")
        if self.exclude_user_ids is not None and self.topic is None:
            raise ValueError("exclude_user_ids goes with topic only")
        if self.topic is not None and self.send_at is not None:
            # A fan-out expands as soon as the worker gets to it, batch by batch: a topic's
            # notifications cannot wait for a send_at yet.
            raise ValueError("send_at goes with user_id or user_ids, not with topic")
        return self

    @property
    def audience(self) -> list[str]:
        return [self.user_id] if self.user_id is not None else list(self.user_ids or [])

    def payload(self) -> dict[str, Any]:
        """The body for its Idempotency-Key's fingerprint. The topic's fields are left out
        when absent, so a publish to users has the fingerprint it had before topics existed
        (a retry across an upgrade is still the same request)."""
        dumped = self.model_dump(mode="json")
        for name in ("topic", "exclude_user_ids"):
            if dumped[name] is None:
                del dumped[name]
        return dumped


class Receipt(BaseModel):
    id: str
    user_id: str
    seq: int | None = Field(description="None when the notification is not in the user's "
                            "inbox (status suppressed)")
    status: Literal["created", "suppressed", "scheduled", "grouped"]
    channels: dict[str, str] = Field(
        description="Per channel, what was decided: delivered, queued, held:quiet_hours, "
        "suppressed:<preference|category|muted>, skipped:<no_address|unavailable>",
        examples=[{"web": "delivered", "email": "queued"}])


class PublishResponse(BaseModel):
    notifications: list[Receipt]


class FanoutAccepted(BaseModel):
    """The answer to a publish to a topic."""

    fanout_id: str
    recipients: int = Field(description="the topic's subscribers but the excluded, when the "
                            "fan-out was recorded")


class FanoutOut(BaseModel):
    id: str
    status: Literal["running", "done"]
    recipients: int
    processed: int = Field(description="recipients notified so far (their notification "
                           "stored, or suppressed by their preferences)")


class SubscribersBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"user_ids": ["u_1", "u_2"]}]})

    user_ids: list[UserIdStr] = Field(min_length=1)


class SubscribersAdded(BaseModel):
    topic: str
    added: int = Field(description="how many were not subscribed yet")


class SubscriberPage(BaseModel):
    user_ids: list[str]
    next: str | None = Field(description="pass as `cursor` for the next page; null: the last")


class TopicBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"self_subscribe": True}]})

    self_subscribe: StrictBool = Field(
        description="users may subscribe and unsubscribe themselves (POST and DELETE "
        "/v1/me/topics/{topic})")


class TopicOut(BaseModel):
    topic: str
    self_subscribe: bool


class TokenBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"user_id": "u_42", "ttl_seconds": 3600}]})

    user_id: UserIdStr
    ttl_seconds: StrictInt = Field(default=3600, ge=60)


class TokenResponse(BaseModel):
    token: str
    expires_at: datetime


class UserBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"email": "ada@example.com", "name": "Ada", "locale": "en-GB",
                      "timezone": "Europe/London"}]})

    email: Annotated[str, StringConstraints(max_length=320,
                                            pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
                     AfterValidator(_no_nul)] | None = None
    name: Annotated[str, StringConstraints(max_length=255), AfterValidator(_no_nul)] | None = None
    locale: Annotated[str, StringConstraints(
        max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64, pattern=TIMEZONE_PATTERN),
                        AfterValidator(_timezone)] | None = None


class UserResponse(BaseModel):
    id: str
    email: str | None
    name: str | None
    locale: str | None
    timezone: str | None


class NotificationOut(BaseModel):
    id: str
    seq: int
    type: str
    title: str | None
    message: str | None
    data: dict[str, Any]
    action_url: str | None
    priority: str
    read: bool
    read_at: datetime | None
    created_at: datetime
    expires_at: datetime | None


class NotificationList(BaseModel):
    notifications: list[NotificationOut]
    next: int | None = Field(description="pass as `before` for the next (older) page")
    unread_count: int
    seq: int = Field(description="the user's newest seq; unread_count is valid at it")
    version: int = Field(description="the count's version: higher is newer")


class UnreadCountOut(BaseModel):
    count: int
    seq: int
    version: int = Field(description="rises with every change of the count, reads included")


class ReadAllBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"seq": 41}]})

    seq: StrictInt | None = Field(
        default=None, ge=0, le=MAX_SEQ,
        description="mark read only up to this seq (the newest the client has shown); "
                    "default: the newest committed when the request starts",
    )


class ReadResult(BaseModel):
    ids: list[str] = Field(description="notifications that changed from unread to read")
    unread_count: int
    seq: int
    version: int


class RateLimitOut(BaseModel):
    limit: int
    per_seconds: int | float


class TypeOut(BaseModel):
    type: str
    title: str | None
    message: str | None
    action_url: str | None
    locales: dict[str, dict[str, str | None]]
    category: str | None
    channels: dict[str, bool]
    critical: bool
    description: str | None
    rate_limit: RateLimitOut | None = Field(
        default=None, description="at most `limit` emails and pushes per user in any "
        "`per_seconds`; the rest are `throttled` (the inbox still gets them)")
    source: Literal["builtin", "config", "api"] = Field(
        description="where the definition in force comes from (the API wins over tocsin.toml, "
        "which wins over the built-in types)")


class TypeList(BaseModel):
    types: list[TypeOut]


class TypePreferenceOut(BaseModel):
    type: str
    enabled: bool
    channels: dict[str, bool]
    customized: bool = Field(description="the user changed this type (else: its defaults)")
    critical: bool = Field(description="always on: cannot be turned off, never held back")
    category: str | None
    description: str | None
    why: Literal["muted", "category", "preference"] | None = Field(
        default=None, description="what turned the type off when `enabled` is false: the "
        "global mute, its category, or the user's own switch for it")


class QuietHoursOut(BaseModel):
    start: str
    end: str
    timezone: str
    days: list[str]


class PreferencesOut(BaseModel):
    muted: bool
    categories: dict[str, bool]
    quiet_hours: QuietHoursOut | None
    types: list[TypePreferenceOut]


class TypePreferenceBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"channels": {"email": True}}, {"enabled": False}]})

    enabled: StrictBool | None = None
    channels: dict[Channel, StrictBool] | None = None

    @model_validator(mode="after")
    def _something(self) -> TypePreferenceBody:
        if self.enabled is None and not self.channels:
            raise ValueError("give enabled, channels, or both")
        return self


CategoryStr = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                               pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class PreferencesBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"muted": True}, {"categories": {"social": False}}]})

    muted: StrictBool | None = None
    categories: dict[CategoryStr, StrictBool] | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _something(self) -> PreferencesBody:
        if self.muted is None and self.categories is None:
            raise ValueError("give muted, categories, or both")
        return self


class QuietHoursBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"start": "22:00", "end": "07:00", "timezone": "Europe/Paris",
                      "days": ["mon", "tue", "wed", "thu", "fri"]}]})

    start: Annotated[str, StringConstraints(max_length=5)] = Field(description="HH:MM, local")
    end: Annotated[str, StringConstraints(max_length=5)] = Field(
        description="HH:MM, local; earlier than start: the window ends the next day")
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="IANA zone; left out, the user's profile timezone")
    days: list[Annotated[str, StringConstraints(max_length=3)]] | None = Field(
        default=None, max_length=7, description="the days a window starts on; left out, every day")
