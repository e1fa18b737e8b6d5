"""Publisher API keys: generated with a CSPRNG, stored only as a SHA-256 hash, checked in
constant time. A fast hash is right here: keys are 256-bit random, so there is nothing to
brute-force, unlike passwords."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from tocsin.clock import Clock
from tocsin.store.base import Store

PREFIX = "tsk_"


@dataclass(frozen=True, slots=True)
class Publisher:
    """An authenticated publisher: `id` is recorded on what it publishes and scopes its
    idempotency keys."""

    id: str
    name: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new key as (id, full key to show once)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The id in a key made by `generate_key` (`tsk_<id>_<secret>`); None for other keys."""
    if not key.startswith(PREFIX):
        return None
    key_id, separator, _ = key.removeprefix(PREFIX).partition("_")
    return key_id if separator and key_id else None


class KeyVerifier:
    """Checks a presented key against configured keys and the store's hashed keys.

    A verified stored key is trusted for `cache_seconds` without another lookup, so a
    revocation takes effect on every node within that time.
    """

    def __init__(self, store: Store, configured: list[str], clock: Clock,
                 cache_seconds: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self._configured = [(hash_key(key), f"env-{hash_key(key)[:12]}") for key in configured]
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Publisher]] = {}

    async def verify(self, key: str) -> Publisher | None:
        digest = hash_key(key)
        found: Publisher | None = None
        for configured_digest, publisher_id in self._configured:
            # compare every configured key, so timing says nothing about which one matched
            if hmac.compare_digest(digest, configured_digest):
                found = Publisher(id=publisher_id, name="configured key")
        if found is not None:
            return found
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > self._clock.monotonic():
            return cached[1]
        stored = await self._store.find_api_key(digest)
        if stored is None or not stored.active:
            self._cache.pop(digest, None)
            return None
        publisher = Publisher(id=stored.id, name=stored.name)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (self._clock.monotonic() + self._cache_seconds, publisher)
        return publisher
