"""A user's preferences and what they make of a notification type: the effective settings.

Layers, each able only to narrow what the one before allows:

1. the type's defaults (`channels`);
2. the user's global switches: `muted` (nothing but critical types, on any channel) and one
   switch per category;
3. the user's row for the type: `enabled`, and per channel on or off.

A user with no row gets the type's defaults: no row never means "never". A critical type
ignores the layers that would silence it: it is always enabled, on at least its default
channels (a user may add channels to it, never remove one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tocsin.domain.models import UserProfile
from tocsin.domain.quiet_hours import QuietHours
from tocsin.domain.types import PREFERENCE_CHANNELS, NotificationType


@dataclass(frozen=True, slots=True)
class TypePreference:
    """A user's own row for one type: only what they changed (None: not changed)."""

    enabled: bool | None = None
    channels: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserPreferences:
    """Everything a user chose, for every type at once."""

    muted: bool = False
    categories: dict[str, bool] = field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    types: dict[str, TypePreference] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recipient:
    """What the pipeline knows of one recipient: their profile (empty for a user the server
    has never seen) and their preferences."""

    profile: UserProfile
    prefs: UserPreferences


@dataclass(frozen=True, slots=True)
class Effective:
    """The settings that apply to one user and type. `why` names what silenced it
    (`muted`, `category`, `preference`) when `enabled` is false."""

    type: str
    enabled: bool
    channels: dict[str, bool]
    customized: bool
    critical: bool
    why: str | None = None

    def allows(self, channel: str) -> bool:
        return self.enabled and self.channels.get(channel, False)

    def to_json(self, kind: NotificationType) -> dict[str, object]:
        return {"type": self.type, "enabled": self.enabled, "channels": self.channels,
                "customized": self.customized, "critical": self.critical,
                "category": kind.category, "description": kind.description, "why": self.why}


def effective(kind: NotificationType, prefs: UserPreferences) -> Effective:
    own = prefs.types.get(kind.name)
    defaults = kind.default_channels()
    chosen = {name: own.channels.get(name, on) if own else on for name, on in defaults.items()}
    customized = own is not None and (own.enabled is not None or bool(own.channels))
    if kind.critical:
        # Never silenced: the defaults stay on, and a user's additions are kept.
        channels = {name: on or chosen[name] for name, on in defaults.items()}
        return Effective(kind.name, True, channels, customized, critical=True)
    why = None
    if prefs.muted:
        why = "muted"
    elif kind.category is not None and prefs.categories.get(kind.category) is False:
        why = "category"
    elif own is not None and own.enabled is False:
        why = "preference"
    return Effective(kind.name, why is None, chosen, customized, critical=False, why=why)


def channel_off_by_user(kind: NotificationType, prefs: UserPreferences, channel: str) -> bool:
    """The user turned this channel off for this type themselves (as opposed to the type's
    default being off): a publisher naming the channel explicitly cannot override that."""
    if kind.critical or channel not in PREFERENCE_CHANNELS:
        return False
    own = prefs.types.get(kind.name)
    return own is not None and own.channels.get(channel) is False
