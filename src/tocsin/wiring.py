"""The composition root: which implementation of each port, and the pipeline's stages and
announcers in their order. The one module that knows how the pieces fit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tocsin.auth.keys import KeyVerifier
from tocsin.auth.secrets_file import resolve_jwt_secret
from tocsin.auth.tokens import TokenAuthority
from tocsin.bus.base import Bus
from tocsin.bus.memory import MemoryBus
from tocsin.catalog.builtin import builtin_types
from tocsin.catalog.catalog import TypeCatalog
from tocsin.channels import registry
from tocsin.channels.base import Channel
from tocsin.channels.delivery import DeliveryHandler
from tocsin.clock import Clock
from tocsin.domain.drafts import LIVE_CHANNEL
from tocsin.jobs.base import Jobs
from tocsin.jobs.sql import SqlJobs
from tocsin.jobs.worker import JobHandler, RetryPolicy, Worker
from tocsin.limits.base import RateLimiter
from tocsin.limits.memory import MemoryRateLimiter
from tocsin.pipeline.announcers import WorkerWake
from tocsin.pipeline.base import PublishAnnouncer, Stage
from tocsin.pipeline.grouping import Grouping
from tocsin.pipeline.pipeline import PublishPipeline
from tocsin.pipeline.quiet_hours import QuietHoursStage
from tocsin.pipeline.reads import Reads
from tocsin.pipeline.recipients import RecipientDirectory, Recipients
from tocsin.pipeline.routing import Routing
from tocsin.pipeline.scheduling import Scheduling
from tocsin.pipeline.texts import Texts
from tocsin.pipeline.throttle import Throttle
from tocsin.pipeline.validation import Validation
from tocsin.realtime.fanout import Fanout
from tocsin.realtime.node import Realtime
from tocsin.scheduling.release import ReleaseHandler
from tocsin.scheduling.sweep import Sweeper
from tocsin.services import Services
from tocsin.settings import Settings
from tocsin.store.base import Store
from tocsin.store.sql import SqlStore
from tocsin.topics.expansion import FanoutHandler


def build_store(settings: Settings) -> SqlStore:
    return SqlStore(settings.database_url, pool_size=settings.db_pool_size,
                    connect_timeout=settings.db_connect_timeout,
                    busy_timeout_ms=settings.db_busy_timeout_ms)


def build_bus(settings: Settings) -> Bus:
    if settings.bus_url.startswith("memory://"):
        return MemoryBus()
    from tocsin.bus.redis import RedisBus  # imported only when configured: an optional extra

    return RedisBus(settings.bus_url, publish_timeout=settings.bus_publish_timeout_seconds)


def build_limiter(settings: Settings, clock: Clock) -> RateLimiter:
    """Shared by every node where the bus is (Redis), else this process's own."""
    if settings.bus_url.startswith("memory://"):
        return MemoryRateLimiter(clock)
    from tocsin.limits.redis import RedisRateLimiter  # imported only when configured

    return RedisRateLimiter(settings.bus_url)


def build_jobs(store: SqlStore) -> Jobs:
    return SqlJobs(store.db)


def build_worker(settings: Settings, store: Store, jobs: Jobs, channels: dict[str, Channel],
                 clock: Clock, bus: Bus, pipeline: PublishPipeline, *,
                 wake: asyncio.Event | None = None) -> Worker:
    """The jobs worker and every job kind it runs: topics' fan-outs (through the pipeline),
    releases of scheduled notifications (announced like publishes), the periodic sweep, and
    deliveries when a channel is configured (without one none can be queued, and claiming
    them would only bury them)."""
    handlers: list[JobHandler] = [
        FanoutHandler(store, jobs, pipeline, clock,
                      # each batch is one publish, which the validation stage limits
                      batch=min(settings.fanout_batch, settings.max_batch_users)),
        ReleaseHandler(store, clock, pipeline.announcers),
        Sweeper(store, jobs, bus, clock, every_seconds=settings.sweep_seconds,
                retention_days=settings.retention_days),
    ]
    if channels:
        handlers.append(DeliveryHandler(store, channels))
    return Worker(
        jobs, handlers, clock,
        lease_seconds=settings.outbox_lease_seconds, batch=settings.outbox_batch,
        retry=RetryPolicy(max_attempts=settings.outbox_max_attempts,
                          base_seconds=settings.outbox_backoff_base_seconds,
                          cap_seconds=settings.outbox_backoff_cap_seconds),
        wake=wake,
    )


