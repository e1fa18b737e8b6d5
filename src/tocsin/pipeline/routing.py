"""The stage that decides each recipient's channels, from the type, the request and the
recipient's preferences.

- Channels the request names are used as named, the inbox (`web`) always with them; without
  names, the type's default channels and whatever the recipient turned on. A channel the
  recipient turned off for the type stays off either way (except for a critical type).
- A type turned off for the recipient (by its row, its category or the global mute) sends
  nothing anywhere: the recipient's notification is `suppressed`, stored with that decision,
  with no seq, no count and no stream event.
- `web` off: not in the inbox (status `suppressed`), while other channels still deliver.
- An outbound channel that this server does not run, or that has no address for the
  recipient, is skipped and says so (`skipped:unavailable`, `skipped:no_address`).

Later stages refine these decisions per recipient (quiet hours hold a channel until a time).
"""

from __future__ import annotations

from collections.abc import Collection

from tocsin.domain.drafts import LIVE_CHANNEL, ChannelDecision, NotificationDraft
from tocsin.domain.preferences import (
    Effective,
    UserPreferences,
    channel_off_by_user,
    effective,
)
from tocsin.domain.types import NotificationType
from tocsin.pipeline.base import Publish


class Routing:
    def __init__(self, outbound: Collection[str]) -> None:
        self._outbound = frozenset(outbound)  # the outbound channels this server runs

    async def __call__(self, publish: Publish) -> None:
        request = publish.request
        kind = publish.kind or NotificationType(name=request.type)
        named = None if request.channels is None else {LIVE_CHANNEL, *request.channels}
        defaults = kind.default_channels()
        for draft in publish.drafts:
            found = publish.recipients.get(draft.user_id)
            prefs = found.prefs if found is not None else UserPreferences()
            rules = effective(kind, prefs)
            if named is None:
                wanted = {name for name, on in defaults.items() if on} | \
                         {name for name, on in rules.channels.items() if on}
            else:
                wanted = named
            self._decide(draft, kind, prefs, rules, sorted(wanted), named is not None,
                         has_email=found is None or bool(found.profile.email))

    def _decide(self, draft: NotificationDraft, kind: NotificationType,
                prefs: UserPreferences, rules: Effective, wanted: list[str], named: bool,
                *, has_email: bool) -> None:
        if not rules.enabled:
            draft.status = "suppressed"
            draft.channels = {name: ChannelDecision.dropped(f"suppressed:{rules.why}")
                              for name in wanted}
            return
        for name in wanted:
            on = not channel_off_by_user(kind, prefs, name) if named else \
                rules.channels.get(name, False)
            if not on:
                draft.channels[name] = ChannelDecision.dropped("suppressed:preference")
            elif name == LIVE_CHANNEL:
                draft.channels[name] = ChannelDecision.live()
            elif name not in self._outbound:
                draft.channels[name] = ChannelDecision.dropped("skipped:unavailable")
            elif name == "email" and not has_email:
                draft.channels[name] = ChannelDecision.dropped("skipped:no_address")
            else:
                draft.channels[name] = ChannelDecision.queued()
        if draft.channels.get(LIVE_CHANNEL, ChannelDecision("")).outcome != "delivered":
            draft.status = "suppressed"  # not in the inbox: no seq, no count, no event
