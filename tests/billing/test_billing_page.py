"""The billing page: who may see it, balance, purchases, usage, the ledger and its CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from billing import statement, wallets
from billing.models import Code, Transfer, receivable_account_id, wallet_account_id
from tests.billing.conftest import buy
from tests.conftest import Team
from tests.support.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "erin", "bob", "carol", "dave"]  # owner, admin, member, viewer, outsider
RANK = {"alice": Role.OWNER, "erin": Role.ADMIN, "bob": Role.MEMBER, "carol": Role.VIEWER}

# (method, url name, data, status for those allowed); every one needs the admin role.
CASES: list[tuple[str, str, dict[str, str], int]] = [
    ("GET", "billing", {}, 200),
    ("GET", "billing_ledger_csv", {}, 200),
    ("POST", "billing_checkout", {"pack": "starter"}, 303),
    ("GET", "billing_success", {"session_id": "cs_unknown"}, 302),
    ("GET", "billing_cancel", {}, 302),
    ("POST", "billing_portal", {}, 302),
]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("method", "name", "data", "ok"), CASES, ids=[c[1] for c in CASES])
def test_access(
    client: Client,
    team: Team,
    fake_stripe: FakeStripe,
    persona: str,
    method: str,
    name: str,
    data: dict[str, str],
    ok: int,
) -> None:
    client.force_login(team.persona(persona))
    url = reverse(name, args=[team.workspace.slug])
    response = client.get(url, data) if method == "GET" else client.post(url, data)
    if persona == "dave":
        expected = 404
    elif RANK[persona].at_least(Role.ADMIN):
        expected = ok
    else:
        expected = 403
    assert response.status_code == expected
    if expected != ok:
        assert fake_stripe.state.requests == []


@pytest.mark.parametrize("name", ["billing_checkout", "billing_portal"])
def test_actions_refuse_get(client: Client, team: Team, name: str) -> None:
    client.force_login(team.alice)
    assert client.get(reverse(name, args=[team.workspace.slug])).status_code == 405


def test_signed_out_visitors_are_sent_to_login(client: Client, team: Team) -> None:
    response = client.get(reverse("billing", args=[team.workspace.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_workspace_navigation_links_billing_for_those_who_manage(
    client: Client, team: Team
) -> None:
    billing_link = f'href="/w/{team.workspace.slug}/billing/"'
    client.force_login(team.erin)
    assert billing_link in client.get(f"/w/{team.workspace.slug}/").content.decode()
    client.force_login(team.bob)
    assert billing_link not in client.get(f"/w/{team.workspace.slug}/").content.decode()


def test_the_page_shows_balance_packs_purchases_and_usage(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    wallets.grant(team.workspace, 1000, key="welcome")
    wallets.hold(team.workspace, 39, key="generation:b1", member_id=team.bob.pk)
    wallets.hold(team.workspace, 60, key="generation:b2", member_id=team.bob.pk)
    wallets.capture(wallets.hold_id("generation:b2"), 45, key="generation:b2")
    client.force_login(team.alice)
    buy(client, team.workspace, "pro")

    response = client.get(f"/w/{team.workspace.slug}/billing/")
    page = response.content.decode()
    assert response.context["balance"] == wallets.Balance(available=916, held=39, owed=0)
    assert ">916<" in page
    assert ">39<" in page
    for text in ("$5.00", "$18.00", "$80.00", "10,000 credits", "Save 20%"):
        assert text in page
    assert "Checkout started" in page  # the pending purchase
    usage = {u.membership.user.email: u for u in response.context["usage"]}
    assert (usage["bob@example.com"].captured, usage["bob@example.com"].held) == (45, 39)
    assert usage["carol@example.com"].total == 0
    wallet = wallet_account_id(team.workspace.pk)
    assert usage["bob@example.com"].total == wallets.member_spend_this_month(wallet, team.bob.pk)


def test_the_page_lets_the_browser_post_to_stripes_hosted_pages_only_here(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    policy = client.get(f"/w/{team.workspace.slug}/billing/")["Content-Security-Policy"]
    assert f"form-action 'self' {fake_stripe.url}" in policy
    assert "'unsafe-inline'" not in policy
    other = client.get(f"/w/{team.workspace.slug}/members/")["Content-Security-Policy"]
    assert fake_stripe.url not in other


def _history(team: Team, rows: int) -> None:
    """`rows` transfers (grants and holds) on the team's wallet, by several members."""
    members = [team.alice, team.erin, team.bob]
    wallets.grant(team.workspace, 10 * rows, key=f"fund:{rows}")
    for n in range(rows - 1):
        key = f"generation:{rows}:{n}"
        member = members[n % 3]
        if n % 3 == 0:
            wallets.grant(team.workspace, 5, key=f"grant:{rows}:{n}")
        else:
            wallets.hold(team.workspace, 7, key=key, member_id=member.pk)


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        assert response.status_code == 200
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    return len(captured)


