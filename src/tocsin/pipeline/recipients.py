"""The stage that looks the recipients up: profile (locale, name, address, time zone) and
preferences for the type being published, for every recipient of the batch in a bounded
number of statements."""

from __future__ import annotations

from tocsin.pipeline.base import Publish
from tocsin.store.base import Store


class Recipients:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def __call__(self, publish: Publish) -> None:
        publish.recipients = await self._store.recipients(publish.request.user_ids,
                                                          publish.request.type)
        for draft in publish.drafts:
            draft.locale = publish.recipients[draft.user_id].profile.locale
