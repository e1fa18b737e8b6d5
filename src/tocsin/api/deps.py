"""Dependencies: the wired services, the authenticated publisher, the authenticated user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tocsin.auth.keys import Publisher
from tocsin.domain.errors import RateLimited, Unauthorized
from tocsin.services import Services, services_of


async def services(request: Request) -> Services:  # async: no threadpool hop per request
    return services_of(request.app)


ServicesDep = Annotated[Services, Depends(services)]

_api_key = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                      description="Publisher API key: `Authorization: Bearer tsk_…`")
_user_token = HTTPBearer(auto_error=False, scheme_name="UserToken", bearerFormat="JWT",
                         description="End-user JWT (`sub` = user id), from POST /v1/tokens")


async def publisher(
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key)],
) -> Publisher:
    if credentials is None:
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    found = await svc.keys.verify(credentials.credentials)
    if found is None:
        raise Unauthorized("the API key is not valid")
    return found


async def publisher_within_rate(svc: ServicesDep, who: Annotated[Publisher, Depends(publisher)]
                                ) -> Publisher:
    """The publisher, once its request fits TOCSIN_PUBLISHER_RATE: checked before the body
    is looked at, so a flood of requests, valid or not, costs one count each and no more."""
    await count_publisher_request(svc, who)
    return who


async def count_publisher_request(svc: Services, who: Publisher) -> None:
    """Count one request against TOCSIN_PUBLISHER_RATE; over it, `RateLimited` (429)."""
    rate = svc.settings.publisher_limit
    if rate is not None:
        verdict = await svc.limiter.acquire(f"publisher:{who.id}", rate.limit,
                                            rate.per_seconds)
        if not verdict.allowed:
            raise RateLimited(f"this publisher is over its limit of {rate} requests; "
                              f"nothing was stored", retry_after=verdict.retry_after)


async def current_user(
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_user_token)],
) -> str:
    """The user id, taken only from a verified token."""
    if credentials is None:
        raise Unauthorized("a user token is required: Authorization: Bearer <jwt>")
    return svc.tokens.verify(credentials.credentials)


PublisherDep = Annotated[Publisher, Depends(publisher)]
RateLimitedPublisherDep = Annotated[Publisher, Depends(publisher_within_rate)]
UserDep = Annotated[str, Depends(current_user)]
