"""The stage that gives each recipient's draft its group, for types that group.

The group key is the type's `group.key` template rendered with the data (and `user`), once
per batch unless it reads `user`. The group's text cannot be rendered here: it depends on
how many notifications the group holds, which only the store knows, under the user's lock.
So the draft carries a renderer of its text, which the store calls inside the transaction
(a template error there refuses the publish, and nothing is stored).

Scheduled notifications are not grouped: they enter the inbox later, on their own.
"""

from __future__ import annotations

from typing import Any

from tocsin.domain.drafts import NotificationDraft
from tocsin.domain.types import GroupRule
from tocsin.pipeline.base import Publish
from tocsin.pipeline.texts import MAX_MESSAGE, MAX_TITLE
from tocsin.templating import TemplateError, render, variables

MAX_KEY = 255


class Grouping:
    async def __call__(self, publish: Publish) -> None:
        kind = publish.kind
        if kind is None or kind.group is None or publish.request.send_at is not None:
            return
        rule = kind.group
        shared: str | None = None
        per_user = "user" in variables(rule.key)
        for draft in publish.drafts:
            if draft.status != "created":
                continue
            if shared is None or per_user:
                profile = publish.recipients[draft.user_id].profile
                key = render(rule.key, "group.key", {
                    **publish.request.data,
                    "user": {"id": profile.id, "name": profile.name, "locale": profile.locale}})
                if not key:
                    raise TemplateError("group.key: the key renders empty; every notification "
                                        "of a group needs the same non-empty key",
                                        details={"field": "group.key"})
                if len(key) > MAX_KEY:
                    raise TemplateError(f"group.key: the key is {len(key)} characters long; "
                                        f"the limit is {MAX_KEY}", details={"field": "group.key"})
                shared = key
            draft.group_key = shared
            _group(draft, rule, publish.request.data)


def _group(draft: NotificationDraft, rule: GroupRule, data: dict[str, Any]) -> None:
    actor = data.get("actor")
    draft.actor = str(actor)[:255] if isinstance(actor, str | int) else None
    draft.group_window = rule.window_seconds

    def text(count: int, actors: list[str], latest: dict[str, Any]
             ) -> tuple[str | None, str | None]:
        context = {**latest, "count": count, "actors": actors}
        title = render(rule.title, "group.title", context)[:MAX_TITLE]
        message = (render(rule.message, "group.message", context)[:MAX_MESSAGE]
                   if rule.message is not None else None)
        return title or None, message or None

    draft.group_text = text
