"""PUT/GET /v1/users/{user_id}: profiles, used by outbound channels (email, locale, zone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from tocsin.api.deps import PublisherDep, ServicesDep
from tocsin.api.openapi import AUTHENTICATED, WITH_BODY, errors
from tocsin.api.schemas import UserBody, UserResponse
from tocsin.domain.identifiers import USER_ID_MAX_LENGTH, USER_ID_PATTERN
from tocsin.domain.models import UserProfile

router = APIRouter(tags=["publisher"])

UserIdPath = Annotated[str, Path(min_length=1, max_length=USER_ID_MAX_LENGTH,
                                 pattern=USER_ID_PATTERN)]


@router.put("/v1/users/{user_id}", response_model=UserResponse, summary="Create or update a user",
            responses=errors(*AUTHENTICATED, *WITH_BODY))
async def put_user(user_id: UserIdPath, body: UserBody, svc: ServicesDep,
                   who: PublisherDep) -> UserResponse:
    profile = UserProfile(id=user_id, email=body.email, name=body.name, locale=body.locale,
                          timezone=body.timezone)
    await svc.store.put_user(profile, svc.clock.now())
    await svc.recipients.changed(user_id)  # its address, locale and zone shape publishes
    return UserResponse(**profile.to_json())


@router.get("/v1/users/{user_id}", response_model=UserResponse, summary="Read a user's profile",
            responses=errors(*AUTHENTICATED, 404, 422))
async def get_user(user_id: UserIdPath, svc: ServicesDep, who: PublisherDep) -> UserResponse:
    return UserResponse(**(await svc.store.get_user(user_id)).to_json())
