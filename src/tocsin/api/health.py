"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter

from tocsin.api.deps import ServicesDep
from tocsin.api.responses import OrjsonResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> OrjsonResponse:
    return OrjsonResponse({"status": "ok"})


@router.get("/readyz", summary="The store answers (503 otherwise)")
async def readyz(svc: ServicesDep) -> OrjsonResponse:
    await svc.store.ping()
    return OrjsonResponse({"status": "ready"})
