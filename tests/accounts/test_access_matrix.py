"""Every team page and action, for every persona: outsider 404, too-low role 403."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Invitation, Role
from accounts.services import invite_member
from tests.conftest import Team

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "erin", "bob", "carol", "dave"]  # owner, admin, member, viewer, outsider


def _expected(minimum: Role | None, persona: str, ok: int) -> int:
    rank = {"alice": Role.OWNER, "erin": Role.ADMIN, "bob": Role.MEMBER, "carol": Role.VIEWER}
    if persona == "dave":
        return 404
    if minimum is None or rank[persona].at_least(minimum):
        return ok
    return 403


def _invitation(team: Team) -> Invitation:
    return invite_member(
        actor=team.membership(team.alice), email="new@example.com", role=Role.MEMBER
    )


Case = tuple[str, str, Callable[[Team], list[object]], dict[str, str], Role | None]

CASES: list[Case] = [
    ("GET", "workspace_home", lambda t: [], {}, None),
    ("GET", "members", lambda t: [], {}, None),
    ("GET", "workspace_settings", lambda t: [], {}, None),
    (
        "POST",
        "member_invite",
        lambda t: [],
        {"email": "x@example.com", "role": "member"},
        Role.ADMIN,
    ),
    ("POST", "member_role", lambda t: [t.membership(t.bob).pk], {"role": "viewer"}, Role.ADMIN),
    ("POST", "member_remove", lambda t: [t.membership(t.carol).pk], {}, Role.ADMIN),
    ("POST", "member_cap", lambda t: [t.membership(t.bob).pk], {"monthly_cap": "50"}, Role.ADMIN),
    ("POST", "invitation_resend", lambda t: [_invitation(t).pk], {}, Role.ADMIN),
    ("POST", "invitation_revoke", lambda t: [_invitation(t).pk], {}, Role.ADMIN),
    ("POST", "workspace_rename", lambda t: [], {"name": "Renamed"}, Role.ADMIN),
    ("POST", "member_transfer", lambda t: [t.membership(t.bob).pk], {}, Role.OWNER),
    ("POST", "workspace_delete", lambda t: [], {"confirm_name": "Acme Films"}, Role.OWNER),
    ("POST", "leave_workspace", lambda t: [], {}, None),
]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(
    ("method", "name", "args", "data", "minimum"), CASES, ids=[c[1] for c in CASES]
)
def test_access(
    client: Client,
    team: Team,
    persona: str,
    method: str,
    name: str,
    args: Callable[[Team], list[object]],
    data: dict[str, str],
    minimum: Role | None,
) -> None:
    url = reverse(name, args=[team.workspace.slug, *args(team)])
    client.force_login(team.persona(persona))
    response = client.get(url) if method == "GET" else client.post(url, data)
    assert response.status_code == _expected(minimum, persona, 200 if method == "GET" else 302)


@pytest.mark.parametrize("name", ["member_invite", "workspace_rename", "leave_workspace"])
def test_actions_refuse_get(client: Client, team: Team, name: str) -> None:
    client.force_login(team.alice)
    assert client.get(reverse(name, args=[team.workspace.slug])).status_code == 405


def test_signed_out_visitors_are_sent_to_login(client: Client, team: Team) -> None:
    response = client.get(reverse("members", args=[team.workspace.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_another_workspaces_member_id_is_a_404(client: Client, team: Team) -> None:
    dave_personal = team.dave.personal_workspace.memberships.get()
    client.force_login(team.alice)
    url = reverse("member_remove", args=[team.workspace.slug, dave_personal.pk])
    assert client.post(url).status_code == 404
    assert dave_personal.__class__.objects.filter(pk=dave_personal.pk).exists()
