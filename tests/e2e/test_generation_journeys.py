"""Customers in a real browser: make a video and watch it arrive, share it, work as a team,
and see a failure explained. The pages run on the live server; a worker thread runs the
queue against the fake upstream meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import Membership, Role, Workspace
from billing import wallets
from generations.fake_segmind import FakeSegmind
from generations.models import Generation
from tests.conftest import make_user
from tests.e2e.flows import PASSWORD, PLAY_JS, VIDEO_DURATION_JS, sign_in, sign_up_and_verify

pytestmark = pytest.mark.django_db(transaction=True)

Snap = Callable[[Any, str], None]


def test_make_watch_download_remix_share_and_delete_a_video(
    new_page: Callable[..., Any], site_url: str, pipeline: FakeSegmind, snap: Snap
) -> None:
    page = new_page()
    sign_up_and_verify(page, site_url, "maya@example.com")
    page.get_by_role("heading", name="Create a video").wait_for()
    price = page.locator(".price-card")
    price.get_by_text("You have 100 credits").wait_for()  # the trial credits
    price.get_by_text("39 credits", exact=True).wait_for()  # Segmind's defaults
    snap(page, "create")

    page.get_by_label("Prompt", exact=True).fill(
        "A paper boat drifting down a rainy street, golden hour"
    )
    page.locator("[data-frames='25']").click()  # the shortest preset
    page.get_by_label("Quality steps").fill("20")
    price.get_by_text("13 credits", exact=True).wait_for()  # ceil(25 × 20 / 40)
    price.get_by_text("1.56 s · 25 frames × 20 steps").wait_for()
    page.get_by_role("button", name="Generate · 13 credits").click()

    page.get_by_text("13 credits held").wait_for()
    snap(page, "generation-running")
    video = page.locator("video.player")
    video.wait_for(timeout=30_000)  # arrives without reloading the page
    page.get_by_text("Charged 13 credits").wait_for()
    duration = video.evaluate(VIDEO_DURATION_JS)
    assert duration == pytest.approx(25 / 16, abs=0.1)
    assert video.evaluate(PLAY_JS) > 0  # it plays
    snap(page, "generation-done")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == (
        "a-paper-boat-drifting-down-a-rainy-street-golden-hour.mp4"
    )
    assert download.value.path().read_bytes()[4:8] == b"ftyp"

    detail_url = page.url
    page.get_by_role("button", name="Remix").click()
    page.get_by_text("Remixing").wait_for()
    generation = Generation.objects.get()
    assert page.get_by_label("Prompt", exact=True).input_value().startswith("A paper boat")
    assert page.locator("#id_seed").input_value() == str(generation.seed)
    assert page.locator("#id_seed_locked").is_checked()

    page.goto(detail_url)
    page.get_by_role("button", name="Create a share link").click()
    share_url = page.locator("#share-link").input_value()
    stranger = new_page(width=390, height=844)
    stranger.goto(share_url)
    stranger.get_by_role("heading", name="A paper boat drifting").wait_for()
    assert stranger.locator("video.player").evaluate(VIDEO_DURATION_JS) > 1
    assert "maya" not in stranger.content()
    snap(stranger, "shared-on-a-phone")
    page.get_by_role("button", name="Stop sharing").click()
    page.get_by_role("button", name="Create a share link").wait_for()
    assert stranger.goto(share_url).status == 404

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.get_by_text("The video was deleted").wait_for()
    page.get_by_text("No videos yet").wait_for()
    assert wallets.balance(generation.workspace).available == 100 - 13


def test_a_member_generates_and_the_owner_finds_it_by_member_and_in_usage(
    new_page: Callable[..., Any], site_url: str, pipeline: FakeSegmind, snap: Snap
) -> None:
    owner = make_user("olivia@example.com", password=PASSWORD)
    member = make_user("max@example.com", password=PASSWORD)
    team = Workspace.objects.create_team(name="Northwind Films", owner=owner)
    Membership.objects.create(workspace=team, user=member, role=Role.MEMBER)
    wallets.grant(team, 1000, key="team-funding")

    page = new_page()
    sign_in(page, site_url, "max@example.com")
    page.goto(f"{site_url}/w/{team.slug}/")
    page.get_by_label("Prompt", exact=True).fill("Drone shot over a pine forest in fog")
    page.locator("[data-frames='25']").click()
    page.get_by_role("button", name="Generate").click()
    page.locator("video.player").wait_for(timeout=30_000)

    owner_page = new_page()
    sign_in(owner_page, site_url, "olivia@example.com")
    owner_page.goto(f"{site_url}/w/{team.slug}/generations/")
    owner_page.get_by_label("Made by").select_option(label="max@example.com")
    owner_page.get_by_role("button", name="Apply filters").click()
    owner_page.get_by_text("Drone shot over a pine forest in fog", exact=True).wait_for()
    snap(owner_page, "gallery")
    owner_page.goto(f"{site_url}/w/{team.slug}/members/")
    max_row = owner_page.get_by_role("row").filter(has_text="max@example.com")
    cost = Generation.objects.get().cost
    max_row.get_by_text(f"{cost} credits").wait_for()
    snap(owner_page, "members")


def test_a_failed_video_shows_why_and_that_nothing_was_charged(
    new_page: Callable[..., Any], site_url: str, pipeline: FakeSegmind, snap: Snap
) -> None:
    make_user("fred@example.com", password=PASSWORD)
    page = new_page()
    sign_in(page, site_url, "fred@example.com")
    page.get_by_label("Prompt", exact=True).fill("An impossible scene [fault:failed]")
    page.locator("[data-frames='25']").click()
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("This video could not be made").wait_for(timeout=30_000)
    page.get_by_text("The model could not render this prompt").wait_for()
    page.get_by_text("Not charged", exact=True).wait_for()
    snap(page, "generation-failed")
    assert (
        wallets.balance(Workspace.objects.get(personal_for__email="fred@example.com")).available
        == 100
    )
