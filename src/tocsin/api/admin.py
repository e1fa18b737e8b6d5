"""/v1/admin/*: operators' routes (publisher key): dead letters."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tocsin.api.deps import PublisherDep, ServicesDep
from tocsin.api.openapi import AUTHENTICATED, errors
from tocsin.api.responses import OrjsonResponse
from tocsin.domain.errors import NotFound

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=errors(*AUTHENTICATED))


@router.get("/dead-letters", summary="Deliveries that failed for good", responses=errors(422))
async def dead_letters(svc: ServicesDep, who: PublisherDep,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> OrjsonResponse:
    found = await svc.jobs.dead_letters(limit)
    return OrjsonResponse({"dead_letters": [item.to_json() for item in found]})


@router.post("/dead-letters/{delivery_id}/replay", status_code=202,
             summary="Queue a dead letter again", responses=errors(404))
async def replay(delivery_id: str, svc: ServicesDep, who: PublisherDep) -> OrjsonResponse:
    try:
        parsed = uuid.UUID(delivery_id)
    except ValueError:
        raise NotFound("no dead letter with this id") from None
    replayed = await svc.jobs.replay(parsed, svc.clock.now())
    svc.worker.wake()
    return OrjsonResponse(replayed.to_json(), status_code=202)
