"""This node's live delivery, wired: bus, hub, fanout, limits, and each transport's codec."""

from __future__ import annotations

from tocsin.bus.base import Bus
from tocsin.clock import Clock
from tocsin.pipeline.reads import Reads
from tocsin.realtime.capacity import Capacity
from tocsin.realtime.connection import LiveServices
from tocsin.realtime.fanout import Fanout
from tocsin.realtime.handshake import Handshake
from tocsin.realtime.hub import Hub
from tocsin.realtime.session import Limits, Session
from tocsin.realtime.transports.sse import SseCodec
from tocsin.realtime.transports.websocket import WebSocketCodec
from tocsin.settings import Settings
from tocsin.store.base import Store


class Realtime:
    def __init__(self, bus: Bus, fanout: Fanout, reads: Reads, store: Store, clock: Clock,
                 settings: Settings) -> None:
        self.bus = bus
        self._clock = clock
        self.hub = Hub(bus)
        self.fanout = fanout
        self.live = LiveServices(store=store, hub=self.hub, reads=reads, clock=clock,
                                 queue_size=settings.stream_queue_size)
        self.capacity = Capacity(per_user=settings.max_streams_per_user,
                                 total=settings.max_streams)
        self.limits = Limits(
            max_replay=settings.max_replay, gap_timeout=settings.stream_gap_timeout_seconds,
            heartbeat=settings.heartbeat_seconds, max_buffer=settings.stream_queue_size * 4,
        )
        self.ws_codec = WebSocketCodec(max_frame=settings.ws_max_frame_bytes)
        self.sse_codec = SseCodec()

    def new_session(self, hello: Handshake) -> Session:
        now = self._clock.monotonic()
        return Session(user_id=hello.user_id, since=hello.since, limits=self.limits, now=now,
                       expires_at=now + hello.expires_in)

    async def start(self) -> None:
        await self.bus.start()

    async def close(self) -> None:
        await self.bus.close()
