"""Everything a request or a stream needs, wired once per app: the composition's result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tocsin.auth.keys import KeyVerifier
from tocsin.auth.tokens import TokenAuthority
from tocsin.catalog.catalog import TypeCatalog
from tocsin.channels.base import Channel
from tocsin.clock import Clock
from tocsin.jobs.base import Jobs
from tocsin.jobs.worker import Worker
from tocsin.limits.base import RateLimiter
from tocsin.pipeline.pipeline import PublishPipeline
from tocsin.pipeline.reads import Reads
from tocsin.pipeline.recipients import RecipientDirectory
from tocsin.realtime.node import Realtime
from tocsin.settings import Settings
from tocsin.store.base import Store


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    clock: Clock
    keys: KeyVerifier
    tokens: TokenAuthority
    pipeline: PublishPipeline
    reads: Reads
    realtime: Realtime
    jobs: Jobs
    channels: dict[str, Channel]
    catalog: TypeCatalog
    recipients: RecipientDirectory
    #: Per publisher (requests) and per user and type (outbound deliveries).
    limiter: RateLimiter
    #: The jobs worker; it runs inside the server when `worker_in_process` is set.
    worker: Worker


def services_of(app: Any) -> Services:
    """The services of an app made by `create_app` (its `state` holds them)."""
    found = app.state.services
    if not isinstance(found, Services):
        raise TypeError(f"expected the app's Services, got {type(found).__name__}")
    return found
