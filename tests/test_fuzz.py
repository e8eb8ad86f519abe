"""The API under a generated fuzzer: every operation of the OpenAPI document, called
in-process (WSGI) with an admin key of the default gallery and generated parameters and
bodies, answers anything but a server error.

Bounded and repeatable: a few examples per operation, derandomized, no example database.
"""

from __future__ import annotations

import pytest
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from tests.conftest import make_client

MAX_EXAMPLES = 8
# Operations that would reach outside the process: a webhook subscription checks its URL
# (DNS); they are covered by tests/test_webhooks.py and tests/test_hostile_requests.py.
SKIPPED = {("POST", "/v1/webhooks")}


@pytest.fixture
def fuzz_settings(settings: Settings) -> Settings:
    # No rate limit: the fuzzer sends many requests in a second.
    return settings.model_copy(update={"rate_limit": ""})


def test_no_operation_answers_a_server_error(
    fuzz_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client: FlaskClient = make_client(fuzz_settings, sessions)
    app = client.application
    headers = {"Authorization": client.environ_base["HTTP_AUTHORIZATION"]}
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operations.append(result.ok())
    tried = 0
    statuses: list[int] = []
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            statuses.append(response.status_code)

        fuzz()
        tried += 1
    assert tried >= 20  # the whole API, not an empty document
    # The key was accepted: the fuzzer reached the routes, not only the key check.
    assert sum(status not in (401, 403) for status in statuses) > len(statuses) // 2
