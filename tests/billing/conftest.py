from __future__ import annotations

from collections.abc import Callable

import pytest

from accounts.models import User, Workspace
from billing import wallets
from tests.conftest import make_user

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
