"""GET /metrics: the operator's figures for Prometheus, behind a bearer token."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import Seeded

pytestmark = pytest.mark.django_db

URL = "/metrics"
TOKEN = "metrics-token-" + "x" * 40


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client, authorization: str | None = None) -> Any:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return client.get(URL, **headers)


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by its name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_it_does_not_exist_without_a_token_configured(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert scrape(client).status_code == 404
    assert scrape(client, "Bearer anything").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
)
def test_a_missing_or_wrong_token_is_refused(
    client: Client, token: str, authorization: str | None
) -> None:
    response = scrape(client, authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"mochi_" not in response.content


def test_the_right_token_gets_figures_prometheus_can_parse(
    client: Client, token: str, seeded: Seeded
) -> None:
    response = scrape(client, f"Bearer {token}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    found = samples(response.content.decode())

    assert found[("mochi_queue_tasks", (("state", "ready"),))] == 2
    assert found[("mochi_queue_tasks", (("state", "delayed"),))] == 1
    assert 120 <= found[("mochi_queue_oldest_ready_age_seconds", ())] < 180
    assert found[("mochi_queue_failed_tasks", (("window", "24h"),))] == 1
    assert found[("mochi_generations_unfinished", (("phase", "queued"),))] == 2
    assert found[("mochi_generations_unfinished", (("phase", "processing"),))] == 2
    assert found[("mochi_generations_past_deadline", ())] == 2
    assert found[("mochi_generations_finished", (("phase", "succeeded"), ("window", "30d")))] == 4
    calls = (
        "mochi_upstream_calls",
        (("operation", "submit"), ("outcome", "5xx"), ("window", "1h")),
    )
    assert found[calls] == 1
    assert found[("mochi_upstream_error_ratio", (("window", "1h"),))] == 0.25
    assert found[("mochi_upstream_breaker", (("state", "closed"),))] == 1
    assert found[("mochi_upstream_breaker", (("state", "open"),))] == 0
    assert found[("mochi_upstream_spend_usd", (("window", "today"),))] == pytest.approx(0.16)
    assert found[("mochi_upstream_spend_usd", (("window", "30d"),))] == pytest.approx(0.26)
    assert found[("mochi_upstream_unpriced_generations", (("window", "today"),))] == 1
    assert found[("mochi_credits_captured", (("window", "today"),))] == 64
    assert found[("mochi_credits_captured_usd", (("window", "today"),))] == pytest.approx(0.512)
    assert found[("mochi_margin_usd", (("window", "today"),))] == pytest.approx(0.352)
    assert found[("mochi_ledger_audit_ok", ())] == 0
    assert found[("mochi_ledger_audit_violations", ())] == 1
    assert found[("mochi_ledger_audit_last_run_timestamp_seconds", ())] > 0
    assert found[("mochi_stripe_events_failing", (("state", "given_up"),))] == 1


def test_it_speaks_openmetrics_when_asked(client: Client, token: str) -> None:
    response = client.get(
        URL, HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/openmetrics-text"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


def test_an_empty_system_scrapes_cleanly(client: Client, token: str) -> None:
    found = samples(scrape(client, f"Bearer {token}").content.decode())
    assert found[("mochi_queue_tasks", (("state", "ready"),))] == 0
    assert found[("mochi_upstream_error_ratio", (("window", "1h"),))] == 0
    assert found[("mochi_ledger_audit_ok", ())] == 0
    assert found[("mochi_ledger_audit_last_run_timestamp_seconds", ())] == 0
