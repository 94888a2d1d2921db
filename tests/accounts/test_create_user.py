from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_it_creates_a_verified_user_and_prints_json() -> None:
    out = StringIO()
    call_command("create_user", "Ada@Example.com", "--password", PASSWORD, stdout=out)
    result = json.loads(out.getvalue())
    user = User.objects.get()
    assert result == {"email": "ada@example.com", "workspace": user.personal_workspace.slug}
    assert user.check_password(PASSWORD)
    assert user.has_verified_email()


def test_without_a_password_the_account_has_none_until_reset() -> None:
    call_command("create_user", "ada@example.com", stdout=StringIO())
    assert not User.objects.get().has_usable_password()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-email"], "not a valid email address"),
        (["ada@example.com", "--password", "123"], "too weak"),
    ],
)
def test_it_refuses_bad_input_and_writes_nothing(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("create_user", *args, stdout=StringIO())
    assert not User.objects.exists()


def test_it_refuses_an_existing_email() -> None:
    call_command("create_user", "ada@example.com", stdout=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "ADA@example.com", stdout=StringIO())
    assert User.objects.count() == 1
