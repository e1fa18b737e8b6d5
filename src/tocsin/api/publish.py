"""POST /v1/notifications: the publisher's entry point, to users or to a topic."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response

from tocsin.api.deps import PublisherDep, RateLimitedPublisherDep, ServicesDep
from tocsin.api.openapi import AUTHENTICATED, WITH_BODY, errors
from tocsin.api.responses import OrjsonResponse
from tocsin.api.schemas import FanoutAccepted, PublishBody, PublishResponse
from tocsin.auth.keys import Publisher
from tocsin.domain.errors import NotFound
from tocsin.pipeline.base import PublishRequest
from tocsin.pipeline.fingerprint import fingerprint
from tocsin.services import Services

router = APIRouter(tags=["publisher"])

#: What an Idempotency-Key may be: printable ASCII without spaces, 1 to 255 characters.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
           description="Retry-safe key, kept 24 hours per publisher"),
]


@router.post(
    "/v1/notifications",
    status_code=202,
    response_model=PublishResponse | FanoutAccepted,
    summary="Notify one user, many, or a topic's subscribers",
    responses=errors(*AUTHENTICATED, *WITH_BODY, 404, 409, 429),
)
async def publish(body: PublishBody, svc: ServicesDep, who: RateLimitedPublisherDep,
                  idempotency_key: IdempotencyKey = None) -> OrjsonResponse:
    """Store the notification(s); the 202 is sent only after they are committed. To a topic:
    once the fan-out is recorded (`{"fanout_id", "recipients"}`); the worker then notifies
    each subscriber, and GET /v1/fanouts/{id} tells how far it is. An unknown topic is 404.
    Over TOCSIN_PUBLISHER_RATE: 429 `rate_limited` with Retry-After, and nothing is stored."""
    return await published(svc, body, who, idempotency_key)


async def published(svc: Services, body: PublishBody, who: Publisher,
                    idempotency_key: str | None) -> OrjsonResponse:
    """The answer to a valid publish from an authenticated publisher within its rate: also
    what the lean route (`api/lean_publish.py`) answers, so the two cannot differ."""
    request = PublishRequest(
        user_ids=body.audience, type=body.type, data=body.data, title=body.title,
        message=body.message, action_url=body.action_url, channels=body.channels,
        priority=body.priority, expires_at=body.expires_at, send_at=body.send_at,
        topic=body.topic, exclude_user_ids=list(body.exclude_user_ids or []),
    )
    payload = body.payload() if idempotency_key is not None else None
    if request.topic is not None:
        return await _to_topic(svc, request, who.id, idempotency_key, payload)
    outcome = await svc.pipeline.publish(request, publisher=who.id,
                                         idempotency_key=idempotency_key, payload=payload)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return OrjsonResponse({"notifications": outcome.notifications}, status_code=202,
                          headers=headers)


@router.delete(
    "/v1/notifications/{notification_id}",
    status_code=204,
    response_class=Response,
    summary="Cancel a scheduled notification",
    responses=errors(*AUTHENTICATED, 404, 409),
)
async def cancel(notification_id: str, svc: ServicesDep, who: PublisherDep) -> Response:
    """Only before its `send_at`: once released it is 409 (`conflict`); another publisher's,
    or an unknown id, is 404. Cancelling twice is fine."""
    try:
        the_id = uuid.UUID(notification_id)
    except ValueError:
        raise NotFound("no such notification") from None
    await svc.store.cancel_scheduled(who.id, the_id, svc.clock.now())
    return Response(status_code=204)


async def _to_topic(svc: Services, request: PublishRequest, publisher: str,
                    idempotency_key: str | None, payload: dict[str, object] | None
                    ) -> OrjsonResponse:
    assert request.topic is not None
    # What every batch would refuse is refused now, before anything is recorded.
    await svc.pipeline.check(request, publisher=publisher)
    started = await svc.store.start_fanout(
        request.topic, publisher, request.to_json(), request.exclude_user_ids,
        svc.clock.now(), svc.settings.idempotency_ttl_seconds,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(payload or {}) if idempotency_key is not None else None)
    if started.replayed:
        return OrjsonResponse(started.to_json(), status_code=202,
                              headers={"Idempotent-Replayed": "true"})
    svc.worker.wake()  # a no-op unless it runs in this process
    return OrjsonResponse(started.to_json(), status_code=202)
