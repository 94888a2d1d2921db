"""An owner makes an API key in the browser, copies it, uses it against the live API and
revokes it; then reveals and rotates the webhook signing secret."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client

from accounts.models import ApiKey, Workspace
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

Snap = Callable[[Any, str], None]


def _signed_in(page: Any, site_url: str, email: str) -> None:
    client = Client()
    client.force_login(make_user(email))
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": site_url}])


def _workspace_api(site_url: str, key: str) -> requests.Response:
    return requests.get(
        site_url + "/api/v1/workspace", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def test_create_copy_use_and_revoke_an_api_key(
    new_page: Callable[..., Any], site_url: str, snap: Snap
) -> None:
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site_url)
    _signed_in(page, site_url, "olga@example.com")
    page.goto(site_url + "/")
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="API keys").click()
    page.get_by_role("heading", name="API keys", exact=True).wait_for()
    page.get_by_text("No API keys yet.").wait_for()
    snap(page, "api-keys-empty")

    page.get_by_label("Name").fill("Render script")
    for scope in ("generations:read", "generations:write", "billing:read"):
        assert page.get_by_role("checkbox", name=scope).is_checked()
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("heading", name="Copy your new API key").wait_for()

    page.get_by_role("button", name="Copy", exact=True).click()
    page.get_by_role("button", name="Copied").wait_for()
    key = page.evaluate("navigator.clipboard.readText()")
    assert key == page.get_by_test_id("new-api-key").input_value()
    assert key.startswith("msk_")
    snap(page, "api-key-created")

    answer = _workspace_api(site_url, key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["slug"] == "olga"

    page.get_by_role("button", name="Done: back to API keys").click()
    row = page.get_by_role("row", name="Render script")
    row.get_by_text("Active").wait_for()
    assert row.get_by_text("Never").count() == 1  # expires never; it was just used
    assert key not in page.content()
    page.reload()
    assert key not in page.content()
    snap(page, "api-keys")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke Render script").click()
    page.get_by_text("is revoked: the API refuses it from now on").wait_for()
    page.get_by_role("row", name="Render script").get_by_text("Revoked").wait_for()
    snap(page, "api-key-revoked")

    answer = _workspace_api(site_url, key)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"
    assert ApiKey.objects.get().revoked_at is not None

    # A phone-sized screen still reaches every column (the table scrolls sideways).
    phone = new_page(width=390, height=844)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(page.url)
    phone.get_by_role("heading", name="Create a key").wait_for()
    snap(phone, "api-keys-phone")


def test_reveal_and_rotate_the_webhook_secret(
    new_page: Callable[..., Any], site_url: str, snap: Snap
) -> None:
    page = new_page(width=390, height=844)  # a phone
    _signed_in(page, site_url, "olga@example.com")
    page.goto(site_url + "/")
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Settings").click()
    page.get_by_role("heading", name="Webhooks").wait_for()
    workspace = Workspace.objects.get(slug="olga")
    old = workspace.webhook_secret
    assert old not in page.content()

    page.get_by_role("button", name="Reveal secret").click()
    revealed = page.get_by_test_id("webhook-secret")
    revealed.wait_for()
    assert revealed.input_value() == old
    assert page.evaluate("document.activeElement.id") == "webhook-secret-value"
    snap(page, "webhooks-secret-revealed")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate secret").click()
    page.get_by_text("A new signing secret is in place").wait_for()
    page.get_by_test_id("webhook-overlap").wait_for()
    workspace.refresh_from_db()
    assert workspace.previous_webhook_secret == old
    assert workspace.webhook_secret not in page.content()
    snap(page, "webhooks-rotated")

    page.get_by_role("button", name="Reveal secret").click()
    assert page.get_by_test_id("webhook-secret").input_value() == workspace.webhook_secret
