"""Preferences and quiet hours, for a user (`/v1/me/…`, the token's user) and for the
publisher on behalf of any user (`/v1/users/{user_id}/…`): the same routes, the same answers.

Every answer is the *effective* setting: the type's defaults with the user's choices merged,
so a client shows what will happen, not what happens to be stored."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tocsin.api.deps import PublisherDep, ServicesDep, UserDep
from tocsin.api.openapi import AUTHENTICATED, WITH_BODY, errors
from tocsin.api.schemas import (
    PreferencesBody,
    PreferencesOut,
    QuietHoursBody,
    QuietHoursOut,
    TypePreferenceBody,
    TypePreferenceOut,
)
from tocsin.api.types import TypePath
from tocsin.api.users import UserIdPath
from tocsin.domain.errors import InvalidInput, NotFound
from tocsin.domain.preferences import UserPreferences, effective
from tocsin.domain.quiet_hours import QuietHours, QuietHoursError
from tocsin.domain.types import NotificationType
from tocsin.services import Services

me = APIRouter(prefix="/v1/me", tags=["user"], responses=errors(*AUTHENTICATED))
users = APIRouter(prefix="/v1/users/{user_id}", tags=["publisher"],
                  responses=errors(*AUTHENTICATED))


# -- what every route does, whoever the user is -----------------------------------------------

async def _document(svc: Services, user_id: str) -> PreferencesOut:
    prefs = await svc.store.preferences_of(user_id)
    return PreferencesOut(
        muted=prefs.muted, categories=prefs.categories,
        quiet_hours=None if prefs.quiet_hours is None else
        QuietHoursOut(**prefs.quiet_hours.to_json()),
        types=[_entry(kind, prefs) for kind, _ in await svc.catalog.all()])


def _entry(kind: NotificationType, prefs: UserPreferences) -> TypePreferenceOut:
    return TypePreferenceOut(**effective(kind, prefs).to_json(kind))


async def _known(svc: Services, type_: str) -> NotificationType:
    kind = await svc.catalog.get(type_)
    if kind is None:
        raise NotFound(f"no type {type_!r}")
    return kind


async def _put_type(svc: Services, user_id: str, type_: str, body: TypePreferenceBody
                    ) -> TypePreferenceOut:
    kind = await _known(svc, type_)
    channels: dict[str, bool] = dict(body.channels.items()) if body.channels else {}
    if kind.critical:
        defaults = kind.default_channels()
        refused = sorted(name for name, on in channels.items() if not on and defaults[name])
        if body.enabled is False or refused:
            what = "turned off" if body.enabled is False else \
                f"have its {', '.join(refused)} channel(s) turned off"
            raise InvalidInput(f"type {type_!r} is critical and cannot be {what}",
                               details={"type": type_, "critical": True})
    await svc.store.put_type_preference(user_id, type_, body.enabled, channels,
                                        svc.clock.now())
    await svc.recipients.changed(user_id)
    return _entry(kind, await svc.store.preferences_of(user_id))


async def _reset_type(svc: Services, user_id: str, type_: str) -> TypePreferenceOut:
    kind = await _known(svc, type_)
    await svc.store.clear_type_preference(user_id, type_)
    await svc.recipients.changed(user_id)
    return _entry(kind, await svc.store.preferences_of(user_id))


async def _put_settings(svc: Services, user_id: str, body: PreferencesBody) -> PreferencesOut:
    await svc.store.put_user_settings(user_id, svc.clock.now(), muted=body.muted,
                                      categories=body.categories)
    await svc.recipients.changed(user_id)
    return await _document(svc, user_id)


async def _put_quiet_hours(svc: Services, user_id: str, body: QuietHoursBody) -> QuietHoursOut:
    timezone = body.timezone
    if timezone is None:
        timezone = await _profile_timezone(svc, user_id)
    try:
        window = QuietHours.parse(body.start, body.end, timezone, body.days)
    except QuietHoursError as exc:
        raise InvalidInput(str(exc), details={"field": str(exc).split(":", 1)[0]}) from None
    await svc.store.put_user_settings(user_id, svc.clock.now(), quiet_hours=window)
    await svc.recipients.changed(user_id)
    return QuietHoursOut(**window.to_json())


async def _profile_timezone(svc: Services, user_id: str) -> str:
    try:
        zone = (await svc.store.get_user(user_id)).timezone
    except NotFound:
        zone = None
    if zone is None:
        raise InvalidInput("timezone: give one, or set the user's profile timezone "
                           "(PUT /v1/users/{user_id})", details={"field": "timezone"})
    return zone


async def _get_quiet_hours(svc: Services, user_id: str) -> QuietHoursOut:
    window = (await svc.store.preferences_of(user_id)).quiet_hours
    if window is None:
        raise NotFound("no quiet hours set")
    return QuietHoursOut(**window.to_json())


async def _clear_quiet_hours(svc: Services, user_id: str) -> Response:
    await svc.store.put_user_settings(user_id, svc.clock.now(), clear_quiet_hours=True)
    await svc.recipients.changed(user_id)
    return Response(status_code=204)


# -- /v1/me: the token's user -----------------------------------------------------------------

@me.get("/preferences", response_model=PreferencesOut, summary="My effective preferences")
async def my_preferences(svc: ServicesDep, user: UserDep) -> PreferencesOut:
    """Every known type with the defaults merged, `customized` where I changed it."""
    return await _document(svc, user)


@me.put("/preferences", response_model=PreferencesOut, summary="Mute, or switch categories",
        responses=errors(*WITH_BODY))
async def put_my_settings(body: PreferencesBody, svc: ServicesDep, user: UserDep
                          ) -> PreferencesOut:
    return await _put_settings(svc, user, body)


@me.put("/preferences/{type}", response_model=TypePreferenceOut,
        summary="Change one type", responses=errors(*WITH_BODY, 404))
async def put_my_type(type: TypePath, body: TypePreferenceBody, svc: ServicesDep,
                      user: UserDep) -> TypePreferenceOut:
    return await _put_type(svc, user, type, body)


@me.delete("/preferences/{type}", response_model=TypePreferenceOut,
           summary="Back to the type's defaults", responses=errors(404, 422))
async def reset_my_type(type: TypePath, svc: ServicesDep, user: UserDep) -> TypePreferenceOut:
    return await _reset_type(svc, user, type)


@me.get("/quiet-hours", response_model=QuietHoursOut, summary="My quiet hours",
        responses=errors(404))
async def my_quiet_hours(svc: ServicesDep, user: UserDep) -> QuietHoursOut:
    return await _get_quiet_hours(svc, user)


@me.put("/quiet-hours", response_model=QuietHoursOut, summary="Set my quiet hours",
        responses=errors(*WITH_BODY))
async def put_my_quiet_hours(body: QuietHoursBody, svc: ServicesDep, user: UserDep
                             ) -> QuietHoursOut:
    """During the window, email and push wait for its end; the inbox still gets everything."""
    return await _put_quiet_hours(svc, user, body)


@me.delete("/quiet-hours", status_code=204, response_class=Response,
           summary="Clear my quiet hours")
async def clear_my_quiet_hours(svc: ServicesDep, user: UserDep) -> Response:
    return await _clear_quiet_hours(svc, user)


# -- /v1/users/{user_id}: the publisher, for any user -----------------------------------------

@users.get("/preferences", response_model=PreferencesOut,
           summary="A user's effective preferences", responses=errors(422))
async def user_preferences(user_id: UserIdPath, svc: ServicesDep, who: PublisherDep
                           ) -> PreferencesOut:
    return await _document(svc, user_id)


@users.put("/preferences", response_model=PreferencesOut,
           summary="Mute a user, or switch their categories", responses=errors(*WITH_BODY))
async def put_user_settings(user_id: UserIdPath, body: PreferencesBody, svc: ServicesDep,
                            who: PublisherDep) -> PreferencesOut:
    return await _put_settings(svc, user_id, body)


@users.put("/preferences/{type}", response_model=TypePreferenceOut,
           summary="Change one type for a user", responses=errors(*WITH_BODY, 404))
async def put_user_type(user_id: UserIdPath, type: TypePath, body: TypePreferenceBody,
                        svc: ServicesDep, who: PublisherDep) -> TypePreferenceOut:
    return await _put_type(svc, user_id, type, body)


@users.delete("/preferences/{type}", response_model=TypePreferenceOut,
              summary="A user's type back to its defaults", responses=errors(404, 422))
async def reset_user_type(user_id: UserIdPath, type: TypePath, svc: ServicesDep,
                          who: PublisherDep) -> TypePreferenceOut:
    return await _reset_type(svc, user_id, type)


@users.get("/quiet-hours", response_model=QuietHoursOut, summary="A user's quiet hours",
           responses=errors(404, 422))
async def user_quiet_hours(user_id: UserIdPath, svc: ServicesDep, who: PublisherDep
                           ) -> QuietHoursOut:
    return await _get_quiet_hours(svc, user_id)


@users.put("/quiet-hours", response_model=QuietHoursOut, summary="Set a user's quiet hours",
           responses=errors(*WITH_BODY))
async def put_user_quiet_hours(user_id: UserIdPath, body: QuietHoursBody, svc: ServicesDep,
                               who: PublisherDep) -> QuietHoursOut:
    return await _put_quiet_hours(svc, user_id, body)


@users.delete("/quiet-hours", status_code=204, response_class=Response,
              summary="Clear a user's quiet hours", responses=errors(422))
async def clear_user_quiet_hours(user_id: UserIdPath, svc: ServicesDep, who: PublisherDep
                                 ) -> Response:
    return await _clear_quiet_hours(svc, user_id)
