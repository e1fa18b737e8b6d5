"""Schemathesis over the served OpenAPI description, against a real server: requests generated
from the description, valid and invalid, with publisher and user credentials. No answer may be
a 5xx, and every answer must be one the description lists, in the shape it gives; invalid
requests must be refused. The description has to say what the server really does.

`GET /v1/stream` is left out: a stream has no end for a request/response fuzzer to wait for
(its handshake refusals are tested in test_live_handshake.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.client import PUBLISHER_KEY, settings_for
from tests.support.live import token_for
from tests.support.server import ServerProcess, tocsin_env, tocsin_server
from tocsin.app import create_app

pytestmark = pytest.mark.e2e
#: A generated request against any operation.
Case = schemathesis.Case[Any]

USER = "fuzzed-user"
#: The statuses each operation answered with, across all generated cases.
ANSWERS: dict[str, set[int]] = {}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]


#: The description the server serves, built here (the same code, the same default settings) so
#: that the cases can be generated when the tests are collected; the server fixture checks
#: that it is exactly what the running server serves.
DESCRIPTION = create_app(settings_for("sqlite:///:memory:")).openapi()
schema = schemathesis.openapi.from_dict(DESCRIPTION).exclude(path="/v1/stream")


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    cwd: Path = tmp_path_factory.mktemp("fuzz")
    with tocsin_server(tocsin_env(f"sqlite:///{cwd / 'fuzz.db'}"), cwd) as server:
        assert httpx.get(f"{server.url}/openapi.json", timeout=10).json() == DESCRIPTION
        # The user has something in the inbox, so list and read-all reach the store's logic.
        httpx.post(f"{server.url}/v1/notifications", timeout=10,
                   headers={"Authorization": f"Bearer {PUBLISHER_KEY}"},
                   json={"user_id": USER, "type": "comment", "title": "hello"}
                   ).raise_for_status()
        yield server


@schema.auth()
class Credentials:
    """Publisher key on publisher routes, a user token on /v1/me: set after generation, so a
    case that leaves the credential out on purpose (a negative case) is sent without one."""

    def get(self, case: Case, ctx: object) -> str:
        return token_for(USER) if case.path.startswith("/v1/me") else PUBLISHER_KEY

    def set(self, case: Case, data: str, ctx: object) -> None:
        if case.headers is None:
            case.headers = CaseInsensitiveDict()
        case.headers["Authorization"] = f"Bearer {data}"


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_every_answer_is_described_and_none_is_a_server_error(
        case: Case, fuzzed_server: ServerProcess) -> None:
    response = case.call_and_validate(base_url=fuzzed_server.url, checks=CHECKS, timeout=30)
    ANSWERS.setdefault(f"{case.method.upper()} {case.path}", set()).add(response.status_code)


def test_the_fuzzing_got_past_authentication() -> None:
    """Run after the cases above: each operation was answered beyond a 401 at least once,
    so the generated requests reached the routes' own logic."""
    documented = {f"{method.upper()} {path}" for path, operations in DESCRIPTION["paths"].items()
                  if path != "/v1/stream" for method in operations}
    assert len(documented) >= 12 and documented <= set(ANSWERS), documented - set(ANSWERS)
    for operation, statuses in ANSWERS.items():
        assert statuses - {401}, (operation, statuses)
        assert not any(status >= 500 for status in statuses), (operation, statuses)
