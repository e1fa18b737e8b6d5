"""GET /v1/fanouts/{id}: how far a publish to a topic is (publisher key)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from tocsin.api.deps import PublisherDep, ServicesDep
from tocsin.api.openapi import AUTHENTICATED, errors
from tocsin.api.schemas import FanoutOut
from tocsin.domain.errors import NotFound

router = APIRouter(tags=["publisher"])


@router.get("/v1/fanouts/{fanout_id}", response_model=FanoutOut,
            summary="A topic publish's progress", responses=errors(*AUTHENTICATED, 404))
async def get_fanout(fanout_id: str, svc: ServicesDep, who: PublisherDep) -> FanoutOut:
    try:
        parsed = uuid.UUID(fanout_id)
    except ValueError:
        raise NotFound("no fan-out with this id") from None  # no id of ours looks like it
    found = await svc.store.fanout(parsed)
    return FanoutOut(**found.to_json())
