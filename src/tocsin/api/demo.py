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

#: What a backend would send: a built-in type and its data; the type's templates make the
#: text ("Alice commented on your post").
_SAMPLES: dict[str, dict[str, object]] = {
    "comment": {"actor": "Alice", "excerpt": "Great write-up, thanks for sharing!"},
    "mention": {"actor": "Bob", "excerpt": "@demo can you take a look at this?"},
    "like": {"actor": "Carol", "target": "\u201cHello, Tocsin\u201d"},
    "follow": {"actor": "Dan"},
    "payment": {"status": "received", "amount": "\u20ac12.00",
                "details": "Thank you for your order."},
}


class DemoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["comment", "mention", "like", "follow", "payment"]


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
    outcome = await svc.pipeline.publish(
        PublishRequest(user_ids=[DEMO_USER], type=body.kind, data=dict(_SAMPLES[body.kind])),
        publisher="demo",
    )
    return OrjsonResponse({"notifications": outcome.notifications}, status_code=202)
