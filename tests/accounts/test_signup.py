from __future__ import annotations

import re
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import Membership, Role, User
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _link(body: str, pattern: str) -> str:
    match = re.search(r"https?://[^/\s]+(" + pattern + r"[^\s]*)", body)
    assert match, body
    return match.group(1)


def test_it_signs_up_verifies_the_email_and_lands_in_the_personal_workspace(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"email": "Newcomer@Example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"

    user = User.objects.get()
    assert user.email == "newcomer@example.com"
    workspace = user.personal_workspace
    assert Membership.objects.get(user=user, workspace=workspace).role == Role.OWNER
    assert not user.has_verified_email()

    assert len(mail.outbox) == 1
    confirm_path = _link(mail.outbox[0].body, "/accounts/confirm-email/")
    assert client.post(confirm_path).status_code == 302
    assert user.has_verified_email()

    # Logged in by the confirmation; "/" takes the user to their workspace.
    home = client.get("/")
    assert home.status_code == 302
    assert home["Location"] == f"/w/{workspace.slug}/"
    assert client.get(home["Location"]).status_code == 200


def test_it_refuses_login_until_the_email_is_verified(client: Client) -> None:
    make_user("pending@example.com", verified=False)
    response = client.post(
        "/accounts/login/", {"login": "pending@example.com", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session


def test_it_logs_in_with_email_in_any_case(client: Client) -> None:
    user = make_user("alice@example.com")
    response = client.post("/accounts/login/", {"login": "ALICE@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_it_rejects_a_wrong_password(client: Client) -> None:
    make_user("alice@example.com")
    response = client.post("/accounts/login/", {"login": "alice@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_rate_limits_failed_logins_for_one_account(client: Client) -> None:
    make_user("alice@example.com")
    for _ in range(5):
        response = client.post("/accounts/login/", {"login": "alice@example.com", "password": "x"})
        assert b"Too many failed login attempts" not in response.content
    response = client.post("/accounts/login/", {"login": "alice@example.com", "password": "x"})
    assert b"Too many failed login attempts" in response.content
    # Even the right password is refused while the limit holds.
    response = client.post("/accounts/login/", {"login": "alice@example.com", "password": PASSWORD})
    assert b"Too many failed login attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_it_resets_a_forgotten_password(client: Client) -> None:
    user = make_user("alice@example.com")
    response = client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert response.status_code == 302
    reset_path = _link(mail.outbox[-1].body, "/accounts/password/reset/key/")

    form_page = client.get(reset_path, follow=True)
    assert form_page.status_code == 200
    new_password = "another long password 2"
    response = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else reset_path,
        {"password1": new_password, "password2": new_password},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new_password)
    assert not user.check_password(PASSWORD)


def test_it_changes_the_password_of_a_signed_in_user(client: Client) -> None:
    user = make_user("alice@example.com")
    client.force_login(user)
    new_password = "another long password 2"
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": new_password, "password2": new_password},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new_password)


def test_it_changes_the_email_after_the_new_address_is_confirmed(client: Client) -> None:
    user = make_user("alice@example.com")
    client.force_login(user)
    response = client.post("/accounts/email/", {"action_add": "", "email": "alice@new.example"})
    assert response.status_code == 302
    confirm_path = _link(mail.outbox[-1].body, "/accounts/confirm-email/")
    client.post(confirm_path)
    user.refresh_from_db()
    assert user.email == "alice@new.example"
    assert EmailAddress.objects.get(user=user, email="alice@new.example").verified


@pytest.mark.parametrize(("proxies", "limited"), [(0, True), (1, False)])
def test_behind_a_proxy_the_login_limit_counts_each_clients_address(
    client: Client, settings: Any, proxies: int, limited: bool
) -> None:
    """Every request reaches the app from the load balancer's address; with one trusted
    proxy the limit per IP counts the address it appended to X-Forwarded-For instead."""
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = proxies
    settings.ACCOUNT_RATE_LIMITS = {"login": "2/m/ip"}
    make_user("alice@example.com")

    def login(address: str) -> int:
        response = client.post(
            "/accounts/login/",
            {"login": "alice@example.com", "password": PASSWORD},
            headers={"x-forwarded-for": f"198.51.100.7, {address}"},
        )
        client.logout()
        return response.status_code

    assert [login("203.0.113.1"), login("203.0.113.1")] == [302, 302]
    assert login("203.0.113.1") == 429
    assert login("203.0.113.2") == (429 if limited else 302)
