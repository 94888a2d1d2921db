from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client

from accounts.models import User, Workspace
from billing import wallets
from tests.conftest import make_user
from tests.support.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, sign

Funded = Callable[..., Workspace]


@pytest.fixture
def funded(db: None, settings: object) -> Funded:
    """`funded(120)`: a team workspace whose wallet holds exactly 120 credits."""
    counter = iter(range(10_000))

    def make(credits: int, *, owner: User | None = None) -> Workspace:
        n = next(counter)
        owner = owner or make_user(f"owner{n}@example.com")
        workspace = Workspace.objects.create_team(name=f"Team {n}", owner=owner)
        if credits:
            wallets.grant(workspace, credits, key=f"test-funding:{workspace.pk}")
        return workspace

    return make


@pytest.fixture
def fake_stripe(settings: Any) -> Iterator[FakeStripe]:
    """The fake Stripe API on a free port; the app's Stripe settings point at it."""
    with FakeStripe() as server:
        settings.STRIPE_SECRET_KEY = API_KEY
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = server.url
        yield server


def deliver(
    client: Client,
    event: dict[str, Any] | bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
) -> HttpResponse:
    """POST an event to the webhook as Stripe does: the raw body, signed."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    headers = {}
    if signature is None:
        signature = sign(body, secret, timestamp)
    if signature:
        headers["HTTP_STRIPE_SIGNATURE"] = signature
    response: HttpResponse = client.post(
        "/stripe/webhook/", body, content_type="application/json", **headers
    )
    return response


def buy(client: Client, workspace: Workspace, pack: str = "starter") -> str:
    """As the logged-in client, start a checkout of `pack`; returns the session id."""
    response = client.post(f"/w/{workspace.slug}/billing/checkout/", {"pack": pack})
    assert response.status_code == 303, response.content
    return str(response["Location"]).rsplit("/", 1)[1]
