"""The options `tocsin serve` gives uvicorn, from the settings."""

from __future__ import annotations

from typing import Any

from tocsin.server.protocol import GuardedHttpProtocol, HeadLimits
from tocsin.server.websocket import LeanWSProtocol
from tocsin.settings import Settings


def uvicorn_options(settings: Settings, log_level: str = "info") -> dict[str, Any]:
    return {
        "host": settings.host, "port": settings.port, "log_level": log_level,
        "server_header": False, "proxy_headers": True,
        # uvicorn's 2,048 overflowed in a storm of 5,000 reconnects (bench/storm.py): a dropped
        # SYN is retried by the client's kernel a second later, then two more.
        "backlog": settings.listen_backlog,
        "http": GuardedHttpProtocol.factory(HeadLimits(
            head_timeout=settings.http_head_timeout_seconds,
            max_url_bytes=settings.max_url_bytes,
            max_header_bytes=settings.max_header_bytes,
        )),
        # wsproto rather than uvicorn's default (websockets): the same speed, and about 3 KB
        # less per idle connection; and lighter still (server/websocket.py; docs/benchmarks.md).
        "ws": LeanWSProtocol,
        "ws_per_message_deflate": settings.ws_compression,
        # WebSocket keep-alive pings find dead peers; frames over the limit close with 1009.
        "ws_ping_interval": settings.heartbeat_seconds,
        "ws_ping_timeout": settings.heartbeat_seconds,
        "ws_max_size": settings.ws_max_frame_bytes,
        # Open streams do not end by themselves: give them this long, then close them (clients
        # resume by seq on another node).
        "timeout_graceful_shutdown": 5,
    }
