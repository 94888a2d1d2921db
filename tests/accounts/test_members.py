from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Role, Workspace
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def test_the_members_page_lists_everyone_and_shows_invite_form_to_admins(
    client: Client, team: Team
) -> None:
    url = reverse("members", args=[team.workspace.slug])
    client.force_login(team.erin)
    page = client.get(url).content.decode()
    for email in ("alice@", "erin@", "bob@", "carol@"):
        assert email in page
    assert "Send invitation" in page

    client.force_login(team.bob)
    assert "Send invitation" not in client.get(url).content.decode()


def test_creating_a_team_makes_the_creator_its_owner(client: Client, team: Team) -> None:
    client.force_login(team.dave)
    response = client.post(reverse("team_create"), {"name": "  Dave's   Studio "})
    workspace = Workspace.objects.get(name="Dave's Studio")
    assert response["Location"] == reverse("members", args=[workspace.slug])
    assert workspace.is_team
    assert Membership.objects.get(workspace=workspace).role == Role.OWNER


def test_a_team_needs_a_name(client: Client, team: Team) -> None:
    client.force_login(team.dave)
    response = client.post(reverse("team_create"), {"name": "   "})
    assert response.status_code == 200
    assert not Workspace.objects.filter(created_by=team.dave, kind="team").exists()


def test_an_admin_changes_a_role(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    bob = team.membership(team.bob)
    client.post(reverse("member_role", args=[team.workspace.slug, bob.pk]), {"role": "viewer"})
    bob.refresh_from_db()
    assert bob.role == Role.VIEWER


@pytest.mark.parametrize("role", ["owner", "wizard"])
def test_roles_outside_admin_member_viewer_are_refused(
    client: Client, team: Team, role: str
) -> None:
    client.force_login(team.alice)
    bob = team.membership(team.bob)
    client.post(reverse("member_role", args=[team.workspace.slug, bob.pk]), {"role": role})
    bob.refresh_from_db()
    assert bob.role == Role.MEMBER


def test_the_owners_role_cannot_be_changed_by_an_admin(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    alice = team.membership(team.alice)
    client.post(reverse("member_role", args=[team.workspace.slug, alice.pk]), {"role": "viewer"})
    alice.refresh_from_db()
    assert alice.role == Role.OWNER


def test_a_removed_member_loses_access(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    client.post(reverse("member_remove", args=[team.workspace.slug, team.membership(team.bob).pk]))
    assert not Membership.objects.filter(workspace=team.workspace, user=team.bob).exists()
    client.force_login(team.bob)
    assert client.get(reverse("workspace_home", args=[team.workspace.slug])).status_code == 404


def test_the_owner_cannot_be_removed(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    client.post(
        reverse("member_remove", args=[team.workspace.slug, team.membership(team.alice).pk])
    )
    assert Membership.objects.filter(workspace=team.workspace, user=team.alice).exists()


def test_a_member_leaves(client: Client, team: Team) -> None:
    client.force_login(team.bob)
    response = client.post(reverse("leave_workspace", args=[team.workspace.slug]))
    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(workspace=team.workspace, user=team.bob).exists()


def test_the_owner_cannot_leave_without_transferring(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    client.post(reverse("leave_workspace", args=[team.workspace.slug]))
    assert team.membership(team.alice).role == Role.OWNER


def test_nobody_leaves_a_personal_workspace(client: Client, team: Team) -> None:
    client.force_login(team.dave)
    client.post(reverse("leave_workspace", args=[team.dave.personal_workspace.slug]))
    assert team.dave.personal_workspace.memberships.filter(user=team.dave).exists()


def test_the_owner_transfers_ownership_and_becomes_admin(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    client.post(
        reverse("member_transfer", args=[team.workspace.slug, team.membership(team.bob).pk])
    )
    assert team.membership(team.bob).role == Role.OWNER
    assert team.membership(team.alice).role == Role.ADMIN
    assert team.workspace.memberships.filter(role=Role.OWNER).count() == 1


def test_an_admin_sets_and_clears_a_members_monthly_limit(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    url = reverse("member_cap", args=[team.workspace.slug, team.membership(team.bob).pk])
    client.post(url, {"monthly_cap": "120"})
    assert team.membership(team.bob).monthly_cap == 120
    client.post(url, {"monthly_cap": "-5"})
    assert team.membership(team.bob).monthly_cap == 120
    client.post(url, {"monthly_cap": ""})
    assert team.membership(team.bob).monthly_cap is None


def test_the_members_page_shows_what_each_member_spent_this_month(
    client: Client, team: Team
) -> None:
    from billing import wallets

    wallets.grant(team.workspace, 500, key="funding")
    held = wallets.hold(team.workspace, 39, key="g1", member_id=team.bob.pk)
    wallets.capture(held, 30, key="g1")
    wallets.hold(team.workspace, 20, key="g2", member_id=team.bob.pk)
    client.force_login(team.alice)
    page = client.get(reverse("members", args=[team.workspace.slug])).content.decode()
    bob_row = page.split("bob@example.com", 1)[1].split("</tr>", 1)[0]
    assert "50 credits" in bob_row  # 30 charged + 20 held
