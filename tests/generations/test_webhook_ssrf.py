"""Webhook URLs may only reach the public internet: refused when a generation is submitted
and again at every delivery, with no socket ever opened to a private address (every
connection attempt is recorded and refused by the `sockets` guard)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from accounts.models import Scope, Workspace
from accounts.services import create_api_key
from generations import services, webhooks
from generations.models import Generation, WebhookDelivery
from tests.generations.conftest import owner_of
from tests.generations.helpers import submit
from tests.support.webhook_receiver import Answer, Receiver, SocketGuard, self_signed

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"  # a globally routable address (the guard stands in for it)

PRIVATE_URLS = [
    "https://127.0.0.1/hook",
    "https://localhost/hook",
    "https://10.0.0.5/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[fd00::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://2130706433/hook",  # 127.0.0.1 as one decimal number
    "https://0x7f000001/hook",  # and in hexadecimal
    "https://internal.example.com/hook",  # a name that resolves to a private address
    "https://half.example.com/hook",  # one public and one private address
]

DNS = {
    "internal.example.com": ["10.20.30.40"],
    "half.example.com": [PUBLIC, "10.0.0.1"],
    "public.example.com": [PUBLIC],
}


def _dns(names: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    real = webhooks.resolve

    def resolve(host: str, port: int) -> list[str]:
        return list(names[host]) if host in names else real(host, port)

    return resolve


@pytest.fixture(autouse=True)
def _production_rules(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_IPS = False
    monkeypatch.setattr(webhooks, "resolve", _dns(DNS))


def _api(workspace: Workspace) -> Client:
    _, key = create_api_key(
        actor=owner_of(workspace),
        name="app",
        scopes=[Scope.GENERATIONS_READ, Scope.GENERATIONS_WRITE],
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _create(client: Client, webhook_url: str) -> Any:
    return client.post(
        "/api/v1/generations",
        data=json.dumps(
            {"prompt": "a red fox", "frames": 13, "steps": 10, "webhook_url": webhook_url}
        ),
        content_type="application/json",
    )


def _delivery_to(workspace: Workspace, url: str) -> WebhookDelivery:
    """A message to `url` as if it had passed the check when submitted."""
    generation = submit(workspace, webhook_url=url)
    services.cancel_generation(generation)
    return WebhookDelivery.objects.get(generation=generation)


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_a_private_webhook_url_is_refused_at_submit(
    studio: Workspace, sockets: SocketGuard, url: str
) -> None:
    response = _create(_api(studio), url)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["webhook_url"]
    assert "public address" in error["fields"]["webhook_url"][0]
    assert not Generation.objects.exists()
    assert sockets.attempts == []


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_a_private_webhook_url_is_refused_at_delivery(
    studio: Workspace, sockets: SocketGuard, url: str
) -> None:
    delivery = _delivery_to(studio, url)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("Refused: Webhook URLs must lead to a public address")
    assert delivery.log[0]["error"] == delivery.last_error
    assert delivery.last_status is None
    # Recorded as a failed attempt and retried on the schedule: DNS may change back.
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at is not None
    assert sockets.attempts == []


def test_plain_http_is_refused(studio: Workspace, sockets: SocketGuard) -> None:
    response = _create(_api(studio), "http://public.example.com/hook")
    assert response.status_code == 400
    assert "https://" in response.json()["error"]["fields"]["webhook_url"][0]
    delivery = _delivery_to(studio, "http://public.example.com/hook")
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_error == "Refused: Webhook URLs must start with https://."
    assert sockets.attempts == []


def test_a_name_public_at_submit_and_private_at_delivery_is_refused_then(
    studio: Workspace, sockets: SocketGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {"rebind.example.com": [PUBLIC]}
    monkeypatch.setattr(webhooks, "resolve", _dns(names))
    client = _api(studio)
    response = _create(client, "https://rebind.example.com/hook")
    assert response.status_code == 202, response.content
    generation_id = response.json()["id"]

    names["rebind.example.com"] = ["127.0.0.1"]
    assert client.post(f"/api/v1/generations/{generation_id}/cancel").status_code == 200
    delivery = WebhookDelivery.objects.get(generation_id=generation_id)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("Refused: Webhook URLs must lead to a public address")
    assert sockets.attempts == []


@pytest.fixture
def public_site(settings: Any, monkeypatch: pytest.MonkeyPatch, sockets: SocketGuard) -> Any:
    """An HTTPS receiver standing in for public.example.com at the public address."""
    cert, key = self_signed("public.example.com")
    monkeypatch.setattr(webhooks, "CA_CERTS", str(cert))
    with Receiver(tls=(cert, key)) as site:
        sockets.routes[(PUBLIC, 443)] = ("127.0.0.1", site.port)
        yield site


def test_a_redirect_to_a_private_address_is_not_followed(
    studio: Workspace, sockets: SocketGuard, public_site: Receiver
) -> None:
    public_site.answers = [
        Answer(status=307, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    ]
    delivery = _delivery_to(studio, "https://public.example.com/hook")
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert len(public_site.requests) == 1
    assert delivery.last_status == 307
    assert "redirects are not followed" in delivery.last_error
    assert sockets.hosts() == {PUBLIC}


def test_the_connection_goes_to_the_checked_address_when_the_name_changes_meanwhile(
    studio: Workspace,
    sockets: SocketGuard,
    public_site: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Checked: public. Any later look-up of the name would answer loopback (rebinding).
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(str(host))
        if host == "public.example.com":
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    delivery = _delivery_to(studio, "https://public.example.com/hook")
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "delivered", delivery.last_error
    assert "public.example.com" not in looked_up
    assert sockets.hosts() == {PUBLIC}
    [received] = public_site.requests
    assert received.server_name == "public.example.com"
    assert {k.lower(): v for k, v in received.headers.items()}["host"] == "public.example.com"
