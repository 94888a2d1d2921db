"""The OpenAPI schema: generated without warnings, served, and true to the API —
Schemathesis generates valid and invalid requests from it and checks every answer
(no 5xx, responses match the schema, invalid data and missing auth are refused)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from billing import wallets
from generations import idempotency, webhooks
from mochi_site.api_auth import KeyRateThrottle, WorkspaceRateThrottle
from tests.api.conftest import GENERATION, Api, key_for
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def test_the_schema_generates_without_warnings() -> None:
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "/api/v1/generations" in out.getvalue()


def test_the_schema_and_the_docs_are_served_offline(client: Any) -> None:
    schema = client.get("/api/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/workspace", "/api/v1/generations", "/api/v1/ledger"} <= set(paths)
    assert schema.json()["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"/static/drf_spectacular_sidecar/" in docs.content  # no CDN


@pytest.fixture
def api_schema(funded: Team, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Any webhook host "resolves" to a public address: no DNS from the tests.
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: ["93.184.215.14"])
    # Enough credits and requests for every generated example.
    wallets.grant(funded.workspace, 10_000_000, key="schema-tests")
    monkeypatch.setattr(KeyRateThrottle, "THROTTLE_RATES", {"key": "100000/min"})
    monkeypatch.setattr(WorkspaceRateThrottle, "THROTTLE_RATES", {"workspace": "100000/min"})
    key = key_for(funded.membership(funded.alice))
    api = Api(key)
    existing = api.post("/generations", GENERATION).json()["id"]
    # As Django's test client does: a request's end must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    schema.config.generation.update(with_security_parameters=False)
    schema.config.update(parameters={"generation_id": existing})
    yield schema, {"Authorization": f"Bearer {key}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_api_behaves_as_its_schema_says(api_schema: Any) -> None:
    schema, auth = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for operation, mode in itertools.product(operations, modes):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            headers = case.headers or {}
            if idempotency.valid_key(headers.get("Idempotency-Key", "")):
                # A valid key is one request: a second body under it is rightly a 422.
                headers["Idempotency-Key"] = uuid.uuid4().hex
            # A cursor is an opaque token handed out in `next`: a made-up one is refused.
            made_up_cursor = "cursor" in (case.query or {})
            excluded = [positive_data_acceptance] if made_up_cursor else []
            case.call_and_validate(headers=auth, excluded_checks=excluded)

        try:
            check()
        except Unsatisfiable:
            # Nothing in this operation's request can be made invalid (no body, no params).
            assert mode == GenerationMode.NEGATIVE, operation.label
