"""Property tests against the published OpenAPI schema (schemathesis's Python API).

schemathesis reads ``/openapi.json`` from the running server and generates requests
that fit it, a bounded number per operation; each is sent with the API key, and the
answer must not be a 5xx and must be one the schema declares (status, content type,
headers, body).

The operations are driven through ``operation.as_strategy()`` and hypothesis directly
rather than schemathesis's pytest plugin, whose ``parametrize`` does not run on this
project's pytest version.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service.conftest import API_KEY, RunningServer  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
OPERATIONS = [("POST", "/encode"), ("POST", "/search"), ("GET", "/healthz"), ("GET", "/metrics")]
EXAMPLES = 25


@pytest.fixture(scope="session")
def service_schema(server: RunningServer):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def test_the_schema_publishes_every_operation(service_schema) -> None:  # type: ignore[no-untyped-def]
    published = {(op.method.upper(), op.path) for op in (result.ok() for result in service_schema.get_all_operations())}
    assert published == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_api_keeps_its_published_schema(service_schema, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    operation = service_schema[path][method]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    statuses: list[int] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def check(case) -> None:  # type: ignore[no-untyped-def]
        statuses.append(case.call_and_validate(headers=headers, checks=CHECKS, timeout=60).status_code)

    check()
    # Operations with a body got many distinct requests (a GET without parameters has one form).
    assert len(statuses) >= (1 if method == "GET" else EXAMPLES // 2), statuses
