from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Role
from tests.conftest import Commit, Team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(client: Client, commit: Commit) -> Client:
    """The test client, with invitation emails sent as each request commits."""
    original = client.post

    def post(*args: Any, **kwargs: Any) -> Any:
        with commit():
            return original(*args, **kwargs)

    client.post = post  # type: ignore[method-assign]
    return client


def _invite(client: Client, team: Team, email: str, role: str = "member") -> str:
    """Invite as alice through the members page; return the emailed accept path."""
    client.force_login(team.alice)
    response = client.post(
        reverse("member_invite", args=[team.workspace.slug]), {"email": email, "role": role}
    )
    assert response.status_code == 302
    match = re.search(r"http://testserver(/invitations/[^\s]+/)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    client.logout()
    return match.group(1)


def test_it_emails_a_single_use_link_and_stores_only_its_hash(client: Client, team: Team) -> None:
    path = _invite(client, team, "New.Person@Example.com", "viewer")
    invitation = Invitation.objects.get()
    token = path.strip("/").split("/")[-1]
    assert invitation.email == "new.person@example.com"
    assert invitation.role == Role.VIEWER
    assert token not in invitation.token_hash
    assert invitation.token_hash == Invitation.hash_token(token)
    assert mail.outbox[-1].to == ["new.person@example.com"]
    assert "Acme Films" in mail.outbox[-1].subject


def test_a_user_whose_verified_email_matches_accepts_with_the_invited_role(
    client: Client, team: Team
) -> None:
    path = _invite(client, team, "NEWBIE@example.com", "viewer")
    newbie = make_user("newbie@example.com")
    client.force_login(newbie)
    assert client.get(path).status_code == 200
    response = client.post(path)
    assert response.status_code == 302
    assert response["Location"] == reverse("workspace_home", args=[team.workspace.slug])
    assert Membership.objects.get(workspace=team.workspace, user=newbie).role == Role.VIEWER

    # The link works once.
    client.force_login(make_user("other@example.com"))
    client.post(path)
    assert Membership.objects.filter(workspace=team.workspace).count() == 5


def test_a_user_with_another_email_cannot_accept(client: Client, team: Team) -> None:
    path = _invite(client, team, "newbie@example.com")
    client.force_login(team.dave)
    page = client.get(path)
    assert b"sent to newbie@example.com" in page.content
    client.post(path)
    assert not Membership.objects.filter(workspace=team.workspace, user=team.dave).exists()
    assert Invitation.objects.get().accepted_at is None


def test_an_unverified_matching_email_cannot_accept(client: Client, team: Team) -> None:
    path = _invite(client, team, "newbie@example.com")
    newbie = make_user("newbie@example.com", verified=False)
    client.force_login(newbie)
    assert b"Confirm your email address" in client.get(path).content
    client.post(path)
    assert not Membership.objects.filter(workspace=team.workspace, user=newbie).exists()


def test_signed_out_visitors_see_the_invitation_and_are_asked_to_sign_in(
    client: Client, team: Team
) -> None:
    path = _invite(client, team, "newbie@example.com")
    page = client.get(path)
    assert page.status_code == 200
    assert b"Create an account" in page.content
    response = client.post(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, b"expired"),
        ({"revoked_at": timezone.now()}, b"withdrawn"),
    ],
)
def test_expired_or_revoked_invitations_cannot_be_accepted(
    client: Client, team: Team, change: dict[str, object], message: bytes
) -> None:
    path = _invite(client, team, "newbie@example.com")
    Invitation.objects.update(**change)
    newbie = make_user("newbie@example.com")
    client.force_login(newbie)
    assert message in client.get(path).content
    client.post(path)
    assert not Membership.objects.filter(workspace=team.workspace, user=newbie).exists()


def test_an_unknown_token_is_a_404(client: Client, team: Team) -> None:
    assert client.get("/invitations/not-a-real-token/").status_code == 404


def test_resending_replaces_the_link_and_revoking_kills_it(client: Client, team: Team) -> None:
    old_path = _invite(client, team, "newbie@example.com")
    invitation = Invitation.objects.get()
    client.force_login(team.erin)
    client.post(reverse("invitation_resend", args=[team.workspace.slug, invitation.pk]))
    new_path = re.search(r"http://testserver(/invitations/[^\s]+/)", mail.outbox[-1].body)
    assert new_path
    assert new_path.group(1) != old_path

    newbie = make_user("newbie@example.com")
    client.force_login(newbie)
    assert client.get(old_path).status_code == 404

    client.force_login(team.erin)
    client.post(reverse("invitation_revoke", args=[team.workspace.slug, invitation.pk]))
    client.force_login(newbie)
    client.post(new_path.group(1))
    assert not Membership.objects.filter(workspace=team.workspace, user=newbie).exists()


def test_inviting_the_same_address_again_renews_the_open_invitation(
    client: Client, team: Team
) -> None:
    _invite(client, team, "newbie@example.com", "member")
    _invite(client, team, "Newbie@example.com", "admin")
    invitation = Invitation.objects.get()
    assert invitation.role == Role.ADMIN


def test_existing_members_are_not_invited(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    client.post(
        reverse("member_invite", args=[team.workspace.slug]),
        {"email": "bob@example.com", "role": "member"},
    )
    assert not Invitation.objects.exists()
    assert not mail.outbox


def test_the_owner_role_cannot_be_invited(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    client.post(
        reverse("member_invite", args=[team.workspace.slug]),
        {"email": "new@example.com", "role": "owner"},
    )
    assert not Invitation.objects.exists()


def test_personal_workspaces_take_no_invitations(client: Client, team: Team) -> None:
    client.force_login(team.dave)
    client.post(
        reverse("member_invite", args=[team.dave.personal_workspace.slug]),
        {"email": "new@example.com", "role": "member"},
    )
    assert not Invitation.objects.exists()
