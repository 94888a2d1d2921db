from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.db import connection

from accounts.models import Membership, Role, User, Workspace

PASSWORD = "a long test password 1"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    # Rate-limit counters and cached values must not leak from one test into the next.
    cache.clear()


@pytest.fixture(autouse=True)
def _ledger_audit(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that uses the database, the ledger must still pass its audit
    (every user creation writes to it). Tests that corrupt it on purpose opt out."""
    uses_db = request.node.get_closest_marker("django_db") or any(
        name in request.fixturenames for name in ("db", "transactional_db", "live_server")
    )
    if not uses_db or request.node.get_closest_marker("ledger_tampered"):
        yield
        return
    # Depend on the database fixture so this check runs before its rollback.
    request.getfixturevalue("_django_db_helper")
    yield
    from billing.audit import run_audit

    report = run_audit(record=False)
    assert report.ok, "ledger audit failed after the test:\n" + "\n".join(report.violations)


Commit = Callable[[], AbstractContextManager[Any]]


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Commit:
    """`with commit(): ...` runs the block's on-commit callbacks (emails, queued tasks) as
    it ends, as a real commit would; tests otherwise run in a transaction that never commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def make_user(email: str, *, verified: bool = True, password: str = PASSWORD) -> User:
    user = User.objects.create_user(email, password)
    EmailAddress.objects.create(user=user, email=user.email, verified=verified, primary=True)
    return user


@dataclass
class Team:
    """The personas: alice owns the team, erin is an admin, bob a member, carol a viewer,
    and dave is an outsider with only his personal workspace."""

    workspace: Workspace
    alice: User
    erin: User
    bob: User
    carol: User
    dave: User

    def membership(self, user: User) -> Membership:
        return Membership.objects.get(workspace=self.workspace, user=user)

    def persona(self, name: str) -> User:
        user: User = getattr(self, name)
        return user


@pytest.fixture
def team(db: None) -> Team:
    alice = make_user("alice@example.com")
    erin = make_user("erin@example.com")
    bob = make_user("bob@example.com")
    carol = make_user("carol@example.com")
    dave = make_user("dave@example.com")
    workspace = Workspace.objects.create_team(name="Acme Films", owner=alice)
    Membership.objects.create(workspace=workspace, user=erin, role=Role.ADMIN)
    Membership.objects.create(workspace=workspace, user=bob, role=Role.MEMBER)
    Membership.objects.create(workspace=workspace, user=carol, role=Role.VIEWER)
    return Team(workspace, alice, erin, bob, carol, dave)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row locks, triggers, real concurrency): set DATABASE_URL")
