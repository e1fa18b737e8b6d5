"""The stage that holds a notification until its `send_at`.

A recipient whose notification would enter the inbox is `scheduled`: stored without a seq,
not listed, not counted, not streamed, and released by the worker at `send_at` (it then takes
its seq and reaches every stream, as if published then). Every outbound delivery, whether or
not the inbox gets the notification, is due at `send_at` at the earliest. The stages before
decided as of now (preferences) or as of `send_at` (quiet hours, which read `sends_at`).
"""

from __future__ import annotations

from dataclasses import replace

from tocsin.pipeline.base import Publish


class Scheduling:
    async def __call__(self, publish: Publish) -> None:
        send_at = publish.request.send_at
        if send_at is None:
            return
        for draft in publish.drafts:
            if draft.status == "created":
                draft.status = "scheduled"
            for name, decision in draft.channels.items():
                if decision.enqueues and (decision.due_at is None or decision.due_at < send_at):
                    draft.channels[name] = replace(decision, due_at=send_at)
