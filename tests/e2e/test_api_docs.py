"""The API documentation in a real browser: served from our own files under our content
security policy, it lists the operations and tries one with an API key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import Workspace
from accounts.services import create_api_key
from billing import wallets
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_docs_render_and_try_a_call_with_a_key(
    new_page: Callable[..., Any], site_url: str, snap: Callable[[Any, str], None]
) -> None:
    owner = make_user("ana@example.com")
    studio = Workspace.objects.create_team(name="Studio", owner=owner)
    wallets.grant(studio, 500, key="e2e-docs")
    _, key = create_api_key(
        actor=studio.memberships.get(user=owner), name="docs", scopes=["billing:read"]
    )

    page = new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith((site_url, "data:")) else None,
    )
    page.goto(f"{site_url}/api/docs/")
    page.get_by_text("Mochi Studio API").first.wait_for()
    operation = page.locator(".opblock-summary-path", has_text="/api/v1/workspace").first
    operation.wait_for()
    snap(page, "api-docs")

    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".auth-container input").first.fill(key)
    page.get_by_role("button", name="Apply credentials").click()
    page.locator(".modal-ux").get_by_role("button", name="Close").click()
    operation.click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    live = page.locator(".live-responses-table tbody .response")
    live.first.wait_for()
    assert live.first.locator(".response-col_status").inner_text().strip() == "200"
    assert '"name": "Studio"' in live.first.locator(".microlight").first.inner_text()
    assert not blocked, blocked
    assert not outside, outside  # no CDN: every file comes from this site
