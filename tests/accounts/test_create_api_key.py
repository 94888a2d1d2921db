"""`python manage.py create_api_key EMAIL WORKSPACE_SLUG [--name] [--scopes]`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Scope
from tests.api.conftest import Api
from tests.conftest import Team, make_user

pytestmark = pytest.mark.django_db


def _run(*args: str) -> dict:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return json.loads(out.getvalue())


def test_it_prints_a_key_that_works_once(team: Team) -> None:
    result = _run("alice@example.com", team.workspace.slug, "--name", "CI")
    assert set(result) == {"key", "prefix", "workspace"}
    assert result["workspace"] == team.workspace.slug
    assert result["key"].startswith(result["prefix"] + "_")
    key = ApiKey.objects.get()
    assert key.name == "CI"
    assert key.scopes == list(Scope.values)
    assert result["key"] not in str(key.__dict__)  # only a hash is kept
    assert Api(result["key"]).get("/workspace").status_code == 200


def test_it_takes_scopes(team: Team) -> None:
    _run("erin@example.com", team.workspace.slug, "--scopes", "generations:read")
    assert ApiKey.objects.get().scopes == ["generations:read"]


@pytest.mark.parametrize(
    ("email", "scopes", "message"),
    [
        ("bob@example.com", "generations:read", "Only owners and admins"),
        ("dave@example.com", "generations:read", "not a member"),
        ("nobody@example.com", "generations:read", "not a member"),
        ("alice@example.com", "generations:delete", "Unknown scope"),
        ("alice@example.com", ",", "at least one scope"),
    ],
)
def test_it_refuses_clearly_and_creates_nothing(
    team: Team, email: str, scopes: str, message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        _run(email, team.workspace.slug, "--scopes", scopes)
    assert not ApiKey.objects.exists()


def test_an_unconfirmed_email_cannot_create_keys(db: None) -> None:
    user = make_user("new@example.com", verified=False)
    with pytest.raises(CommandError, match="Confirm your email"):
        _run(user.email, user.personal_workspace.slug)
    assert not ApiKey.objects.exists()
