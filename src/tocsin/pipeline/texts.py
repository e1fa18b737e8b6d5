"""The stage that gives each recipient their text: the type's templates in the recipient's
locale, rendered with the notification's `data` and `user` (the recipient's id, name and
locale). What the publisher sent explicitly wins over a template.

A rendering that reads nothing of `user` is the same for every recipient of one locale, so
it is made once per locale, not once per recipient. Every failure refuses the whole publish
with a 422 naming the field and the reason; nothing is stored.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tocsin.catalog.catalog import TypeCatalog
from tocsin.domain.errors import InvalidInput
from tocsin.domain.models import UserProfile
from tocsin.domain.urls import allowed_link
from tocsin.pipeline.base import Publish
from tocsin.templating import TemplateError, render, variables

#: The longest rendered fields, as for fields a publisher sends.
MAX_TITLE, MAX_MESSAGE, MAX_ACTION_URL = 500, 5000, 2048


class Texts:
    def __init__(self, catalog: TypeCatalog, *, action_url_hosts: Collection[str]) -> None:
        self._catalog = catalog
        self._hosts = tuple(action_url_hosts)

    async def __call__(self, publish: Publish) -> None:
        request = publish.request
        kind = await self._catalog.get(request.type)
        publish.kind = kind
        if kind is None:
            if request.title is None:
                raise InvalidInput(
                    f"type {request.type!r} is not defined on this server, so there is no "
                    f"template for its title: send a title, or define the type "
                    f"(PUT /v1/types/{request.type})",
                    details={"field": "title", "type": request.type})
            return
        if request.title is None and kind.title is None and kind.group is None and not any(
                text.title for text in kind.locales.values()):
            raise InvalidInput(f"type {kind.name!r} has no title template: send a title",
                               details={"field": "title", "type": kind.name})
        shared: dict[tuple[str, str], str] = {}  # (field, source) -> rendering for everyone
        for draft in publish.drafts:
            profile = publish.recipients[draft.user_id].profile
            text = kind.text_for(profile.locale)
            context: dict[str, Any] | None = None
            for field, explicit, source, limit in (
                    ("title", request.title, text.title, MAX_TITLE),
                    ("message", request.message, text.message, MAX_MESSAGE),
                    ("action_url", request.action_url, kind.action_url, MAX_ACTION_URL)):
                if explicit is not None or source is None:
                    continue
                key = (field, source)
                rendered = shared.get(key)
                if rendered is None:
                    if context is None:
                        context = _context(request.data, profile)
                    rendered = self._render(field, source, context, limit)
                    if "user" not in variables(source):
                        shared[key] = rendered
                setattr(draft, field, rendered or None)

    def _render(self, field: str, source: str, context: dict[str, Any], limit: int) -> str:
        rendered = render(source, field, context)
        if len(rendered) > limit:
            raise TemplateError(f"{field}: the rendering is {len(rendered)} characters long; "
                                f"the limit is {limit}", details={"field": field})
        if field == "action_url":
            try:
                allowed_link(rendered, self._hosts)
            except ValueError as exc:
                raise TemplateError(f"action_url: the rendered link {rendered[:200]!r} {exc}",
                                    details={"field": field, "reason": "link"}) from None
        return rendered


def _context(data: dict[str, Any], profile: UserProfile) -> dict[str, Any]:
    return {**data, "user": {"id": profile.id, "name": profile.name, "locale": profile.locale}}