def test_the_page_uses_a_fixed_number_of_queries_for_10_and_for_500_rows(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    buy(client, team.workspace)
    url = f"/w/{team.workspace.slug}/billing/"
    client.get(url)  # warm up the session
    _history(team, 10)
    small = _queries(client, url)
    _history(team, 490)
    assert Transfer.objects.touching(wallet_account_id(team.workspace.pk)).count() == 500
    large = _queries(client, url)
    assert large == small, (small, large)
    assert _queries(client, url + "?page=5&code=hold") == small


def test_the_csv_export_uses_a_fixed_number_of_queries(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    url = f"/w/{team.workspace.slug}/billing/ledger.csv"
    client.get(url)
    _history(team, 10)
    small = _queries(client, url)
    _history(team, 490)
    assert _queries(client, url) == small


def test_the_ledger_is_newest_first_and_paginated(client: Client, team: Team) -> None:
    _history(team, 120)
    client.force_login(team.alice)
    first = client.get(f"/w/{team.workspace.slug}/billing/")
    entries = first.context["entries"]
    assert len(entries) == 50
    times = [e.transfer.created_at for e in entries]
    assert times == sorted(times, reverse=True)
    assert "Page 1 of 3" in first.content.decode()
    last = client.get(f"/w/{team.workspace.slug}/billing/?page=3")
    assert len(last.context["entries"]) == 20


def test_the_ledger_filters_by_kind_and_date(client: Client, team: Team) -> None:
    forty_days_ago = timezone.now() - timedelta(days=40)
    with mock.patch("billing.ledger.timezone.now", return_value=forty_days_ago):
        wallets.grant(team.workspace, 100, key="old")
    wallets.grant(team.workspace, 50, key="new", code=Code.ADJUSTMENT)
    wallets.hold(team.workspace, 10, key="generation:x", member_id=team.alice.pk)
    client.force_login(team.alice)
    url = f"/w/{team.workspace.slug}/billing/"

    by_kind = client.get(url + "?code=hold")
    assert [e.transfer.code for e in by_kind.context["entries"]] == ["hold"]
    today = timezone.now().date()
    recent = client.get(url, {"since": today - timedelta(days=1), "until": today})
    assert sorted(e.transfer.code for e in recent.context["entries"]) == ["adjustment", "hold"]
    old_day = forty_days_ago.date()
    old = client.get(url, {"since": old_day, "until": old_day})
    assert [e.transfer.reference for e in old.context["entries"]] == ["old"]
    nothing = client.get(url + "?code=dispute")
    assert "No ledger entries match these filters" in nothing.content.decode()


def test_bad_filters_are_explained_and_ignored(client: Client, team: Team) -> None:
    wallets.grant(team.workspace, 100, key="some")
    client.force_login(team.alice)
    response = client.get(
        f"/w/{team.workspace.slug}/billing/?since=2026-05-02&until=2026-05-01&code=nope"
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "The start date is after the end date." in page
    assert "Select a valid choice" in page
    assert len(response.context["entries"]) == 1
    csv_response = client.get(f"/w/{team.workspace.slug}/billing/ledger.csv?since=yesterday")
    assert csv_response.status_code == 400
    assert b"Enter a valid date" in csv_response.content


def test_the_csv_export_streams_the_filtered_ledger(client: Client, team: Team) -> None:
    wallets.grant(team.workspace, 100, key="g1", reference="=HYPERLINK(evil)")
    wallets.hold(team.workspace, 39, key="generation:a", member_id=team.bob.pk)
    wallets.capture(wallets.hold_id("generation:a"), 30, key="generation:a")
    client.force_login(team.alice)

    response = client.get(f"/w/{team.workspace.slug}/billing/ledger.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment;" in response["Content-Disposition"]
    assert response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["kind"] for r in rows] == ["capture", "hold", "grant"]
    capture, hold, grant = rows
    assert (capture["amount"], capture["available_change"], capture["held_change"]) == (
        "30",
        "9",
        "-39",
    )
    assert (hold["available_change"], hold["held_change"], hold["member"]) == (
        "-39",
        "39",
        "bob@example.com",
    )
    assert grant["reference"] == "'=HYPERLINK(evil)"  # never a live formula

    filtered = client.get(f"/w/{team.workspace.slug}/billing/ledger.csv?code=hold")
    lines = b"".join(filtered.streaming_content).decode().strip().splitlines()
    assert len(lines) == 2
    assert ",hold," in lines[1]


def test_entries_add_up_to_the_balance(team: Team) -> None:
    """Whatever happened, the changes shown sum to the balance shown."""
    workspace = team.workspace
    wallets.grant(workspace, 300, key="g")
    wallets.hold(workspace, 100, key="generation:1", member_id=team.bob.pk)
    wallets.capture(wallets.hold_id("generation:1"), 60, key="generation:1")
    wallets.hold(workspace, 50, key="generation:2", member_id=team.bob.pk)
    wallets.release(wallets.hold_id("generation:2"), key="generation:2")
    wallets.hold(workspace, 20, key="generation:3", member_id=team.bob.pk)
    wallets.clawback(workspace, 500, key="refund:x", code=Code.REFUND)  # owes
    wallets.grant(workspace, 400, key="pack", code=Code.PURCHASE)  # settles
    wallets.give_back(workspace, 30, key="dispute:y", code=Code.DISPUTE_WON)

    entries = statement.entries(statement.ledger_rows(workspace), workspace.pk)
    balance = wallets.balance(workspace)
    assert sum(e.available for e in entries) == balance.available
    assert sum(e.held for e in entries) == balance.held
    assert sum(e.owed for e in entries) == balance.owed
    accounts = {wallet_account_id(workspace.pk), receivable_account_id(workspace.pk)}
    assert all(
        {e.transfer.debit_account_id, e.transfer.credit_account_id} & accounts for e in entries
    )


def test_another_workspaces_transfers_never_appear(client: Client, team: Team) -> None:
    wallets.grant(team.dave.personal_workspace, 77, key="dave-only")
    client.force_login(team.alice)
    response = client.get(f"/w/{team.workspace.slug}/billing/")
    assert all(e.transfer.reference != "dave-only" for e in response.context["entries"])
    csv_body = b"".join(
        client.get(f"/w/{team.workspace.slug}/billing/ledger.csv").streaming_content
    )
    assert b"dave-only" not in csv_body


def test_usage_by_member_counts_like_the_monthly_caps(team: Team) -> None:
    """Captures of earlier months do not count; holds count until resolved."""
    wallets.grant(team.workspace, 1000, key="fund")
    last_month = timezone.now().replace(day=1) - timedelta(days=3)
    with mock.patch("billing.ledger.timezone.now", return_value=last_month):
        wallets.hold(team.workspace, 100, key="generation:old", member_id=team.bob.pk)
        wallets.capture(wallets.hold_id("generation:old"), 100, key="generation:old")
    wallets.hold(team.workspace, 30, key="generation:now", member_id=team.bob.pk)
    wallets.capture(wallets.hold_id("generation:now"), 30, key="generation:now")
    wallets.hold(team.workspace, 20, key="generation:held", member_id=team.bob.pk)
    wallets.hold(team.workspace, 50, key="generation:gone", member_id=team.erin.pk)
    wallets.release(wallets.hold_id("generation:gone"), key="generation:gone")

    usage = {u.membership.user_id: u for u in statement.member_usage(team.workspace)}
    assert (usage[team.bob.pk].captured, usage[team.bob.pk].held) == (30, 20)
    assert usage[team.erin.pk].total == 0
    wallet = wallet_account_id(team.workspace.pk)
    for user in (team.alice, team.erin, team.bob, team.carol):
        assert usage[user.pk].total == wallets.member_spend_this_month(wallet, user.pk)
