"""A type's definition as an operator writes it, in `tocsin.toml` (`[types.comment]`) or in
`PUT /v1/types/{type}`: one shape for both, checked the same way, templates compiled before
anything is kept."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from tocsin.domain.rates import MAX_LIMIT, MAX_PER_SECONDS, Rate
from tocsin.domain.types import GroupRule, NotificationType, Text
from tocsin.templating import MAX_SOURCE, compile_template

#: A type's name: what publishers send as `type`.
TYPE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
TYPE_NAME_MAX = 128
LOCALE_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
MAX_LOCALES = 64

Template = Annotated[str, StringConstraints(max_length=MAX_SOURCE)]
Locale = Annotated[str, StringConstraints(max_length=35, pattern=LOCALE_PATTERN)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class LocaleText(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Template | None = None
    message: Template | None = None


class RateLimit(BaseModel):
    """At most `limit` emails and pushes of the type per user in any `per_seconds`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: StrictInt = Field(ge=1, le=MAX_LIMIT)
    per_seconds: float = Field(gt=0, le=MAX_PER_SECONDS, strict=True,
                               description="the window, at most 30 days")


class Group(BaseModel):
    """Collapse notifications with the same rendered `key` into one item per user, for
    `window_seconds` from the group's first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    window_seconds: StrictInt = Field(ge=1, le=30 * 24 * 3600)
    title: Template
    message: Template | None = None


class TypeDefinition(BaseModel):
    """Everything a type says; every field may be left out."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{
        "title": "{{ actor }} commented on {{ post_title | default('your post') }}",
        "message": "{{ excerpt }}",
        "action_url": "/posts/{{ post_id }}#comment-{{ comment_id }}",
        "locales": {"fr": {"title": "{{ actor }} a commenté {{ post_title }}"}},
        "category": "social",
        "channels": {"web": True, "email": True, "push": False},
        "critical": False,
        "description": "Comments on your posts",
        "rate_limit": {"limit": 10, "per_seconds": 3600},
        "group": {"key": "{{ post_id }}", "window_seconds": 3600,
                  "title": "{{ actors[0] }}{% if count > 1 %} and {{ count - 1 }} "
                           "other{{ 's' if count > 2 }}{% endif %} commented on your post"},
    }]})

    title: Template | None = None
    message: Template | None = None
    action_url: Template | None = None
    locales: dict[Locale, LocaleText] = Field(default_factory=dict, max_length=MAX_LOCALES)
    category: Category | None = None
    channels: dict[Literal["web", "email", "push"], StrictBool] = Field(default_factory=dict)
    critical: StrictBool = False
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    rate_limit: RateLimit | None = None
    group: Group | None = None

    def to_type(self, name: str) -> NotificationType:
        """The type, once every template compiles (else `TemplateError` naming the field)."""
        for field, source in self._templates():
            compile_template(source, field)
        channels: dict[str, bool] = {"web": True, "email": False, "push": False}
        channels.update(self.channels.items())
        return NotificationType(
            name=name, title=self.title, message=self.message, action_url=self.action_url,
            locales={code.lower(): Text(text.title, text.message)
                     for code, text in self.locales.items()},
            category=self.category, channels=channels, critical=self.critical,
            description=self.description,
            rate_limit=Rate(self.rate_limit.limit, self.rate_limit.per_seconds)
            if self.rate_limit is not None else None,
            group=GroupRule(self.group.key, self.group.window_seconds, self.group.title,
                            self.group.message) if self.group is not None else None,
        )

    def _templates(self) -> list[tuple[str, str]]:
        found = [(name, value) for name, value in
                 (("title", self.title), ("message", self.message),
                  ("action_url", self.action_url)) if value is not None]
        for code, text in self.locales.items():
            found += [(f"locales.{code}.{name}", value) for name, value in
                      (("title", text.title), ("message", text.message)) if value is not None]
        if self.group is not None:
            found += [(f"group.{name}", value) for name, value in
                      (("key", self.group.key), ("title", self.group.title),
                       ("message", self.group.message)) if value is not None]
        return found


def definition_of(kind: NotificationType) -> dict[str, Any]:
    """The stored form of a type: its JSON without the name."""
    body = kind.to_json()
    del body["type"]
    return body


def type_of(name: str, definition: dict[str, Any]) -> NotificationType:
    """A type from its stored form (checked when it was stored)."""
    return TypeDefinition.model_validate(definition).to_type(name)

