"""The types a fresh server knows: the eight of the original design, with templates that read
what a publisher usually sends in `data` and fall back to plain words when it is missing, so
`{"user_id", "type": "comment", "data": {"actor": "Alice"}}` is a complete notification.

An operator changes or removes any of them in `tocsin.toml` or through `PUT/DELETE
/v1/types/{type}`."""

from __future__ import annotations

from tocsin.catalog.definition import LocaleText, TypeDefinition
from tocsin.domain.types import NotificationType

_ACTOR = "{{ actor | default('Someone') }}"


def _fr(title: str) -> dict[str, LocaleText]:
    return {"fr": LocaleText(title=title)}


_BUILTIN: dict[str, TypeDefinition] = {
    "comment": TypeDefinition(
        title=f"{_ACTOR} commented on {{{{ target | default('your post') }}}}",
        message="{{ excerpt | default('') }}",
        category="social", description="Comments on your posts",
        locales=_fr("{{ actor | default('Quelqu\u2019un') }} a commenté "
                                  "{{ target | default('votre publication') }}"),
    ),
    "mention": TypeDefinition(
        title=f"{_ACTOR} mentioned you",
        message="{{ excerpt | default('') }}",
        category="social", description="When someone mentions you",
        locales=_fr("{{ actor | default('Quelqu\u2019un') }} vous a mentionné"),
    ),
    "like": TypeDefinition(
        title=f"{_ACTOR} liked {{{{ target | default('your post') }}}}",
        category="social", description="Likes on your posts",
        locales=_fr("{{ actor | default('Quelqu\u2019un') }} a aimé "
                                  "{{ target | default('votre publication') }}"),
    ),
    "follow": TypeDefinition(
        title=f"{_ACTOR} started following you",
        category="social", description="New followers",
        locales=_fr("{{ actor | default('Quelqu\u2019un') }} vous suit"),
    ),
    "message": TypeDefinition(
        title=f"New message from {_ACTOR}",
        message="{{ excerpt | default('') }}",
        category="messages", channels={"web": True, "email": True},
        description="Direct messages",
        locales=_fr("Nouveau message de {{ actor | default('quelqu\u2019un') }}"),
    ),
    "system": TypeDefinition(
        title="{{ subject | default('A message from the team') }}",
        message="{{ body | default('') }}",
        category="account", critical=True, channels={"web": True, "email": True},
        description="Security and account notices (always on)",
    ),
    "order": TypeDefinition(
        title="Order{% if order_id is defined %} {{ order_id }}{% endif %} "
              "{{ status | default('updated') }}",
        message="{{ details | default('') }}",
        category="billing", channels={"web": True, "email": True},
        description="Updates on your orders",
    ),
    "payment": TypeDefinition(
        title="Payment {{ status | default('received') }}"
              "{% if amount is defined %}: {{ amount }}{% endif %}",
        message="{{ details | default('') }}",
        category="billing", critical=True, channels={"web": True, "email": True},
        description="Payments and receipts (always on)",
    ),
}


def builtin_types() -> dict[str, NotificationType]:
    return {name: definition.to_type(name) for name, definition in _BUILTIN.items()}
