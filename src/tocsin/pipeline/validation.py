"""The first stage: what the request's schema cannot check by itself."""

from __future__ import annotations

from collections.abc import Collection

from tocsin.domain.errors import InvalidInput
from tocsin.pipeline.base import Publish


class Validation:
    def __init__(self, *, max_batch_users: int, channels: Collection[str]) -> None:
        self._max_batch_users = max_batch_users
        self._channels = frozenset(channels)

    async def __call__(self, publish: Publish) -> None:
        request = publish.request
        if not request.user_ids:
            raise InvalidInput("give user_id or a non-empty user_ids")
        if len(request.user_ids) > self._max_batch_users:
            raise InvalidInput(
                f"at most {self._max_batch_users} users per request, got {len(request.user_ids)}",
                details={"field": "user_ids", "max": self._max_batch_users},
            )
        if len(set(request.user_ids)) != len(request.user_ids):
            raise InvalidInput("user_ids contains the same user more than once",
                               details={"field": "user_ids"})
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
