"""The RateLimiter on Redis: one count shared by every node.

A sliding log, exact like the in-memory one: each key is a sorted set of the times of its
allowed acquisitions in the current window. One Lua script does everything for a call, for
one key or a whole batch of them, in one round trip and atomically (Redis runs a script alone):
it drops the entries that left the window, counts, adds one entry if there is room, and sets
the key's expiry to the window, so no key it writes is ever left without one. Time is Redis's
own (`TIME`), so nodes whose clocks disagree still share one window. A refused acquisition adds
nothing. Memory is one entry per allowed acquisition in the window, which is why the limits
configured are bounded (`domain/rates.py`).

When Redis does not answer within `timeout` (down, restarting, hung), the limiter **fails
open**: every acquisition of that call is allowed, with `Verdict.degraded` set, and a warning
is logged when it starts and then at most once a minute while it lasts (with how many went
unchecked), and once more when Redis answers again. A notification is never lost, and a publish
never refused, because the limiter could not count; the cost is that during an outage the
limits are not enforced. The timeout bounds every call, so a hung Redis delays a publish by at
most that.

One Redis, not a cluster: a batch's keys are written by one script, which a cluster allows
only within one hash slot.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Sequence

from tocsin.domain.errors import SettingsError
from tocsin.limits.base import Verdict

try:
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise SettingsError(
        "TOCSIN_BUS_URL is Redis but redis-py is not installed: pip install 'tocsin[redis]'"
    ) from exc

log = logging.getLogger("tocsin.limits")

#: Every key the limiter writes starts with this.
PREFIX = "tocsin:limit:"
TIMEOUT = 0.5
_RESAY_SECONDS = 60.0
_CONNECTIONS = 32

# KEYS: the keys. ARGV: limit, window in microseconds, a token unique to this call (so the
# members added by racing calls never collide). Returns allowed (0/1), remaining and
# microseconds until the next would be allowed, three numbers per key.
_SCRIPT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local token = ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local expiry = math.ceil(window / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local allowed = 0
  if count < limit then
    redis.call('ZADD', key, now, token .. ':' .. i)
    count = count + 1
    allowed = 1
  end
  local retry = 0
  if count > 0 then
    redis.call('PEXPIRE', key, expiry)
    if count >= limit then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      retry = tonumber(oldest[2]) + window - now
    end
  end
  out[#out + 1] = allowed
  out[#out + 1] = limit - count
  out[#out + 1] = retry
end
return out
"""


class RedisRateLimiter:
    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        self._timeout = timeout
        # Bounded: a burst of publishes waits for a connection (within the timeout) instead of
        # opening hundreds. No retries of its own: a late answer is no use to a publish.
        self._pool = BlockingConnectionPool.from_url(
            url, max_connections=_CONNECTIONS, timeout=timeout, socket_connect_timeout=timeout,
            socket_timeout=timeout, retry=Retry(NoBackoff(), 0), client_name="tocsin-limits")
        self._redis = Redis(connection_pool=self._pool)
        self._script = self._redis.register_script(_SCRIPT)
        self._failing_since: float | None = None
        self._said = -math.inf
        #: Acquisitions let through unchecked since the outage was last logged.
        self.unchecked = 0

    async def acquire(self, key: str, limit: int, per_seconds: float) -> Verdict:
        return (await self.acquire_many([key], limit, per_seconds))[0]

    async def acquire_many(self, keys: Sequence[str], limit: int, per_seconds: float
                           ) -> list[Verdict]:
        if not keys:
            return []
        window = max(1, round(per_seconds * 1_000_000))
        try:
            answer = await asyncio.wait_for(
                self._script(keys=[PREFIX + key for key in keys],
                             args=[limit, window, os.urandom(8).hex()]),
                self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc, len(keys))
            return [Verdict(allowed=True, remaining=0, retry_after=0.0, degraded=True)
                    for _ in keys]
        self._answered()
        numbers = [int(value) for value in answer]
        return [Verdict(allowed=bool(numbers[i]), remaining=numbers[i + 1],
                        retry_after=numbers[i + 2] / 1_000_000)
                for i in range(0, len(numbers), 3)]

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.disconnect()

    def _failed(self, exc: BaseException, count: int) -> None:
        now = time.monotonic()
        self.unchecked += count
        if self._failing_since is None:
            self._failing_since = now
        if now - self._said >= _RESAY_SECONDS:
            log.warning("rate limits not checked: Redis did not answer (%s); %d acquisitions "
                        "allowed unchecked so far (fail open)",
                        exc or type(exc).__name__, self.unchecked)
            self._said = now

    def _answered(self) -> None:
        if self._failing_since is not None:
            log.warning("rate limits checked again: Redis answers (%d acquisitions went "
                        "unchecked in %.0fs)", self.unchecked,
                        time.monotonic() - self._failing_since)
            self._failing_since = None
            self._said = -math.inf
            self.unchecked = 0
