"""Logging: Tocsin's own loggers on stderr beside uvicorn's, and uvicorn's access and WebSocket
logs without query strings (they can carry `?token=`)."""

from __future__ import annotations

import copy
import logging
import logging.config
from typing import Any

#: Every logger of the package is a child of this one (`tocsin.worker`, `tocsin.api`, …).
ROOT_LOGGER = "tocsin"
LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


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


def logging_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration, plus the `tocsin` loggers in the same format on stderr.

    uvicorn configures only its own loggers, so without this a failed email or a new dead letter
    would be logged nowhere. Given to uvicorn as its `log_config`, it is applied in every
    process `--workers` starts, not only in the first."""
    from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["tocsin"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
        "use_colors": None,  # colours on a terminal, none in a file
    }
    config["handlers"]["tocsin"] = {
        "formatter": "tocsin", "class": "logging.StreamHandler", "stream": "ext://sys.stderr",
    }
    config["loggers"][ROOT_LOGGER] = {
        "handlers": ["tocsin"], "level": LOG_LEVELS[level], "propagate": False,
    }
    return config


def configure_logging(level: str = "info") -> dict[str, Any]:
    """Apply `logging_config(level)` now (for what is logged before uvicorn starts, and for
    `tocsin worker`, which runs no uvicorn); returns it."""
    config = logging_config(level)
    logging.addLevelName(5, "TRACE")  # uvicorn's extra level, which its config may name
    logging.config.dictConfig(config)
    return config
