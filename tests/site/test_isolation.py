"""Tenant isolation, swept over the whole URLconf so that a new route is covered the day it
is added: another workspace's object is a 404 on every page and endpoint, whatever the
method, and every workspace page is a 404 to an outsider."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import Invitation, Membership, Role, User, Workspace
from accounts.services import create_api_key, invite_member
from billing import wallets
from generations.models import WebhookDelivery
from tests.api.conftest import key_for
from tests.conftest import PASSWORD, Team
from tests.generations.helpers import finished

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "delete")
PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _routes() -> Iterator[tuple[str, URLPattern]]:
    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern

    for route, pattern in walk(get_resolver().url_patterns, "/"):
        if route.startswith(("/admin/", "/accounts/", "/api/schema", "/api/docs")):
            continue  # third-party apps with their own access rules
        yield route, pattern


class Theirs:
    """Objects of other workspaces, one per kind of id a route can take."""

    def __init__(self, team: Team) -> None:
        dave = team.dave
        other = Workspace.objects.create_team(name="Dave's team", owner=dave)
        wallets.grant(other, 100, key="isolation-tests-theirs")
        helper = User.objects.create_user("helper@example.com", PASSWORD)
        self.objects: dict[str, Callable[[], Any]] = {
            "generation_id": lambda: finished(other, dave).pk,
            # The Segmind drop-in names a generation by its id as Segmind's request id.
            "request_id": lambda: self.get("generation_id"),
            "member_id": lambda: (
                Membership.objects.create(workspace=other, user=helper, role=Role.MEMBER).pk
            ),
            "invitation_id": lambda: (
                invite_member(
                    actor=other.memberships.get(user=dave), email="x@example.com", role=Role.MEMBER
                ).pk
            ),
            "delivery_id": lambda: (
                WebhookDelivery.objects.create(
                    event_id="msg_theirs",
                    generation_id=self.get("generation_id"),
                    event_type="generation.succeeded",
                    url="https://example.com/hooks",
                    payload="{}",
                ).pk
            ),
            "key_id": lambda: (
                create_api_key(
                    actor=other.memberships.get(user=dave), name="daves", scopes=["billing:read"]
                )[0].pk
            ),
        }
        self.made: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self.objects:
            pytest.fail(f"Add an object of another workspace for the route parameter <{name}>.")
        if name not in self.made:
            self.made[name] = self.objects[name]()
        return self.made[name]


def _fill(route: str, values: Callable[[str], Any]) -> str:
    return PARAMETER.sub(lambda m: str(values(m.group(2))), route).replace("^", "")


def _statuses(client: Client, url: str, headers: dict[str, str]) -> dict[str, int]:
    return {m: getattr(client, m)(url, headers=headers).status_code for m in METHODS}


def test_another_workspaces_objects_are_404_on_every_route(team: Team) -> None:
    theirs = Theirs(team)
    browser = Client()
    assert browser.login(email="alice@example.com", password=PASSWORD)
    api_key = key_for(team.membership(team.alice))
    checked = []
    for route, _ in _routes():
        names = [m.group(2) for m in PARAMETER.finditer(route)]
        ids = [n for n in names if n != "slug" and n != "token"]
        if not ids:
            continue
        url = _fill(route, lambda n: team.workspace.slug if n == "slug" else theirs.get(n))
        headers = {}
        if route.startswith("/api/"):
            headers = {"Authorization": f"Bearer {api_key}"}
        elif route.startswith(("/v1/", "/v2/")):  # the Segmind drop-in reads Segmind's header
            headers = {"x-api-key": api_key}
        statuses = _statuses(browser, url, headers)
        assert set(statuses.values()) <= {404, 405}, (url, statuses)
        assert 404 in statuses.values(), (url, statuses)
        checked.append(route)
    assert len(checked) >= 17, checked  # the sweep found the routes it is meant to cover


def test_every_workspace_page_is_404_to_an_outsider(team: Team) -> None:
    theirs = Theirs(team)
    outsider = Client()
    assert outsider.login(email="dave@example.com", password=PASSWORD)
    wallets.grant(team.workspace, 100, key="isolation-tests")
    mine = {
        "generation_id": finished(team.workspace, team.alice).pk,
        "member_id": team.membership(team.bob).pk,
        "delivery_id": WebhookDelivery.objects.create(
            event_id="msg_mine",
            generation_id=finished(team.workspace, team.alice, prompt="hooked").pk,
            event_type="generation.succeeded",
            url="https://example.com/hooks",
            payload="{}",
        ).pk,
        "invitation_id": Invitation.objects.create(
            workspace=team.workspace, email="y@example.com", role=Role.MEMBER, token_hash="h"
        ).pk,
    }
    checked = []
    for route, _ in _routes():
        if not route.startswith("/w/"):
            continue

        def value(name: str) -> Any:
            if name == "slug":
                return team.workspace.slug
            return mine[name] if name in mine else theirs.get(name)

        url = _fill(route, value)
        statuses = _statuses(outsider, url, {})
        assert set(statuses.values()) <= {404, 405}, (url, statuses)
        checked.append(route)
    assert len(checked) >= 25, checked
