"""The operator's page /ops/: who may see it, and the figures it shows."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from billing.models import AuditRun
from generations import gate
from generations.models import Phase, UpstreamGate
from ops import figures
from tests.conftest import Team, make_user
from tests.generations.helpers import submit
from tests.ops.conftest import Seeded, delivered, place

pytestmark = pytest.mark.django_db

URL = "/ops/"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cell(html: str, testid: str, attribute: str) -> str:
    """The text of the element with `attribute` inside the table marked `testid`."""
    table = html.split(f'data-testid="{testid}"', 1)[1].split("</table>", 1)[0]
    match = re.search(rf"{attribute}[^>]*>([^<]*)<", table)
    assert match, f"{attribute} not in {testid}"
    return match.group(1).strip()


# --- Access ------------------------------------------------------------------------------


def test_a_signed_out_visitor_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={URL}"


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "dave"])
def test_it_does_not_exist_for_anyone_but_staff(team: Team, who: str) -> None:
    assert signed_in(team.persona(who)).get(URL).status_code == 404


def test_a_deactivated_staff_account_is_signed_out(operator: User) -> None:
    client = signed_in(operator)
    User.objects.filter(pk=operator.pk).update(is_active=False)
    assert client.get(URL).status_code == 302


def test_staff_see_it_and_find_it_in_the_header_and_the_admin(operator: User) -> None:
    client = signed_in(operator)
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    header = client.get(reverse("pricing")).content.decode()
    assert f'href="{URL}"' in header
    admin_index = client.get(reverse("admin:index")).content.decode()
    assert f'<a href="{URL}">Operations</a>' in admin_index


def test_the_header_does_not_link_it_for_customers() -> None:
    html = signed_in(make_user("erin@example.com")).get(reverse("pricing")).content.decode()
    assert f'href="{URL}"' not in html


def test_it_answers_only_get(operator: User) -> None:
    assert signed_in(operator).post(URL).status_code == 405


# --- Figures -----------------------------------------------------------------------------


def test_it_shows_the_queue(operator: User, seeded: Seeded) -> None:
    html = signed_in(operator).get(URL).content.decode()
    assert re.search(r'data-testid="queue-ready">2<', html)
    assert re.search(r'data-testid="queue-delayed">1<', html)
    # The oldest ready task has waited two minutes (and a moment).
    assert re.search(r'data-testid="queue-oldest">2 min \d+ s<', html)
    queue = figures.queue_figures(timezone.now())
    assert 120 <= queue.oldest_ready_seconds < 180
    assert queue.failed_tasks == {"today": 1, "24h": 1, "30d": 1}


def test_it_shows_generations_by_phase_and_those_past_their_deadline(
    operator: User, seeded: Seeded
) -> None:
    html = signed_in(operator).get(URL).content.decode()
    assert cell(html, "unfinished", 'data-phase="queued"') == "2"
    assert cell(html, "unfinished", 'data-phase="processing"') == "2"
    assert cell(html, "unfinished", 'data-phase="downloading"') == "1"
    assert cell(html, "unfinished", 'data-phase="submitting"') == "0"
    assert "of which <strong>2</strong> past the deadline" in html
    assert "2 unfinished generations past the deadline" in html
    shown = figures.generation_figures(timezone.now())
    assert shown.finished["today"] == {"succeeded": 3, "failed": 1, "canceled": 1}
    assert shown.finished["30d"] == {"succeeded": 4, "failed": 1, "canceled": 1}


def test_it_shows_upstream_spend_against_credits_captured(operator: User, seeded: Seeded) -> None:
    html = signed_in(operator).get(URL).content.decode()
    today = html.split('data-window="today"', 2)[2].split("</tr>", 1)[0]
    # Spend: A + B + the failed E (the upstream charged for it); D's cost is unknown.
    assert "$0.16" in today
    assert "+1 unpriced" in today
    # Captured: A, B, C and D at 16 credits, worth $0.008 each at the cheapest pack.
    assert "64 <small" in today
    assert "$0.512" in today
    assert "$0.352" in today
    month = figures.money_figures(timezone.now())[2]
    assert month.spend_usd == Decimal("0.26")
    assert month.captured_credits == 64
    assert month.captures == 4


def test_it_shows_error_rates_and_the_breaker(operator: User, seeded: Seeded) -> None:
    client = signed_in(operator)
    html = client.get(URL).content.decode()
    assert re.search(r'data-testid="error-rate-1h">25.0 %<', html)
    assert cell(html, "calls-1h", 'data-outcome="ok"') == "3"
    assert cell(html, "calls-1h", 'data-outcome="5xx"') == "1"
    assert re.search(r'data-testid="breaker">Closed<', html)
    assert 'data-testid="breaker-alert"' not in html

    UpstreamGate.objects.update_or_create(
        id=1,
        defaults={
            "breaker": UpstreamGate.Breaker.OPEN,
            "breaker_reason": "HTTP 406: not enough credits",
            "breaker_opened_at": timezone.now() - timedelta(minutes=3),
            "breaker_probe_at": timezone.now() + timedelta(minutes=1),
        },
    )
    html = client.get(URL).content.decode()
    assert re.search(r'data-testid="breaker">Open<', html)
    assert "The upstream breaker is open." in html
    assert "HTTP 406: not enough credits" in html


def test_it_shows_the_last_audit_and_failing_stripe_events(operator: User, seeded: Seeded) -> None:
    html = signed_in(operator).get(URL).content.decode()
    assert "The last ledger audit found 1 violation." in html
    assert "<code>hold x</code>" in html
    assert re.search(r"<strong>1</strong> no longer retried", html)


def test_an_empty_system_reads_zero_everywhere(operator: User) -> None:
    html = signed_in(operator).get(URL).content.decode()
    assert re.search(r'data-testid="queue-ready">0<', html)
    assert "The audit has not run yet" in html
    assert re.search(r'data-testid="error-rate-1h">—<', html)


def test_it_takes_the_same_few_queries_whatever_the_data(operator: User, seeded: Seeded) -> None:
    client = signed_in(operator)
    client.get(URL)  # warm the session and content-type caches
    with CaptureQueriesContext(connection) as seeded_run:
        assert client.get(URL).status_code == 200
    for _ in range(5):  # more of everything
        delivered(seeded.workspace, cost_usd="0.01", finished_at=timezone.now())
        place(submit(seeded.workspace), Phase.PROCESSING, submit_started_at=timezone.now())
        gate.count_call("status", "timeout")
        AuditRun.objects.create(ok=True)
    with CaptureQueriesContext(connection) as bigger_run:
        assert client.get(URL).status_code == 200
    assert len(bigger_run) == len(seeded_run)
    assert len(seeded_run) <= 14, [q["sql"] for q in seeded_run.captured_queries]
