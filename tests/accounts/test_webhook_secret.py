"""The settings page's Webhooks section: reveal the signing secret on request, rotate it
with a day of overlap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from tests.conftest import Team

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "erin", "bob", "carol", "dave"]  # owner, admin, member, viewer, outsider


def _url(workspace: Workspace, name: str) -> str:
    return reverse(name, args=[workspace.slug])


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(
    ("name", "ok"), [("webhook_secret_reveal", 200), ("webhook_secret_rotate", 302)]
)
def test_access(client: Client, team: Team, persona: str, name: str, ok: int) -> None:
    before = team.workspace.webhook_secret
    client.force_login(team.persona(persona))
    response = client.post(_url(team.workspace, name))
    expected = {"alice": ok, "erin": ok, "bob": 403, "carol": 403, "dave": 404}[persona]
    assert response.status_code == expected
    if expected != ok:
        assert before not in response.content.decode()
        team.workspace.refresh_from_db()
        assert team.workspace.webhook_secret == before


@pytest.mark.parametrize("name", ["webhook_secret_reveal", "webhook_secret_rotate"])
def test_actions_refuse_get(client: Client, team: Team, name: str) -> None:
    client.force_login(team.alice)
    response = client.get(_url(team.workspace, name))
    assert response.status_code == 405
    assert team.workspace.webhook_secret not in response.content.decode()


@pytest.mark.parametrize("name", ["webhook_secret_reveal", "webhook_secret_rotate"])
def test_posts_need_the_csrf_token(team: Team, name: str) -> None:
    before = team.workspace.webhook_secret
    client = Client(enforce_csrf_checks=True)
    client.force_login(team.alice)
    response = client.post(_url(team.workspace, name), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert before not in response.content.decode()
    team.workspace.refresh_from_db()
    assert team.workspace.webhook_secret == before


@pytest.mark.parametrize("persona", ["alice", "erin", "bob", "carol"])
def test_the_settings_page_never_contains_the_secret(
    client: Client, team: Team, persona: str
) -> None:
    client.force_login(team.persona(persona))
    response = client.get(_url(team.workspace, "workspace_settings"))
    assert response.status_code == 200
    page = response.content.decode()
    assert team.workspace.webhook_secret not in page
    assert ("Reveal secret" in page) is (persona in ("alice", "erin"))
    assert ("Rotate secret" in page) is (persona in ("alice", "erin"))


def test_the_section_explains_how_deliveries_are_signed(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    page = client.get(_url(team.workspace, "workspace_settings")).content.decode()
    assert '<h2 id="webhooks-heading">Webhooks</h2>' in page
    assert 'href="https://www.standardwebhooks.com/"' in page
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert f"<code>{header}</code>" in page
    assert "HMAC-SHA256" in page
    assert 'href="/api/docs/"' in page


def test_htmx_reveal_answers_only_the_secret_fragment(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    response = client.post(_url(team.workspace, "webhook_secret_reveal"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<div id="webhook-secret"')
    assert f'value="{team.workspace.webhook_secret}"' in fragment
    assert 'data-copy="#webhook-secret-value"' in fragment
    assert "<html" not in fragment


def test_reveal_without_javascript_shows_the_page_with_the_secret(
    client: Client, team: Team
) -> None:
    client.force_login(team.alice)
    page = client.get(_url(team.workspace, "workspace_settings")).content.decode()
    assert 'hx-post="/w/acme-films/settings/webhook-secret/"' in page
    assert 'action="/w/acme-films/settings/webhook-secret/"' in page

    response = client.post(_url(team.workspace, "webhook_secret_reveal"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert "<h1>Settings</h1>" in page
    assert f'value="{team.workspace.webhook_secret}"' in page
    assert " style=" not in page
    # Asking again is a new request; the page itself still does not carry it.
    reloaded = client.get(_url(team.workspace, "workspace_settings")).content.decode()
    assert team.workspace.webhook_secret not in reloaded


def test_rotating_keeps_the_old_secret_signing_for_24_hours(client: Client, team: Team) -> None:
    old = team.workspace.webhook_secret
    client.force_login(team.erin)
    page = client.get(_url(team.workspace, "workspace_settings")).content.decode()
    assert 'data-confirm="Rotate the webhook signing secret? The current secret keeps signing' in (
        page
    )
    assert 'data-testid="webhook-overlap"' not in page

    started = timezone.now()
    response = client.post(_url(team.workspace, "webhook_secret_rotate"), follow=True)
    page = response.content.decode()
    assert "A new signing secret is in place" in page

    workspace = Workspace.objects.get(pk=team.workspace.pk)
    assert workspace.webhook_secret.startswith("whsec_")
    assert workspace.webhook_secret != old
    assert workspace.previous_webhook_secret == old
    expires = workspace.previous_webhook_secret_expires_at
    assert expires is not None
    assert started + timedelta(hours=24) <= expires <= timezone.now() + timedelta(hours=24)
    assert workspace.webhook_signing_secrets() == [workspace.webhook_secret, old]
    # The page says until when the old one signs, and never shows either secret.
    assert 'data-testid="webhook-overlap"' in page
    assert f'datetime="{expires:%Y-%m-%dT%H:%M:%S}' in page
    assert old not in page
    assert workspace.webhook_secret not in page


def test_rotating_again_during_the_overlap_warns_it_ends(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    client.post(_url(team.workspace, "webhook_secret_rotate"))
    page = client.get(_url(team.workspace, "workspace_settings")).content.decode()
    assert "and the one before it stops signing now" in page


def test_once_the_overlap_is_over_the_page_no_longer_mentions_it(
    client: Client, team: Team
) -> None:
    client.force_login(team.alice)
    client.post(_url(team.workspace, "webhook_secret_rotate"))
    Workspace.objects.filter(pk=team.workspace.pk).update(
        previous_webhook_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    page = client.get(_url(team.workspace, "workspace_settings")).content.decode()
    assert 'data-testid="webhook-overlap"' not in page
    workspace = Workspace.objects.get(pk=team.workspace.pk)
    assert workspace.webhook_signing_secrets() == [workspace.webhook_secret]


def test_a_personal_workspace_has_webhooks_and_keys_but_no_delete(
    client: Client, team: Team
) -> None:
    personal = team.dave.personal_workspace
    client.force_login(team.dave)
    page = client.get(_url(personal, "workspace_settings")).content.decode()
    assert "Reveal secret" in page
    assert "cannot be deleted" in page
    assert "Delete this team" not in page
    assert f'href="{_url(personal, "api_keys")}"' in page  # in the workspace navigation
    assert client.get(_url(personal, "api_keys")).status_code == 200
    response = client.post(_url(personal, "webhook_secret_reveal"), HTTP_HX_REQUEST="true")
    assert personal.webhook_secret in response.content.decode()
