"""create_app(settings): wires the ports, the routes and the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from tocsin import __version__
from tocsin.api import demo, errors, health, me, publish, tokens, users
from tocsin.api.body_limit import BodyLimit
from tocsin.api.deps import Services
from tocsin.api.responses import OrjsonResponse
from tocsin.auth.keys import KeyVerifier
from tocsin.auth.secrets_file import resolve_jwt_secret
from tocsin.auth.tokens import TokenAuthority
from tocsin.bus.base import Bus
from tocsin.bus.memory import MemoryBus
from tocsin.clock import Clock, SystemClock
from tocsin.domain.errors import StoreUnavailable
from tocsin.logs import install_access_log_filter
from tocsin.pipeline.publish import PublishPipeline
from tocsin.realtime import sse, ws
from tocsin.realtime.node import Realtime
from tocsin.settings import Settings, load_settings
from tocsin.store.base import Store
from tocsin.store.sql import SqlStore

log = logging.getLogger("tocsin")

#: Channels this server can deliver on; outbound ones join as they are configured.
CHANNELS = frozenset({"web"})
_PURGE_EVERY_SECONDS = 600


def build_store(settings: Settings) -> SqlStore:
    return SqlStore(settings.database_url, pool_size=settings.db_pool_size,
                    connect_timeout=settings.db_connect_timeout,
                    busy_timeout_ms=settings.db_busy_timeout_ms)


def build_bus(settings: Settings) -> Bus:
    if settings.bus_url.startswith("memory://"):
        return MemoryBus()
    from tocsin.bus.redis import RedisBus  # imported only when configured: an optional extra

    return RedisBus(settings.bus_url)


def build_services(settings: Settings, store: Store, clock: Clock, bus: Bus) -> Services:
    realtime = Realtime(bus, store, clock, settings)
    return Services(
        settings=settings,
        store=store,
        clock=clock,
        keys=KeyVerifier(store, settings.api_keys, clock, settings.api_key_cache_seconds),
        tokens=TokenAuthority(resolve_jwt_secret(settings), settings.jwt_algorithm),
        pipeline=PublishPipeline(
            store, clock, max_batch_users=settings.max_batch_users,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds, channels=CHANNELS,
            fanout=realtime.fanout,
        ),
        realtime=realtime,
    )


async def _purge_forever(store: Store, clock: Clock) -> None:
    while True:
        await asyncio.sleep(_PURGE_EVERY_SECONDS)
        try:
            purged = await store.purge_idempotency_keys(clock.now())
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except StoreUnavailable as exc:
            log.warning("idempotency purge skipped: %s", exc.message)


def create_app(settings: Settings | None = None, *, store: Store | None = None,
               clock: Clock | None = None, bus: Bus | None = None) -> FastAPI:
    """The ASGI app. A `store` passed in stays the caller's to close; one built here is closed
    at shutdown."""
    settings = settings or load_settings()
    clock = clock or SystemClock()
    owns_store = store is None
    the_store: Store = store if store is not None else build_store(settings)
    services = build_services(settings, the_store, clock, bus or build_bus(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_access_log_filter()
        await the_store.migrate()
        await services.realtime.start()
        purger = asyncio.create_task(_purge_forever(the_store, clock))
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await services.realtime.close()
            if owns_store:
                await the_store.close()

    app = FastAPI(
        title="Tocsin",
        version=__version__,
        summary="Live notifications: stored first, pushed at once, caught up exactly.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        redoc_url=None,
    )
    app.state.services = services
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
    for module in (publish, tokens, users, me, sse, ws, health):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[("tocsin", "web")]), name="static")
    if settings.demo:
        app.include_router(demo.router)
    else:
        @app.get("/", include_in_schema=False)
        async def index() -> RedirectResponse:
            return RedirectResponse("/docs")

    return app
