"""Per-member monthly caps in team workspaces, checked under the wallet's lock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing import wallets
from tests.billing.conftest import Funded
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_holds_and_captures_this_month_count_towards_the_cap(funded: Funded) -> None:
    workspace = funded(1000)
    bob = make_user("bob@example.com")

    def hold(key: str, amount: int) -> None:
        wallets.hold(workspace, amount, key=key, member_id=bob.pk, monthly_cap=100)

    hold("g1", 39)
    wallets.capture(wallets.hold_id("g1"), 39, key="g1")
    hold("g2", 39)
    with pytest.raises(wallets.MonthlyCapExceeded) as error:
        hold("g3", 39)
    assert (error.value.used, error.value.cap) == (78, 100)
    assert "22 left this month" in str(error.value)

    wallets.release(wallets.hold_id("g2"), key="g2")  # a failure costs nothing
    hold("g3", 39)
    hold("g4", 22)
    assert wallets.member_spend_this_month(wallets.workspace_accounts(workspace)[0], bob.pk) == 100


def test_other_members_and_uncapped_members_are_not_limited(funded: Funded) -> None:
    workspace = funded(1000)
    bob, carol = make_user("bob@example.com"), make_user("carol@example.com")
    wallets.hold(workspace, 90, key="b1", member_id=bob.pk, monthly_cap=100)
    wallets.hold(workspace, 90, key="c1", member_id=carol.pk, monthly_cap=100)
    wallets.hold(workspace, 500, key="c2", member_id=carol.pk, monthly_cap=None)


def test_last_months_captures_do_not_count(funded: Funded, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = funded(1000)
    bob = make_user("bob@example.com")
    last_month = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: last_month)
    wallets.hold(workspace, 90, key="old", member_id=bob.pk, monthly_cap=100)
    wallets.capture(wallets.hold_id("old"), 90, key="old")
    monkeypatch.setattr(
        "django.utils.timezone.now", lambda: datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
    )
    wallets.hold(workspace, 90, key="new", member_id=bob.pk, monthly_cap=100)