def build_pipeline(settings: Settings, store: Store, clock: Clock, *, catalog: TypeCatalog,
                   directory: RecipientDirectory, limiter: RateLimiter,
                   channels: dict[str, Channel], announcers: list[PublishAnnouncer]
                   ) -> PublishPipeline:
    stages: list[Stage] = [
        Validation(max_batch_users=settings.max_batch_users,
                   channels={LIVE_CHANNEL, *channels}),
        Recipients(directory),
        Texts(catalog, action_url_hosts=settings.action_url_hosts),
        Routing(outbound=channels),
        QuietHoursStage(),
        Throttle(limiter),
        Scheduling(),
        Grouping(),
    ]
    return PublishPipeline(store, clock, stages=stages, announcers=announcers,
                           idempotency_ttl_seconds=settings.idempotency_ttl_seconds)


def build_catalog(settings: Settings, store: Store, bus: Bus, clock: Clock) -> TypeCatalog:
    configured = {name: definition.to_type(name) for name, definition in settings.types.items()}
    return TypeCatalog(store, bus, clock, builtin=builtin_types(), configured=configured,
                       refresh_seconds=settings.types_refresh_seconds)


@dataclass(frozen=True, slots=True)
class PublishingNode:
    """What publishes: the pipeline, the worker (whose fan-out handler publishes through the
    pipeline), and what they share: the live fan-out, the type catalog, the recipients'
    directory and the rate limiter."""

    pipeline: PublishPipeline
    worker: Worker
    fanout: Fanout
    catalog: TypeCatalog
    directory: RecipientDirectory
    limiter: RateLimiter


def build_publishing(settings: Settings, store: Store, clock: Clock, bus: Bus, jobs: Jobs,
                     channels: dict[str, Channel], *, wake_worker: bool) -> PublishingNode:
    """The pipeline and the worker of a node (`tocsin serve`, or `tocsin worker` alone).
    `wake_worker`: this process runs the worker, so a publish that queued jobs wakes it."""
    # The pipeline's announcer wakes the worker, and the worker's fan-out handler publishes
    # through the pipeline: the wake-up signal is made first, for both.
    wake = asyncio.Event()
    fanout = Fanout(bus)
    announcers: list[PublishAnnouncer] = [fanout]
    if wake_worker:
        announcers.append(WorkerWake(wake.set))
    catalog = build_catalog(settings, store, bus, clock)
    directory = RecipientDirectory(store, bus, clock,
                                   ttl_seconds=settings.recipients_cache_seconds)
    limiter = build_limiter(settings, clock)
    pipeline = build_pipeline(settings, store, clock, catalog=catalog, directory=directory,
                              limiter=limiter, channels=channels, announcers=announcers)
    worker = build_worker(settings, store, jobs, channels, clock, bus, pipeline, wake=wake)
    return PublishingNode(pipeline=pipeline, worker=worker, fanout=fanout, catalog=catalog,
                          directory=directory, limiter=limiter)


def build_services(settings: Settings, store: SqlStore, clock: Clock, bus: Bus) -> Services:
    """Everything a `tocsin serve` node runs. Its worker runs in process unless
    `TOCSIN_WORKER_IN_PROCESS=false`."""
    channels = registry.configured(settings)
    jobs = build_jobs(store)
    node = build_publishing(settings, store, clock, bus, jobs, channels,
                            wake_worker=settings.worker_in_process)
    reads = Reads(store, clock, [node.fanout])
    return Services(
        settings=settings,
        store=store,
        clock=clock,
        keys=KeyVerifier(store, settings.api_keys, clock, settings.api_key_cache_seconds),
        tokens=TokenAuthority(resolve_jwt_secret(settings), settings.jwt_algorithm, clock=clock,
                              max_ttl_seconds=settings.max_token_ttl_seconds),
        pipeline=node.pipeline,
        reads=reads,
        realtime=Realtime(bus, node.fanout, reads, store, clock, settings),
        jobs=jobs,
        channels=channels,
        catalog=node.catalog,
        recipients=node.directory,
        limiter=node.limiter,
        worker=node.worker,
    )
