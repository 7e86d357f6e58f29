"""Whatever a client sends, the API answers below 500: a property-based fuzz of every
operation in its OpenAPI schema (schemathesis), against `ulak serve` on SQLite and
PostgreSQL, with inputs that fit the schema and inputs that break it."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.support import Server, create_store_with_cli


@schemathesis.serializer("message/rfc822")
def raw_email(ctx: Any, value: Any) -> bytes:
    """`POST /v1/inbound/email` takes a report as received: any text stands for one."""
    return value.encode() if isinstance(value, str) else str(value).encode()


@pytest.fixture
def server_env(database_url: str) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": database_url, "ULAK_LOG_LEVEL": "warning"}


@pytest.fixture
def shop(server_env: dict[str, str]) -> dict[str, Any]:
    return create_store_with_cli(server_env)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_server_error(
    mode: GenerationMode, shop: dict[str, Any], server: Server
) -> None:
    server.start()
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    auth = {"Authorization": f"Bearer {shop['api_key']}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} >= {"POST /v1/events", "GET /v1/customers/{ref}"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not list(operation.body):
            # Any string is a valid customer ref: only a body has a schema to break.
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def answered(case: Any) -> None:
            response = case.call(headers=auth)
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])

        answered()
