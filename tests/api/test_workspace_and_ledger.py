"""GET /api/v1/workspace, GET /api/v1/ledger, GET/POST /api/v1/webhook-secret."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from accounts.models import Role, Workspace
from billing import wallets
from tests.api.conftest import GENERATION, Api, key_acting_as
from tests.conftest import Team
from tests.generations.helpers import finished

pytestmark = pytest.mark.django_db


def test_workspace_shows_the_balance(owner_api: Api, funded: Team, settings: object) -> None:
    owner_api.post("/generations", GENERATION)  # holds 16
    body = owner_api.get("/workspace").json()
    assert body == {
        "slug": funded.workspace.slug,
        "name": "Acme Films",
        "available": 1000 - 16,
        "pending": 16,
        "max_running": 4,
    }


def test_ledger_lists_the_workspaces_transfers_newest_first(owner_api: Api, funded: Team) -> None:
    done = finished(funded.workspace, funded.alice)
    entries = owner_api.get("/ledger").json()["results"]
    kinds = [e["kind"] for e in entries]
    assert kinds == ["capture", "hold", "grant"]
    capture, hold, grant = entries
    assert grant["available_change"] == 1000
    assert hold["available_change"] == -done.cost
    assert hold["held_change"] == done.cost
    assert capture["held_change"] == -done.cost
    assert capture["available_change"] == 0
    assert capture["member"] == "alice@example.com"
    assert set(grant) == {
        "id",
        "created_at",
        "kind",
        "description",
        "phase",
        "amount",
        "available_change",
        "held_change",
        "owed_change",
        "member",
        "reference",
    }


def test_ledger_pages_and_filters(owner_api: Api, funded: Team) -> None:
    for n in range(3):
        wallets.grant(funded.workspace, 10 + n, key=f"extra-{n}")
    page = owner_api.get("/ledger", limit=2, kind="grant").json()
    assert [e["amount"] for e in page["results"]] == [12, 11]
    cursor = parse_qs(urlsplit(page["next"]).query)["cursor"][0]
    rest = owner_api.get("/ledger", limit=2, kind="grant", cursor=cursor).json()
    assert [e["amount"] for e in rest["results"]] == [10, 1000]
    assert owner_api.get("/ledger", kind="nonsense").status_code == 400


def test_ledger_never_shows_another_workspaces_transfers(owner_api: Api, funded: Team) -> None:
    dave = Workspace.objects.get(personal_for=funded.dave)
    wallets.grant(dave, 77, key="daves")
    amounts = [e["amount"] for e in owner_api.get("/ledger").json()["results"]]
    assert 77 not in amounts


def test_owners_and_admins_read_and_rotate_the_webhook_secret(owner_api: Api, funded: Team) -> None:
    secret = owner_api.get("/webhook-secret").json()["secret"]
    assert secret == funded.workspace.webhook_secret
    assert secret.startswith("whsec_")
    rotated = owner_api.post("/webhook-secret").json()["secret"]
    assert rotated != secret
    funded.workspace.refresh_from_db()
    assert funded.workspace.webhook_secret == rotated
    assert funded.workspace.previous_webhook_secret == secret
    overlap = funded.workspace.previous_webhook_secret_expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < overlap <= timedelta(hours=24)
    assert funded.workspace.webhook_signing_secrets() == [rotated, secret]


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_cannot_see_the_webhook_secret(funded: Team, role: Role) -> None:
    api = Api(key_acting_as(funded, role))
    for response in (api.get("/webhook-secret"), api.post("/webhook-secret")):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    before = funded.workspace.webhook_secret
    funded.workspace.refresh_from_db()
    assert funded.workspace.webhook_secret == before
