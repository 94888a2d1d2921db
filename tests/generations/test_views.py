"""The generation pages: access for every persona, submitting, watching, sharing, files."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Role
from billing import wallets
from generations import gate
from generations.models import Generation, UpstreamGate
from generations.upstream import UpstreamError
from tests.conftest import Team
from tests.generations.helpers import finished

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "erin", "bob", "carol", "dave"]
RANK = {"alice": Role.OWNER, "erin": Role.ADMIN, "bob": Role.MEMBER, "carol": Role.VIEWER}


@pytest.fixture
def funded_team(team: Team) -> Team:
    wallets.grant(team.workspace, 1000, key="test-funding")
    return team


def _expected(persona: str, minimum: Role | None, ok: int) -> int:
    if persona == "dave":
        return 404
    return ok if minimum is None or RANK[persona].at_least(minimum) else 403


FORM = {"prompt": "a fox", "frames": "13", "steps": "10", "fps": "12", "guidance_scale": "4.5"}

Case = tuple[str, str, Callable[[Generation], list[object]], dict[str, str], Role | None, int]
CASES: list[Case] = [
    ("GET", "workspace_home", lambda g: [], {}, None, 200),
    ("POST", "estimate", lambda g: [], FORM, None, 200),
    ("POST", "generation_create", lambda g: [], FORM, Role.MEMBER, 302),
    ("GET", "generation_list", lambda g: [], {}, None, 200),
    ("GET", "generation_detail", lambda g: [g.pk], {}, None, 200),
    ("GET", "generation_live", lambda g: [g.pk], {}, None, 200),
    ("GET", "generation_card", lambda g: [g.pk], {}, None, 200),
    ("GET", "generation_download", lambda g: [g.pk], {}, None, 302),
    ("POST", "generation_favorite", lambda g: [g.pk], {"favorite": "1"}, Role.MEMBER, 302),
    ("POST", "generation_share", lambda g: [g.pk], {}, Role.MEMBER, 302),
    ("POST", "generation_cancel", lambda g: [g.pk], {}, Role.MEMBER, 302),
    ("POST", "generation_delete", lambda g: [g.pk], {}, Role.MEMBER, 302),
    ("POST", "generation_bulk_delete", lambda g: [], {"ids": "x"}, Role.MEMBER, 302),
]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(
    ("method", "name", "args", "data", "minimum", "ok"), CASES, ids=[c[1] for c in CASES]
)
def test_access(
    client: Client,
    funded_team: Team,
    persona: str,
    method: str,
    name: str,
    args: Callable[[Generation], list[object]],
    data: dict[str, str],
    minimum: Role | None,
    ok: int,
) -> None:
    generation = finished(funded_team.workspace, funded_team.bob)
    url = reverse(name, args=[funded_team.workspace.slug, *args(generation)])
    client.force_login(funded_team.persona(persona))
    response = client.get(url) if method == "GET" else client.post(url, data)
    assert response.status_code == _expected(persona, minimum, ok)


def test_another_workspaces_generation_is_a_404_even_for_its_own_members(
    client: Client, funded_team: Team
) -> None:
    theirs = finished(funded_team.dave.personal_workspace, funded_team.dave)
    client.force_login(funded_team.alice)
    for name in ("generation_detail", "generation_download", "generation_live"):
        url = reverse(name, args=[funded_team.workspace.slug, theirs.pk])
        assert client.get(url).status_code == 404
    url = reverse("generation_delete", args=[funded_team.workspace.slug, theirs.pk])
    assert client.post(url).status_code == 404
    assert Generation.objects.get(pk=theirs.pk).deleted_at is None


def test_submitting_holds_the_credits_and_opens_the_new_videos_page(
    client: Client, funded_team: Team
) -> None:
    client.force_login(funded_team.bob)
    response = client.post(reverse("generation_create", args=[funded_team.workspace.slug]), FORM)
    generation = Generation.objects.get()
    assert response["Location"] == reverse(
        "generation_detail", args=[funded_team.workspace.slug, generation.pk]
    )
    assert (generation.prompt, generation.frames, generation.created_by) == (
        "a fox",
        13,
        funded_team.bob,
    )
    assert wallets.balance(funded_team.workspace).held == generation.cost == 4
    page = client.get(response["Location"]).content.decode()
    assert "4 credits held" in page
    assert 'hx-trigger="every 2s"' in page  # it polls while it runs


def test_an_unlocked_seed_is_drawn_and_a_locked_one_kept(client: Client, funded_team: Team) -> None:
    client.force_login(funded_team.bob)
    url = reverse("generation_create", args=[funded_team.workspace.slug])
    client.post(url, {**FORM, "seed": "1234"})
    client.post(url, {**FORM, "seed": "1234", "seed_locked": "1"})
    first, second = Generation.objects.order_by("created_at")
    assert first.seed != 1234
    assert second.seed == 1234


def test_invalid_parameters_are_named_and_nothing_is_held(
    client: Client, funded_team: Team
) -> None:
    client.force_login(funded_team.bob)
    response = client.post(
        reverse("generation_create", args=[funded_team.workspace.slug]),
        {**FORM, "prompt": "", "frames": "999"},
    )
    assert response.status_code == 400
    assert b"the prompt is required" in response.content
    assert b"Frames must be between 1 and 160" in response.content
    assert not Generation.objects.exists()
    assert wallets.balance(funded_team.workspace).held == 0


def test_not_enough_credits_says_so_and_holds_nothing(client: Client, team: Team) -> None:
    client.force_login(team.alice)
    response = client.post(reverse("generation_create", args=[team.workspace.slug]), FORM)
    assert response.status_code == 402
    assert b"This video costs 4 credits and 0 are available" in response.content
    assert not Generation.objects.exists()


def test_the_live_price_uses_the_server_pricing_and_the_balance(
    client: Client, funded_team: Team
) -> None:
    client.force_login(funded_team.bob)
    url = reverse("estimate", args=[funded_team.workspace.slug])
    page = client.post(url, {"frames": "160", "steps": "75", "fps": "16"}).content.decode()
    assert "300 credits" in page
    assert "10.0 s" in page
    assert "You have <strong>1000</strong> credits" in page
    membership = funded_team.membership(funded_team.bob)
    membership.monthly_cap = 100
    membership.save()
    page = client.post(url, {"frames": "160", "steps": "75"}).content.decode()
    assert "passes your monthly limit" in page
    assert re.search(r"<button[^>]*disabled[^>]*>Generate", page)


def test_the_breaker_refuses_submits_with_a_clear_message(
    client: Client, funded_team: Team
) -> None:
    gate.record_failure(UpstreamError("upstream_unavailable", "x", status=401, opens_breaker=True))
    assert gate.state().breaker == UpstreamGate.Breaker.OPEN
    client.force_login(funded_team.bob)
    response = client.post(reverse("generation_create", args=[funded_team.workspace.slug]), FORM)
    assert response.status_code == 503
    assert b"unavailable right now" in response.content
    assert not Generation.objects.exists()


def test_remix_prefills_the_form_with_the_same_seed(client: Client, funded_team: Team) -> None:
    source = finished(funded_team.workspace, funded_team.bob, prompt="a heron taking off")
    client.force_login(funded_team.bob)
    page = client.get(
        reverse("workspace_home", args=[funded_team.workspace.slug]) + f"?remix={source.pk}"
    ).content.decode()
    assert ">a heron taking off</textarea>" in page
    assert f'value="{source.seed}"' in page
    assert 'name="seed_locked" value="1" checked' in page


def test_a_share_link_works_signed_out_until_revoked(client: Client, funded_team: Team) -> None:
    generation = finished(funded_team.workspace, funded_team.bob, prompt="a heron taking off")
    client.force_login(funded_team.bob)
    share = reverse("generation_share", args=[funded_team.workspace.slug, generation.pk])
    client.post(share)
    generation.refresh_from_db()
    public = reverse("shared", args=[generation.share_token])

    client.logout()
    page = client.get(public)
    assert page.status_code == 200
    assert b"a heron taking off" in page.content
    assert f"{generation.seed}".encode() in page.content
    assert b"Acme Films" not in page.content  # no workspace details
    video = re.search(r'<video[^>]+src="([^"]+)"', page.content.decode())
    assert video
    assert client.get(video.group(1)).status_code == 200

    client.force_login(funded_team.bob)
    client.post(share, {"action": "revoke"})
    client.logout()
    assert client.get(public).status_code == 404


def test_only_finished_videos_can_be_shared(client: Client, funded_team: Team) -> None:
    failed = finished(funded_team.workspace, funded_team.bob, status="failed")
    client.force_login(funded_team.bob)
    client.post(reverse("generation_share", args=[funded_team.workspace.slug, failed.pk]))
    failed.refresh_from_db()
    assert failed.share_token is None


def test_a_failed_video_says_why_and_not_charged(client: Client, funded_team: Team) -> None:
    failed = finished(funded_team.workspace, funded_team.bob, status="failed")
    client.force_login(funded_team.bob)
    page = client.get(
        reverse("generation_detail", args=[funded_team.workspace.slug, failed.pk])
    ).content.decode()
    assert "The model could not render this prompt" in page
    assert "Not charged" in page
    assert "hx-trigger" not in page  # finished: no more polling


def test_download_sends_a_short_lived_link_named_after_the_prompt(
    client: Client, funded_team: Team
) -> None:
    generation = finished(funded_team.workspace, funded_team.bob, prompt="A Red Fox, at dawn!")
    client.force_login(funded_team.carol)  # viewers may download
    response = client.get(
        reverse("generation_download", args=[funded_team.workspace.slug, generation.pk])
    )
    link = response["Location"]
    client.logout()
    file = client.get(link)
    assert file.status_code == 200
    assert file["Content-Disposition"] == 'attachment; filename="a-red-fox-at-dawn.mp4"'
    assert file["Content-Type"] == "video/mp4"
    assert b"".join(file.streaming_content)[4:8] == b"ftyp"


def test_files_support_byte_ranges_and_refuse_bad_or_old_links(
    client: Client, funded_team: Team, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generations import storage

    generation = finished(funded_team.workspace, funded_team.bob)
    link = storage.signed_url(generation.video_key)
    part = client.get(link, HTTP_RANGE="bytes=0-99")
    assert part.status_code == 206
    assert part["Content-Range"].startswith("bytes 0-99/")
    assert len(b"".join(part.streaming_content)) == 100

    assert client.get(link[:-3] + "xx/").status_code == 403
    settings.SIGNED_URL_SECONDS = -1  # every link is already too old
    assert client.get(link).status_code == 403


def test_cancel_and_delete(client: Client, funded_team: Team, commit: Any) -> None:
    generation = finished(funded_team.workspace, funded_team.bob)
    client.force_login(funded_team.bob)
    with commit():
        response = client.post(
            reverse("generation_delete", args=[funded_team.workspace.slug, generation.pk])
        )
    assert response["Location"] == reverse("generation_list", args=[funded_team.workspace.slug])
    assert (
        client.get(
            reverse("generation_detail", args=[funded_team.workspace.slug, generation.pk])
        ).status_code
        == 404
    )


def test_favorites_toggle_in_place(client: Client, funded_team: Team) -> None:
    generation = finished(funded_team.workspace, funded_team.bob)
    client.force_login(funded_team.bob)
    url = reverse("generation_favorite", args=[funded_team.workspace.slug, generation.pk])
    response = client.post(url, {"favorite": "1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'aria-pressed="true"' in response.content
    generation.refresh_from_db()
    assert generation.is_favorite


def test_favorite_without_htmx_returns_to_the_page_but_never_off_site(
    client: Client, funded_team: Team
) -> None:
    generation = finished(funded_team.workspace, funded_team.bob)
    client.force_login(funded_team.bob)
    url = reverse("generation_favorite", args=[funded_team.workspace.slug, generation.pk])
    gallery = reverse("generation_list", args=[funded_team.workspace.slug])
    assert client.post(url, {"favorite": "1", "next": gallery})["Location"] == gallery
    detail = reverse("generation_detail", args=[funded_team.workspace.slug, generation.pk])
    for elsewhere in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = client.post(url, {"favorite": "0", "next": elsewhere})
        assert response["Location"] == detail, elsewhere
