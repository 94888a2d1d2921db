from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from accounts.models import Membership, Role, Scope, User, Workspace
from accounts.services import create_api_key
from billing import wallets
from tests.conftest import Team


class Api:
    """A client of the REST API with one key (or none): `api.get("/generations")`."""

    def __init__(self, key: str | None = None, client: Client | None = None) -> None:
        self.client = client or Client()
        self.key = key

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**out, **(headers or {})}

    def _url(self, path: str) -> str:
        return path if path.startswith("/") and path.startswith("/api/") else f"/api/v1{path}"

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(self._url(path), params, headers=self._headers(None))

    def post(self, path: str, body: Any = None, *, headers: dict[str, str] | None = None) -> Any:
        data = "" if body is None else json.dumps(body)
        return self.client.post(
            self._url(path), data, content_type="application/json", headers=self._headers(headers)
        )

    def delete(self, path: str) -> Any:
        return self.client.delete(self._url(path), headers=self._headers(None))


def key_for(membership: Membership, scopes: list[str] | None = None) -> str:
    """An API key created by `membership` (an owner or admin), all scopes by default."""
    _, text = create_api_key(actor=membership, name="tests", scopes=scopes or list(Scope.values))
    return text


def key_acting_as(team: Team, role: Role, scopes: list[str] | None = None) -> str:
    """A key whose creator (erin, an admin) now has `role`: keys act with their creator's
    current role, so demoting erin demotes her keys."""
    membership = team.membership(team.erin)
    text = key_for(membership, scopes)
    Membership.objects.filter(pk=membership.pk).update(role=role)
    return text


@pytest.fixture
def funded(team: Team) -> Team:
    wallets.grant(team.workspace, 1000, key="api-tests-funding")
    return team


@pytest.fixture
def owner_api(funded: Team) -> Api:
    return Api(key_for(funded.membership(funded.alice)))


def personal(user: User) -> Workspace:
    return Workspace.objects.get(personal_for=user)


GENERATION = {"prompt": "a red fox running through snow", "frames": 31, "steps": 20, "fps": 24}
