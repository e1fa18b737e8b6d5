"""The outbound channels this server knows, and which of them its settings configure.

A channel is a name, the address it needs of a user, and a way to build it from the settings
(or not, when they do not configure it). Adding a provider adds a module and one entry here;
nothing else in the code names channels. Each channel's module is imported only when built,
so a command that sends nothing does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tocsin.channels.base import Channel
from tocsin.domain.drafts import LIVE_CHANNEL
from tocsin.settings import Settings


@dataclass(frozen=True, slots=True)
class ChannelKind:
    name: str
    #: What the channel needs of a user to reach them: a profile field, or their devices.
    address: str
    #: The channel, or None when these settings do not configure it.
    build: Callable[[Settings], Channel | None]


def _email(settings: Settings) -> Channel | None:
    if not settings.smtp_url:
        return None
    from tocsin.channels.email import EmailChannel
    from tocsin.smtp import SmtpSettings

    return EmailChannel(SmtpSettings(settings.smtp_url, settings.smtp_from),
                        concurrency=settings.smtp_concurrency, public_url=settings.public_url)


KINDS: tuple[ChannelKind, ...] = (
    ChannelKind(name="email", address="email", build=_email),
)


def known() -> list[str]:
    """Every channel a publish may name: the live one and every outbound kind."""
    return [LIVE_CHANNEL, *(kind.name for kind in KINDS)]


def configured(settings: Settings) -> dict[str, Channel]:
    """The outbound channels these settings configure, by name."""
    built = {kind.name: kind.build(settings) for kind in KINDS}
    return {name: channel for name, channel in built.items() if channel is not None}
