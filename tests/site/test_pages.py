from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.access import CURRENT_WORKSPACE_SESSION_KEY
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def test_signed_out_visitors_see_the_landing_page(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert b"Turn a sentence into a video" in response.content
    assert b"/accounts/signup/" in response.content


def test_pricing_states_the_credit_price(client: Client) -> None:
    response = client.get("/pricing/")
    assert response.status_code == 200
    assert b"One credit costs about one US cent" in response.content


def test_pricing_lists_the_credit_packs_with_a_way_to_buy(client: Client, team: Team) -> None:
    page = client.get("/pricing/").content.decode()
    for text in ("Starter", "$5.00", "2,000 credits", "$18.00", "10,000 credits", "$80.00"):
        assert text in page
    assert '<a role="button" href="/accounts/signup/">Buy Starter</a>' in page

    client.force_login(team.erin)  # an admin of the team she last opened
    client.get(f"/w/{team.workspace.slug}/")
    page = client.get("/pricing/").content.decode()
    assert f'href="/w/{team.workspace.slug}/billing/">Buy Pro</a>' in page

    client.force_login(team.bob)  # only a member of the team: his own workspace
    client.get(f"/w/{team.workspace.slug}/")
    page = client.get("/pricing/").content.decode()
    assert f'href="/w/{team.bob.personal_workspace.slug}/billing/"' in page


def test_home_returns_a_user_to_the_workspace_they_last_opened(client: Client, team: Team) -> None:
    client.force_login(team.bob)
    assert client.get("/")["Location"] == f"/w/{team.bob.personal_workspace.slug}/"
    client.get(f"/w/{team.workspace.slug}/")
    assert client.session[CURRENT_WORKSPACE_SESSION_KEY] == team.workspace.slug
    assert client.get("/")["Location"] == f"/w/{team.workspace.slug}/"


def test_the_header_switcher_lists_the_users_workspaces(client: Client, team: Team) -> None:
    client.force_login(team.bob)
    page = client.get(f"/w/{team.workspace.slug}/").content.decode()
    assert "Acme Films" in page
    assert f'href="/w/{team.bob.personal_workspace.slug}/"' in page


def test_unknown_pages_get_the_friendly_404(client: Client) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"We couldn't find that page" in response.content


@pytest.mark.parametrize("path", ["/", "/pricing/", "/accounts/login/", "/accounts/signup/"])
def test_pages_are_served_under_a_strict_content_security_policy(client: Client, path: str) -> None:
    response = client.get(path)
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy
    html = response.content.decode()
    # Nothing the policy would block: no inline scripts or style attributes.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html
