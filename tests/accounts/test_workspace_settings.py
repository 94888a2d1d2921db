from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Role, Workspace
from accounts.services import invite_member
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def test_an_admin_renames_the_team(client: Client, team: Team) -> None:
    client.force_login(team.erin)
    client.post(reverse("workspace_rename", args=[team.workspace.slug]), {"name": "Acme Pictures"})
    team.workspace.refresh_from_db()
    assert team.workspace.name == "Acme Pictures"


def test_a_blank_name_is_refused(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    client.post(reverse("workspace_rename", args=[team.workspace.slug]), {"name": ""})
    team.workspace.refresh_from_db()
    assert team.workspace.name == "Acme Films"


def test_deleting_needs_the_name_typed_exactly(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    client.post(reverse("workspace_delete", args=[team.workspace.slug]), {"confirm_name": "acme"})
    team.workspace.refresh_from_db()
    assert team.workspace.deleted_at is None


def test_the_owner_deletes_the_team_and_everyone_loses_it(client: Client, team: Team) -> None:
    invitation = invite_member(
        actor=team.membership(team.alice), email="new@example.com", role=Role.MEMBER
    )
    client.force_login(team.alice)
    response = client.post(
        reverse("workspace_delete", args=[team.workspace.slug]), {"confirm_name": "Acme Films"}
    )
    assert response["Location"] == reverse("home")
    assert Workspace.objects.get(pk=team.workspace.pk).deleted_at is not None
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None
    for user in (team.alice, team.bob):
        client.force_login(user)
        assert client.get(reverse("members", args=[team.workspace.slug])).status_code == 404
    # "/" now leads the former owner back to their personal workspace.
    client.force_login(team.alice)
    assert client.get("/")["Location"] == f"/w/{team.alice.personal_workspace.slug}/"


def test_a_personal_workspace_cannot_be_deleted(client: Client, team: Team) -> None:
    personal = team.dave.personal_workspace
    client.force_login(team.dave)
    client.post(reverse("workspace_delete", args=[personal.slug]), {"confirm_name": personal.name})
    personal.refresh_from_db()
    assert personal.deleted_at is None
    assert timezone.now()
