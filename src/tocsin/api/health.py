"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter

from tocsin.api.deps import ServicesDep
from tocsin.api.openapi import errors
from tocsin.api.responses import OrjsonResponse, error_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> OrjsonResponse:
    return OrjsonResponse({"status": "ok"})


@router.get("/readyz", summary="The store and the bus answer (503 otherwise)",
            responses=errors(503))
async def readyz(svc: ServicesDep) -> OrjsonResponse:
    await svc.store.ping()
    try:
        await svc.realtime.bus.ping()
    except Exception as exc:  # any bus failure: not ready, and say why
        return error_response(503, "bus_unavailable", f"the bus is unavailable: {exc}",
                              headers={"Retry-After": "5"})
    return OrjsonResponse({"status": "ready"})
