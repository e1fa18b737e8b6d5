"""Notification types: what a kind of notification says by default and where it goes.

A type gives the templates of its text (and their translations), a category the user can turn
off at once, its default channels, whether it is critical (security, payment: the user cannot
turn it off, quiet hours do not hold it back, rate limits do not throttle it), how many of its
emails and pushes one user may get in a window (`rate_limit`) and a description shown in the
preferences panel. Types come from three places, the later winning: the built-in defaults,
`tocsin.toml`, and the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tocsin.domain.rates import Rate

#: The channels a preference or a type may name (whether or not this server configures them).
PREFERENCE_CHANNELS = ("web", "email", "push")


@dataclass(frozen=True, slots=True)
class Text:
    """Templates of a notification's text; None leaves the field to the publisher."""

    title: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class GroupRule:
    """How notifications of a type collapse into one item per user: those whose `key`
    renders the same within `window_seconds` of the group's first become one item, whose
    `title` (and `message`) templates see `count`, `actors` and the latest data."""

    key: str
    window_seconds: int
    title: str
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "window_seconds": self.window_seconds, "title": self.title,
                "message": self.message}


#: How many distinct actors a group keeps (newest first).
MAX_ACTORS = 10


def merged_actors(actors: list[str] | None, actor: str | None) -> list[str]:
    """A group's distinct actors once `actor` joined: newest first, at most `MAX_ACTORS`."""
    known = list(actors or [])
    if actor is None:
        return known[:MAX_ACTORS]
    return [actor, *[name for name in known if name != actor]][:MAX_ACTORS]


@dataclass(frozen=True, slots=True)
class NotificationType:
    name: str
    title: str | None = None
    message: str | None = None
    action_url: str | None = None
    locales: dict[str, Text] = field(default_factory=dict)
    category: str | None = None
    channels: dict[str, bool] = field(
        default_factory=lambda: {"web": True, "email": False, "push": False})
    critical: bool = False
    description: str | None = None
    #: At most this many outbound deliveries (email, push) per user in the window; the rest
    #: are throttled (the inbox still gets every one). None: no limit.
    rate_limit: Rate | None = None
    group: GroupRule | None = None

    def text_for(self, locale: str | None) -> Text:
        """The templates for `locale`, field by field: `fr-CA`'s, else `fr`'s, else the
        default (a translation may give only some fields)."""
        title, message = None, None
        for candidate in _fallbacks(locale):
            found = self.locales.get(candidate)
            if found is not None:
                title = title if title is not None else found.title
                message = message if message is not None else found.message
        return Text(title if title is not None else self.title,
                    message if message is not None else self.message)

    def default_channels(self) -> dict[str, bool]:
        return {name: bool(self.channels.get(name, False)) for name in PREFERENCE_CHANNELS}

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.name, "title": self.title, "message": self.message,
            "action_url": self.action_url,
            "locales": {code: {"title": text.title, "message": text.message}
                        for code, text in sorted(self.locales.items())},
            "category": self.category, "channels": self.default_channels(),
            "critical": self.critical, "description": self.description,
            "rate_limit": self.rate_limit.to_json() if self.rate_limit is not None else None,
            "group": self.group.to_json() if self.group is not None else None,
        }


def _fallbacks(locale: str | None) -> list[str]:
    """`fr-CA` → [`fr-ca`, `fr`]: locales compared without case."""
    if not locale:
        return []
    parts = locale.lower().split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
