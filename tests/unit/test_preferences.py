"""Effective preferences, table-driven: type default, user row, category, mute, critical and
channel. Every row says what the user gets on each channel and, when silenced, why."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tocsin.domain.preferences import (
    TypePreference,
    UserPreferences,
    channel_off_by_user,
    effective,
)
from tocsin.domain.types import NotificationType, Text

WEB_ONLY = {"web": True, "email": False, "push": False}
WEB_EMAIL = {"web": True, "email": True, "push": False}


@dataclass(frozen=True)
class Row:
    critical: bool = False
    defaults: dict[str, bool] = field(default_factory=lambda: dict(WEB_EMAIL))
    muted: bool = False
    category_on: bool | None = None  # the user's switch for the type's category ("social")
    own: TypePreference | None = None
    enabled: bool = True
    channels: dict[str, bool] = field(default_factory=lambda: dict(WEB_EMAIL))
    why: str | None = None
    customized: bool = False


TABLE: dict[str, Row] = {
    "no row: the type's defaults": Row(),
    "no row, web-only type": Row(defaults=dict(WEB_ONLY), channels=dict(WEB_ONLY)),
    "row turns email off": Row(own=TypePreference(channels={"email": False}),
                               channels={"web": True, "email": False, "push": False},
                               customized=True),
    "row turns push on": Row(own=TypePreference(channels={"push": True}),
                             channels={"web": True, "email": True, "push": True},
                             customized=True),
    "row turns web off, email stays": Row(own=TypePreference(channels={"web": False}),
                                          channels={"web": False, "email": True, "push": False},
                                          customized=True),
    "row disables the type": Row(own=TypePreference(enabled=False), enabled=False,
                                 why="preference", customized=True),
    "row enabled explicitly": Row(own=TypePreference(enabled=True), customized=True),
    "category off": Row(category_on=False, enabled=False, why="category"),
    "category on": Row(category_on=True),
    "category off beats a row enabling the type": Row(
        category_on=False, own=TypePreference(enabled=True), enabled=False, why="category",
        customized=True),
    "muted": Row(muted=True, enabled=False, why="muted"),
    "muted beats everything else": Row(muted=True, category_on=False,
                                       own=TypePreference(enabled=False), enabled=False,
                                       why="muted", customized=True),
    "critical: muted does not silence it": Row(critical=True, muted=True),
    "critical: category off does not": Row(critical=True, category_on=False),
    "critical: a row turning it off does not": Row(
        critical=True, own=TypePreference(enabled=False, channels={"email": False}),
        customized=True),
    "critical: a user may add a channel": Row(
        critical=True, own=TypePreference(channels={"push": True}),
        channels={"web": True, "email": True, "push": True}, customized=True),
}


@pytest.mark.parametrize("row", [pytest.param(r, id=name) for name, r in TABLE.items()])
def test_effective_preferences(row: Row) -> None:
    kind = NotificationType(name="comment", category="social", channels=row.defaults,
                            critical=row.critical)
    prefs = UserPreferences(
        muted=row.muted,
        categories={} if row.category_on is None else {"social": row.category_on},
        types={} if row.own is None else {"comment": row.own},
    )
    result = effective(kind, prefs)
    assert (result.enabled, result.why, result.critical, result.customized) == (
        row.enabled, row.why, row.critical, row.customized)
    assert result.channels == row.channels
    for channel, on in row.channels.items():
        assert result.allows(channel) is (row.enabled and on)


def test_another_types_row_changes_nothing() -> None:
    kind = NotificationType(name="comment", channels=WEB_EMAIL)
    prefs = UserPreferences(types={"like": TypePreference(enabled=False)})
    result = effective(kind, prefs)
    assert result.enabled and not result.customized and result.channels == WEB_EMAIL


def test_a_type_without_category_ignores_category_switches() -> None:
    kind = NotificationType(name="system", channels=WEB_ONLY)
    assert effective(kind, UserPreferences(categories={"social": False})).enabled


@pytest.mark.parametrize(("own", "critical", "channel", "off"), [
    (TypePreference(channels={"email": False}), False, "email", True),
    (TypePreference(channels={"email": True}), False, "email", False),
    (None, False, "email", False),  # the type's default may be off; the user said nothing
    (TypePreference(channels={"email": False}), True, "email", False),  # critical
    (TypePreference(channels={"email": False}), False, "pigeon", False),
])
def test_what_the_user_turned_off_themselves(own: TypePreference | None, critical: bool,
                                             channel: str, off: bool) -> None:
    kind = NotificationType(name="comment", channels=WEB_ONLY, critical=critical)
    prefs = UserPreferences(types={} if own is None else {"comment": own})
    assert channel_off_by_user(kind, prefs, channel) is off


@pytest.mark.parametrize(("locale", "title", "message"), [
    ("fr-CA", "Commentaire (CA)", "Nouveau"),  # fr-CA gives a title; the message from fr
    ("fr-ca", "Commentaire (CA)", "Nouveau"),
    ("fr-FR", "Commentaire", "Nouveau"),  # no fr-FR: fr
    ("fr", "Commentaire", "Nouveau"),
    ("de", "Comment", "New"),  # no de: the default
    (None, "Comment", "New"),
    ("", "Comment", "New"),
])
def test_texts_fall_back_from_region_to_language_to_default(locale: str | None, title: str,
                                                             message: str) -> None:
    kind = NotificationType(name="comment", title="Comment", message="New", locales={
        "fr": Text(title="Commentaire", message="Nouveau"),
        "fr-ca": Text(title="Commentaire (CA)"),
    })
    assert kind.text_for(locale) == Text(title, message)
