"""Dependencies: the wired services, the authenticated publisher, the authenticated user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.applications import Starlette

from tocsin.auth.keys import KeyVerifier, Publisher
from tocsin.auth.tokens import TokenAuthority
from tocsin.channels.base import Channel
from tocsin.channels.worker import Worker
from tocsin.clock import Clock
from tocsin.domain.errors import Unauthorized
from tocsin.pipeline.publish import PublishPipeline
from tocsin.realtime.node import Realtime
from tocsin.settings import Settings
from tocsin.store.base import Store
from tocsin.store.outbox import SqlOutbox


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    clock: Clock
    keys: KeyVerifier
    tokens: TokenAuthority
    pipeline: PublishPipeline
    realtime: Realtime
    outbox: SqlOutbox
    channels: dict[str, Channel]
    worker: Worker | None


def services_of(app: Starlette) -> Services:
    """The services `create_app` wired into `app`: for routes and streams alike."""
    found: Services = app.state.services
    return found


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


async def current_user(
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_user_token)],
) -> str:
    """The user id, taken only from a verified token."""
    if credentials is None:
        raise Unauthorized("a user token is required: Authorization: Bearer <jwt>")
    return svc.tokens.verify(credentials.credentials)


PublisherDep = Annotated[Publisher, Depends(publisher)]
UserDep = Annotated[str, Depends(current_user)]
