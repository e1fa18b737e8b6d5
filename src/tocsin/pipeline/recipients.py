"""The stage that looks the recipients up, and the directory it reads them from.

A publish needs each recipient's profile (locale, name, address) and preferences for the type
it publishes. Reading them is one statement per 500 recipients, but on the single-publish
path it was most of what the policy stages cost (measured: about 0.8 ms of CPU a publish on
SQLite), so each process keeps what it read in a `RecipientDirectory`:

- an entry lives at most `ttl_seconds`, and the directory holds at most `max_entries`;
- every write that changes what a publish would read (a preference, the user's switches or
  quiet hours, the profile) goes through `changed(user_id)`, which forgets the user here and
  signals every other node over the bus (topic `recipients`), so a change applies everywhere
  within the bus's delay; a node that may have missed signals (it reconnected) forgets all;
- a read that raced a change is used once but not kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from tocsin.bus.base import Bus
from tocsin.clock import Clock
from tocsin.domain.preferences import Recipient
from tocsin.pipeline.base import Publish
from tocsin.store.base import Store

TOPIC = "recipients"


class RecipientDirectory:
    def __init__(self, store: Store, bus: Bus, clock: Clock, *, ttl_seconds: float = 30.0,
                 max_entries: int = 50_000) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[tuple[str, str], tuple[float, Recipient]] = {}
        self._types_of: dict[str, set[str]] = {}  # user -> the types cached for them
        self._generation = 0  # bumped by every forget: a read older than it is not kept
        bus.listen(TOPIC, self._forget)

    async def get_many(self, user_ids: Sequence[str], type_: str) -> dict[str, Recipient]:
        now = self._clock.monotonic()
        found: dict[str, Recipient] = {}
        missing: list[str] = []
        for user_id in user_ids:
            entry = self._entries.get((user_id, type_))
            if entry is not None and now - entry[0] < self._ttl:
                found[user_id] = entry[1]
            else:
                missing.append(user_id)
        if missing:
            generation = self._generation
            loaded = await self._store.recipients(missing, type_)
            if generation == self._generation and self._ttl > 0:
                for user_id, recipient in loaded.items():
                    self._keep(user_id, type_, now, recipient)
            found.update(loaded)
        return found

    async def changed(self, user_id: str) -> None:
        """What a publish reads of `user_id` changed: forget it here and on every node."""
        self._forget(user_id)
        await self._bus.signal(TOPIC, user_id)

    def _keep(self, user_id: str, type_: str, now: float, recipient: Recipient) -> None:
        if len(self._entries) >= self._max:
            # Drop the oldest half (dicts keep insertion order): cheaper than an LRU per hit.
            for key in list(self._entries)[: self._max // 2]:
                del self._entries[key]
                self._types_of.get(key[0], set()).discard(key[1])
        self._entries[(user_id, type_)] = (now, recipient)
        self._types_of.setdefault(user_id, set()).add(type_)

    def _forget(self, subject: str | None) -> None:
        self._generation += 1
        if not subject:  # None: signals may have been missed; "": everything changed
            self._entries.clear()
            self._types_of.clear()
            return
        for type_ in self._types_of.pop(subject, set()):
            self._entries.pop((subject, type_), None)


class Recipients:
    def __init__(self, directory: RecipientDirectory) -> None:
        self._directory = directory

    async def __call__(self, publish: Publish) -> None:
        publish.recipients = await self._directory.get_many(publish.request.user_ids,
                                                            publish.request.type)
        for draft in publish.drafts:
            draft.locale = publish.recipients[draft.user_id].profile.locale
