"""/v1/types: the notification types this server knows (publisher key).

The API wins over `tocsin.toml`, which wins over the built-in types; a change applies on every
node within a second (see `catalog/catalog.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from tocsin.api.deps import PublisherDep, ServicesDep
from tocsin.api.openapi import AUTHENTICATED, WITH_BODY, errors
from tocsin.api.schemas import TypeList, TypeOut
from tocsin.catalog.catalog import Origin
from tocsin.catalog.definition import TYPE_NAME_MAX, TYPE_NAME_PATTERN, TypeDefinition
from tocsin.domain.errors import NotFound
from tocsin.domain.types import NotificationType

router = APIRouter(prefix="/v1/types", tags=["types"], responses=errors(*AUTHENTICATED))

TypePath = Annotated[str, Path(min_length=1, max_length=TYPE_NAME_MAX,
                               pattern=TYPE_NAME_PATTERN)]


def type_out(kind: NotificationType, origin: Origin) -> TypeOut:
    return TypeOut(**kind.to_json(), source=origin)


@router.get("", response_model=TypeList, summary="Every type")
async def list_types(svc: ServicesDep, who: PublisherDep) -> TypeList:
    return TypeList(types=[type_out(kind, origin) for kind, origin in await svc.catalog.all()])


@router.get("/{type}", response_model=TypeOut, summary="One type",
            responses=errors(404, 422))
async def get_type(type: TypePath, svc: ServicesDep, who: PublisherDep) -> TypeOut:
    kind, origin = await svc.catalog.get(type), await svc.catalog.origin(type)
    if kind is None or origin is None:
        raise NotFound(f"no type {type!r}")
    return type_out(kind, origin)


@router.put("/{type}", response_model=TypeOut, summary="Define or replace a type",
            responses=errors(*WITH_BODY))
async def put_type(type: TypePath, body: TypeDefinition, svc: ServicesDep,
                   who: PublisherDep) -> TypeOut:
    """Templates are compiled first: one that does not compile is a 422 naming it, and
    nothing changes."""
    kind = await svc.catalog.put(body.to_type(type), svc.clock.now())
    return type_out(kind, "api")


@router.delete("/{type}", status_code=204, response_class=Response,
               summary="Remove a type (a built-in or configured one too)",
               responses=errors(404, 422))
async def delete_type(type: TypePath, svc: ServicesDep, who: PublisherDep) -> Response:
    if not await svc.catalog.remove(type, svc.clock.now()):
        raise NotFound(f"no type {type!r}")
    return Response(status_code=204)
