"""uvicorn's access log never carries a query string (it can hold `?token=`)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from tocsin.logs import QueryStringFilter, install_access_log_filter

#: The call uvicorn's HTTP protocols make for each request (h11_impl, httptools_impl).
UVICORN_MSG = '%s - "%s %s HTTP/%s" %d'
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"


def access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, UVICORN_MSG,
                             ("127.0.0.1:50000", "GET", path, "1.1", 200), None)


def test_filter_strips_the_query_string_and_keeps_the_rest() -> None:
    record = access_record(f"/v1/stream?token={TOKEN}&since=4")
    assert QueryStringFilter().filter(record) is True
    assert record.getMessage() == '127.0.0.1:50000 - "GET /v1/stream HTTP/1.1" 200'


def test_path_without_query_is_unchanged() -> None:
    record = access_record("/v1/me/notifications")
    QueryStringFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:50000 - "GET /v1/me/notifications HTTP/1.1" 200'


@pytest.fixture
def access_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger = logging.getLogger("uvicorn.access")
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(AccessFormatter(LOGGING_CONFIG["formatters"]["access"]["fmt"],
                                         use_colors=False))
    saved = (logger.filters[:], logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, output
    finally:
        logger.removeHandler(handler)
        logger.filters[:], logger.level, logger.propagate = saved


def test_installed_filter_cleans_uvicorns_formatted_line(
        access_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, output = access_log
    install_access_log_filter()
    install_access_log_filter()
    assert sum(isinstance(f, QueryStringFilter) for f in logger.filters) == 1
    logger.info(UVICORN_MSG, "10.0.0.9:41000", "GET", f"/v1/stream?token={TOKEN}", "1.1", 200)
    line = output.getvalue()
    assert '"GET /v1/stream HTTP/1.1" 200 OK' in line
    assert TOKEN not in line and "token=" not in line
