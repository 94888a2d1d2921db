from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client

from accounts.models import Membership, Role, User, Workspace
from tests.conftest import PASSWORD, Team, make_user

pytestmark = pytest.mark.django_db


def _personal(user: User) -> Workspace:
    workspace = Workspace.objects.get(personal_for=user)
    assert workspace.is_personal
    assert Membership.objects.get(workspace=workspace, user=user).role == Role.OWNER
    return workspace


def test_every_path_that_creates_a_user_creates_a_personal_workspace(client: Client) -> None:
    by_manager = User.objects.create_user("one@example.com", PASSWORD)
    _personal(by_manager)

    call_command("createsuperuser", "--noinput", email="root@example.com", stdout=StringIO())
    _personal(User.objects.get(email="root@example.com"))

    out = StringIO()
    call_command("create_user", "three@example.com", stdout=out)
    created = json.loads(out.getvalue())
    assert created["workspace"] == _personal(User.objects.get(email="three@example.com")).slug

    client.force_login(User.objects.get(email="root@example.com"))
    response = client.post(
        "/admin/accounts/user/add/",
        {
            "email": "four@example.com",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302, response.content
    _personal(User.objects.get(email="four@example.com"))


def test_personal_workspace_slugs_are_unique() -> None:
    first = make_user("sam@example.com")
    second = make_user("sam@example.org")
    assert _personal(first).slug == "sam"
    assert _personal(second).slug.startswith("sam-")


def test_emails_are_stored_lowercased_and_unique_whatever_the_case() -> None:
    user = User.objects.create_user("Mixed.Case@Example.COM", PASSWORD)
    assert user.email == "mixed.case@example.com"
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("MIXED.case@example.com", PASSWORD)


def test_the_database_allows_one_owner_per_workspace(team: Team) -> None:
    bob = team.membership(team.bob)
    bob.role = Role.OWNER
    with pytest.raises(IntegrityError), transaction.atomic():
        bob.save()


def test_a_personal_workspace_must_name_its_user(team: Team) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Workspace.objects.create(name="x", slug="x", kind=Workspace.Kind.PERSONAL)
