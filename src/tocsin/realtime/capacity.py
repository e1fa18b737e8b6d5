"""Connection limits: per user and per node, checked before a stream is accepted."""

from __future__ import annotations

from collections import Counter

from tocsin.realtime.handshake import TooManyConnections


class Capacity:
    def __init__(self, per_user: int, total: int) -> None:
        self._per_user = per_user
        self._total = total
        self._open: Counter[str] = Counter()
        self._count = 0

    def admit(self, user_id: str) -> None:
        if self._count >= self._total:
            raise TooManyConnections(f"this node holds its maximum of {self._total} streams")
        if self._open[user_id] >= self._per_user:
            raise TooManyConnections(
                f"a user may hold at most {self._per_user} streams at once")
        self._open[user_id] += 1
        self._count += 1

    def release(self, user_id: str) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]
        self._count -= 1

    @property
    def open(self) -> int:
        return self._count
