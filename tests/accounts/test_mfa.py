from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.test import Client

from tests.conftest import PASSWORD, make_user
from tests.support.totp import totp

pytestmark = pytest.mark.django_db


def _login(client: Client, email: str) -> str:
    response = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert response.status_code == 302
    return str(response["Location"])


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> float:
    """allauth's clock, stopped in the middle of a 30-second period: a code computed here
    stays the current one however long the test takes to send it."""
    frozen = (time.time() // 30) * 30 + 15
    monkeypatch.setattr("allauth.mfa.totp.internal.auth.time", SimpleNamespace(time=lambda: frozen))
    return frozen


def test_it_enrols_totp_and_then_asks_for_a_code_at_login(client: Client, now: float) -> None:
    user = make_user("alice@example.com")
    _login(client, "alice@example.com")

    # Security settings ask for the password again before changing anything.
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/reauthenticate/")
    response = client.post(page["Location"], {"password": PASSWORD})
    assert response["Location"] == "/accounts/2fa/totp/activate/"

    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp(secret, at=now)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()

    client.post("/accounts/logout/")
    assert _login(client, "alice@example.com") == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in client.session

    # A wrong code keeps the door shut.
    client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert "_auth_user_id" not in client.session

    # allauth refuses a code twice within its 30-second period; forget that it was used.
    cache.clear()
    response = client.post("/accounts/2fa/authenticate/", {"code": totp(secret, at=now)})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
