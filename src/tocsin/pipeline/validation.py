"""The first stage: what the request's schema cannot check by itself."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from tocsin.domain.errors import InvalidInput
from tocsin.pipeline.base import Publish


class Validation:
    def __init__(self, *, max_batch_users: int, channels: Collection[str]) -> None:
        self._max_batch_users = max_batch_users
        self._channels = frozenset(channels)

    async def __call__(self, publish: Publish) -> None:
        request = publish.request
        if request.topic is not None:
            self._users(request.exclude_user_ids, "exclude_user_ids")
        else:
            if not request.user_ids:
                raise InvalidInput("give user_id, a non-empty user_ids, or a topic")
            self._users(request.user_ids, "user_ids")
        unknown = sorted(set(request.channels or ()) - self._channels)
        if unknown:
            available = sorted(self._channels)
            raise InvalidInput(
                f"channel(s) {', '.join(unknown)} not available on this server; "
                f"available: {', '.join(available)}",
                details={"field": "channels", "available": available},
            )
        if request.expires_at is not None and request.expires_at <= publish.now:
            raise InvalidInput("expires_at is in the past", details={"field": "expires_at"})
        if request.send_at is not None:
            if request.send_at <= publish.now:
                raise InvalidInput("send_at is not in the future", details={"field": "send_at"})
            if request.expires_at is not None and request.expires_at <= request.send_at:
                raise InvalidInput("expires_at is not after send_at: the notification would "
                                   "expire before it is sent", details={"field": "expires_at"})

    def _users(self, user_ids: Sequence[str], field: str) -> None:
        if len(user_ids) > self._max_batch_users:
            raise InvalidInput(
                f"at most {self._max_batch_users} users per request, got {len(user_ids)}",
                details={"field": field, "max": self._max_batch_users},
            )
        if len(set(user_ids)) != len(user_ids):
            raise InvalidInput(f"{field} contains the same user more than once",
                               details={"field": field})
