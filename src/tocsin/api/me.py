"""/v1/me/*: a user's own notifications. The user is the verified token's `sub`, nothing else."""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Query

from tocsin.api.deps import ServicesDep, UserDep
from tocsin.api.openapi import AUTHENTICATED, WITH_BODY, errors
from tocsin.api.responses import OrjsonResponse
from tocsin.api.schemas import (
    MAX_SEQ,
    NotificationList,
    NotificationOut,
    ReadAllBody,
    ReadResult,
    TypeStr,
    UnreadCountOut,
)
from tocsin.domain.encoding import notification_json, notifications_json
from tocsin.domain.errors import InvalidInput, NotFound
from tocsin.domain.models import ReadChange

router = APIRouter(prefix="/v1/me", tags=["user"], responses=errors(*AUTHENTICATED))


def _parse_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        # Not a valid id can't be anyone's notification: the same answer as someone else's.
        raise NotFound("no such notification") from None


def _read_result(change: ReadChange) -> OrjsonResponse:
    return OrjsonResponse({"ids": [str(i) for i in change.ids],
                           "unread_count": change.unread.count, "seq": change.unread.seq,
                           "version": change.unread.version})


@router.get("/notifications", response_model=NotificationList,
            summary="List my notifications, newest first", responses=errors(422))
async def list_notifications(
    svc: ServicesDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1)] = 20,
    before: Annotated[int | None,
                      Query(ge=1, le=MAX_SEQ, description="seq cursor from `next`")] = None,
    unread: bool = False,
    type: Annotated[TypeStr | None, Query()] = None,
) -> OrjsonResponse:
    if limit > svc.settings.max_list_limit:
        raise InvalidInput(f"limit is at most {svc.settings.max_list_limit}",
                           details={"field": "limit", "max": svc.settings.max_list_limit})
    page = await svc.store.list_notifications(user, limit=limit, before=before,
                                              unread_only=unread, type=type)
    return OrjsonResponse({
        "notifications": notifications_json(page.notifications),
        "next": page.next,
        "unread_count": page.unread.count,
        "seq": page.unread.seq,
        "version": page.unread.version,
    })


@router.post("/notifications/read-all", response_model=ReadResult, summary="Mark all read",
             responses=errors(*WITH_BODY))
async def mark_all_read(svc: ServicesDep, user: UserDep,
                        body: Annotated[ReadAllBody | None, Body()] = None) -> OrjsonResponse:
    up_to = body.seq if body is not None else None
    change = await svc.reads.mark_all_read(user, up_to)
    return _read_result(change)


@router.post("/notifications/{notification_id}/read", response_model=ReadResult,
             summary="Mark one read", responses=errors(404))
async def mark_read(notification_id: str, svc: ServicesDep, user: UserDep) -> OrjsonResponse:
    change = await svc.reads.mark_read(user, _parse_id(notification_id))
    return _read_result(change)


@router.get("/notifications/{notification_id}", summary="One of my notifications",
            response_model=NotificationOut, responses=errors(404))
async def get_notification(notification_id: str, svc: ServicesDep, user: UserDep
                           ) -> OrjsonResponse:
    found = await svc.store.get_notification(user, _parse_id(notification_id))
    return OrjsonResponse(orjson.Fragment(notification_json(found)))


@router.get("/unread-count", response_model=UnreadCountOut, summary="My unread count")
async def unread_count(svc: ServicesDep, user: UserDep) -> OrjsonResponse:
    return OrjsonResponse((await svc.store.unread_count(user)).to_json())
