"""create_app(settings): the routes, the middleware and the lifespan, over the services
`wiring.py` builds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from starlette.types import Receive, Scope, Send

from tocsin import __version__
from tocsin.api import (
    admin,
    demo,
    docs,
    errors,
    fanouts,
    health,
    me,
    openapi,
    preferences,
    publish,
    tokens,
    topics,
    types,
    users,
)
from tocsin.api.body_limit import BodyLimit
from tocsin.api.lean_publish import LeanPublish
from tocsin.api.responses import OrjsonResponse
from tocsin.api.static import PublicStaticFiles
from tocsin.bus.base import Bus
from tocsin.clock import Clock, SystemClock
from tocsin.domain.errors import StoreUnavailable
from tocsin.logs import install_access_log_filter
from tocsin.realtime import sse, ws
from tocsin.services import services_of
from tocsin.settings import Settings, load_settings
from tocsin.store.base import Store
from tocsin.store.sql import SqlStore
from tocsin.wiring import build_bus, build_services, build_store

log = logging.getLogger("tocsin")

_PURGE_EVERY_SECONDS = 600


class TocsinApp(FastAPI):
    """The app. A WebSocket to /v1/ws goes straight to its endpoint, ahead of the middleware
    and the router: a stream lives for hours, and every layer between the server and the
    endpoint keeps its frame alive for as long (see `realtime/ws.py`). None of the middleware
    has anything to do with a WebSocket: the body limit and CORS are HTTP's."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == ws.PATH:
            await ws.websocket_stream(services_of(self), scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def _purge_forever(store: Store, clock: Clock) -> None:
    while True:
        await asyncio.sleep(_PURGE_EVERY_SECONDS)
        try:
            purged = await store.purge_idempotency_keys(clock.now())
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except StoreUnavailable as exc:
            log.warning("idempotency purge skipped: %s", exc.message)


def create_app(settings: Settings | None = None, *, store: SqlStore | None = None,
               clock: Clock | None = None, bus: Bus | None = None) -> FastAPI:
    """The ASGI app. A `store` passed in stays the caller's to close; one built here is closed
    at shutdown."""
    settings = settings or load_settings()
    clock = clock or SystemClock()
    owns_store = store is None
    the_store = store if store is not None else build_store(settings)
    services = build_services(settings, the_store, clock, bus or build_bus(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_access_log_filter()
        await the_store.migrate()
        if owns_store:  # a store handed in is the caller's, its pool too
            await the_store.warm()
        await services.realtime.start()
        purger = asyncio.create_task(_purge_forever(the_store, clock))
        stop = asyncio.Event()
        working = (asyncio.create_task(services.worker.run(stop))
                   if settings.worker_in_process else None)
        try:
            yield
        finally:
            stop.set()
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            if working is not None:
                # Let in-flight sends finish; their leases would make them repeat otherwise.
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(working, 10)
            for channel in services.channels.values():
                await channel.close()
            await services.realtime.close()
            await services.limiter.close()
            if owns_store:
                await the_store.close()

    app = TocsinApp(
        title="Tocsin",
        version=__version__,
        summary="Live notifications: stored first, pushed at once, caught up exactly.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        # Served by api/docs.py with the viewers' files from this package, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    # Innermost of the middleware: the body limit and CORS apply to it as to every route.
    app.add_middleware(LeanPublish)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            max_age=600,
        )
    errors.install(app)
    openapi.install(app, settings)
    for module in (publish, tokens, users, me, sse, admin, health, types, fanouts):
        app.include_router(module.router)
    app.include_router(preferences.me)
    app.include_router(preferences.users)
    app.include_router(topics.publisher)
    app.include_router(topics.me)
    docs.install(app)
    app.mount("/static", PublicStaticFiles(packages=[("tocsin", "web")]), name="static")
    if settings.demo:
        app.include_router(demo.router)
    else:
        @app.get("/", include_in_schema=False)
        async def index() -> RedirectResponse:
            return RedirectResponse("/docs")

    return app
