"""A newcomer signs up, creates a team and invites a colleague, who joins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from accounts.models import Membership, Role
from tests.e2e.flows import last_link, sign_up_and_verify


@pytest.mark.django_db(transaction=True)
def test_sign_up_create_a_team_and_invite_a_colleague(
    new_page: Callable[..., Any], site_url: str, artifacts: Path
) -> None:
    page = new_page()
    sign_up_and_verify(page, site_url, "alice@example.com")
    page.get_by_role("heading", name="Create a video").wait_for()
    page.screenshot(path=artifacts / "1-personal-workspace.png", full_page=True)

    page.locator(".workspace-switcher summary").click()
    page.get_by_role("link", name="+ New team").click()
    page.get_by_label("Team name").fill("Acme Films")
    page.get_by_role("button", name="Create team").click()
    page.get_by_text("Acme Films is ready").wait_for()

    page.get_by_label("Email address").fill("bob@example.com")
    page.get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Send invitation").click()
    page.get_by_text("Invitation sent to bob@example.com").wait_for()
    page.screenshot(path=artifacts / "2-invitation-sent.png", full_page=True)

    invitation_url = last_link("bob@example.com", "/invitations/")
    bob_page = new_page(width=390, height=844)  # a phone
    bob_page.goto(invitation_url)
    bob_page.get_by_role("heading", name="Join Acme Films").wait_for()
    bob_page.screenshot(path=artifacts / "3-invitation-signed-out.png", full_page=True)
    sign_up_and_verify(bob_page, site_url, "bob@example.com")

    bob_page.goto(invitation_url)
    bob_page.get_by_role("button", name="Accept invitation").click()
    bob_page.get_by_text("Welcome to Acme Films").wait_for()
    bob_page.screenshot(path=artifacts / "4-joined.png", full_page=True)

    membership = Membership.objects.get(workspace__name="Acme Films", user__email="bob@example.com")
    assert membership.role == Role.MEMBER

    page.reload()
    page.get_by_role("cell", name="bob@example.com", exact=True).wait_for()
    page.screenshot(path=artifacts / "5-members.png", full_page=True)
