"""Logging: uvicorn's access and WebSocket logs without query strings (they can carry
`?token=`)."""

from __future__ import annotations

import logging


class QueryStringFilter(logging.Filter):
    """Strip everything after `?` from the path in uvicorn's request records: the access log's
    `(client, method, path, version, status)` and the WebSocket lines `(client, path, …)`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple):
            return True
        position = 1 if isinstance(record.msg, str) and '"WebSocket %s"' in record.msg else 2
        value = args[position] if len(args) > position else None
        if isinstance(value, str):
            record.args = (*args[:position], value.split("?", 1)[0], *args[position + 1:])
        return True


def install_access_log_filter() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryStringFilter) for f in logger.filters):
            logger.addFilter(QueryStringFilter())
