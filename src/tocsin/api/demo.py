"""The demo page's own endpoints: a token for the user `demo`, and sample notifications.

Mounted only with TOCSIN_DEMO=true (as `make run` does), for trying Tocsin on a laptop: anyone
who can reach the server can read and write the demo user's notifications."""

from __future__ import annotations

from importlib import resources
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict

from tocsin.api.deps import ServicesDep
from tocsin.api.responses import OrjsonResponse
from tocsin.pipeline.base import PublishRequest

router = APIRouter(include_in_schema=False)
DEMO_USER = "demo"

_SAMPLES = {
    "comment": ("Alice commented on your post", "Great write-up, thanks for sharing!"),
    "mention": ("Bob mentioned you", "@demo can you take a look at this?"),
    "like": ("Carol liked your post", "Your post \u201cHello, Tocsin\u201d has a new like."),
}


class DemoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["comment", "mention", "like"]


@router.get("/")
async def page() -> HTMLResponse:
    html = resources.files("tocsin.web").joinpath("index.html").read_text()
    return HTMLResponse(html)


@router.post("/demo/token")
async def demo_token(svc: ServicesDep) -> OrjsonResponse:
    token, expires_at = svc.tokens.mint(DEMO_USER, 3600)
    return OrjsonResponse({"token": token, "user_id": DEMO_USER,
                           "expires_at": expires_at.isoformat()})


@router.post("/demo/notifications", status_code=202)
async def demo_publish(body: DemoBody, svc: ServicesDep) -> OrjsonResponse:
    title, message = _SAMPLES[body.kind]
    outcome = await svc.pipeline.publish(
        PublishRequest(user_ids=[DEMO_USER], type=body.kind, data={"demo": True}, title=title,
                       message=message),
        publisher="demo",
    )
    return OrjsonResponse({"notifications": outcome.notifications}, status_code=202)
