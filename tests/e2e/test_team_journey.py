"""A newcomer signs up, creates a team and invites a colleague, who joins."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from accounts.models import Membership, Role

PASSWORD = "a long browser password 7"


def _last_link(to: str, pattern: str) -> str:
    for message in reversed(mail.outbox):
        if to in message.to:
            found = re.search(r"https?://\S*" + pattern + r"\S*", message.body)
            if found:
                return found.group(0)
    raise AssertionError(f"no email to {to} with {pattern}")


def _sign_up_and_verify(page: Any, site_url: str, email: str, next_path: str = "") -> None:
    page.goto(site_url + "/accounts/signup/" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Sign Up").click()
    page.get_by_role("heading", name="Verify Your Email Address").wait_for()

    page.goto(_last_link(email, "/accounts/confirm-email/"))
    page.get_by_role("button", name="Confirm").click()


@pytest.mark.django_db(transaction=True)
def test_sign_up_create_a_team_and_invite_a_colleague(
    new_page: Callable[..., Any], site_url: str, artifacts: Path
) -> None:
    page = new_page()
    _sign_up_and_verify(page, site_url, "alice@example.com")
    page.get_by_role("heading", name="alice's workspace").wait_for()
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

    invitation_url = _last_link("bob@example.com", "/invitations/")
    bob_page = new_page(width=390, height=844)  # a phone
    bob_page.goto(invitation_url)
    bob_page.get_by_role("heading", name="Join Acme Films").wait_for()
    bob_page.screenshot(path=artifacts / "3-invitation-signed-out.png", full_page=True)
    _sign_up_and_verify(bob_page, site_url, "bob@example.com")

    bob_page.goto(invitation_url)
    bob_page.get_by_role("button", name="Accept invitation").click()
    bob_page.get_by_text("Welcome to Acme Films").wait_for()
    bob_page.screenshot(path=artifacts / "4-joined.png", full_page=True)

    membership = Membership.objects.get(workspace__name="Acme Films", user__email="bob@example.com")
    assert membership.role == Role.MEMBER

    page.reload()
    page.get_by_role("cell", name="bob@example.com", exact=True).wait_for()
    page.screenshot(path=artifacts / "5-members.png", full_page=True)
