"""The operator in a real browser: after a real generation went through the fake upstream,
the operations page reports it, and the admin links to it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import User, Workspace
from billing import wallets
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Status
from ops.templatetags.ops_format import usd
from tests.conftest import make_user
from tests.e2e.flows import PASSWORD, sign_in
from tests.generations.helpers import submit

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_operator_sees_a_delivered_video_in_the_figures(
    new_page: Callable[..., Any],
    site_url: str,
    pipeline: FakeSegmind,
    snap: Callable[[Any, str], None],
) -> None:
    studio = Workspace.objects.create_team(name="Studio", owner=make_user("ana@example.com"))
    wallets.grant(studio, 500, key="e2e-funding")
    generation = submit(studio)
    deadline = time.monotonic() + 30
    while Generation.objects.get(pk=generation.pk).status != Status.SUCCEEDED:
        assert time.monotonic() < deadline, "the generation did not finish"
        time.sleep(0.2)
    generation.refresh_from_db()
    operator = make_user("oscar@example.com", password=PASSWORD)
    User.objects.filter(pk=operator.pk).update(is_staff=True)

    page = new_page()
    sign_in(page, site_url, "oscar@example.com")
    page.get_by_label("Account menu").click()
    page.get_by_role("link", name="Operations").click()
    page.get_by_role("heading", name="Operations").wait_for()

    today = page.locator("[data-testid=finished] tr[data-window=today]")
    assert today.locator("td").first.inner_text() == "1"  # succeeded
    assert page.get_by_test_id("breaker").inner_text() == "Closed"
    assert page.get_by_test_id("error-rate-1h").inner_text() == "0.0 %"
    money = page.locator("[data-testid=money] tr[data-window=today]")
    assert generation.upstream_cost_usd  # from the fake's cost metrics
    assert money.locator("[data-field=spend]").inner_text() == usd(generation.upstream_cost_usd)
    captured = money.locator("[data-field=captured]").inner_text()
    assert re.match(rf"{generation.cost} \(1\)", captured)
    snap(page, "operations")

    page.get_by_role("link", name="Admin").first.click()
    page.get_by_role("link", name="Operations").click()
    page.get_by_role("heading", name="Operations").wait_for()
