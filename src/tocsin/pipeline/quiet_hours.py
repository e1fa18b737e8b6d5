"""The stage that holds outbound deliveries back during the recipient's quiet hours.

Inside a recipient's window, each queued email or push is held until the window ends (its job
is due then, once) and the notification is marked `quiet`, so clients may show it without a
sound; the inbox and the streams still get it at once. Critical types are never held. A held
delivery whose notification is read before it falls due is skipped then (`skipped:read`).
"""

from __future__ import annotations

from tocsin.domain.drafts import ChannelDecision
from tocsin.pipeline.base import Publish

HELD = "quiet_hours"


class QuietHoursStage:
    async def __call__(self, publish: Publish) -> None:
        if publish.kind is not None and publish.kind.critical:
            return
        for draft in publish.drafts:
            found = publish.recipients.get(draft.user_id)
            window = found.prefs.quiet_hours if found is not None else None
            if window is None or (draft.status == "suppressed" and not any(
                    decision.enqueues for decision in draft.channels.values())):
                continue
            until = window.quiet_until(publish.now)
            if until is None:
                continue
            draft.quiet = True
            for name, decision in draft.channels.items():
                if decision.enqueues:
                    draft.channels[name] = ChannelDecision.held(HELD, until)
